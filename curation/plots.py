"""PNG charts of a balance result: shares before and after against the target, and deficits.

    plot_distributions(result, Path("reports/distributions.png"))
    plot_deficit(result, Path("reports/deficit.png"))

Figures are drawn on their own Agg canvas (no pyplot, no ``matplotlib.use``), so plotting
from a server thread or a notebook changes no global backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from curation.balance import BalanceResult
from curation.manifests import replace_atomically

BEFORE_COLOUR = "#9aa5b1"
AFTER_COLOUR = "#2f6db5"
TARGET_COLOUR = "#d1495b"
DPI = 100


def plot_distributions(result: BalanceResult, path: Path) -> Path:
    """One panel per dimension: share of hours before vs after (bars) and the target (marker).

    path = plot_distributions(balance(manifest, spec), Path("distributions.png"))
    path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    """
    dimensions = list(result.summary.get("dimensions") or result.after["dimension"].unique())
    widest = max((_count(result.after, name) for name in dimensions), default=1)
    columns = 1 if widest > 6 or len(dimensions) == 1 else 2
    rows = max(1, math.ceil(len(dimensions) / columns))
    figure = _figure(width=max(6.0, 0.55 * widest + 2.5) * columns, height=3.6 * rows + 0.8)
    for index, name in enumerate(dimensions):
        axes = figure.add_subplot(rows, columns, index + 1)
        before = result.before[result.before["dimension"] == name].set_index("value")
        after = result.after[result.after["dimension"] == name].set_index("value")
        values = list(after.index)
        x = np.arange(len(values))
        axes.bar(
            x - 0.2,
            before["share"].reindex(values, fill_value=0.0),
            0.4,
            label="before",
            color=BEFORE_COLOUR,
        )
        axes.bar(x + 0.2, after["share"], 0.4, label="after", color=AFTER_COLOUR)
        axes.plot(
            x,
            after["target_share"],
            linestyle="none",
            marker="D",
            markersize=7,
            color=TARGET_COLOUR,
            label="target",
        )
        axes.set_title(name)
        axes.set_ylabel("share of hours")
        axes.set_ylim(0, 1.05)
        axes.set_xticks(
            x,
            values,
            rotation=30 if len(values) > 4 else 0,
            ha="right" if len(values) > 4 else "center",
        )
        axes.grid(axis="y", alpha=0.3)
        if index == 0:
            axes.legend(loc="upper right", fontsize="small")
    if not dimensions:
        figure.text(0.5, 0.5, "no dimensions", ha="center", va="center", fontsize=14)
    summary = result.summary
    title = (
        f"Balance: {summary.get('selected_hours', 0.0):.1f} h selected of "
        f"{summary.get('input_hours', 0.0):.1f} h (budget {summary.get('budget_hours', 0.0):g} h)"
    )
    figure.suptitle(title)
    return _save(figure, path, title, "share of hours per value: before, after, target")


def plot_deficit(result: BalanceResult, path: Path) -> Path:
    """Hours each group lacks to reach its target, largest first; "no deficit" when none.

    path = plot_deficit(balance(manifest, spec), Path("deficit.png"))
    path.stat().st_size > 0
    """
    deficit = result.deficit.sort_values("missing_hours", kind="stable")
    figure = _figure(width=8.0, height=max(3.0, 0.4 * len(deficit) + 1.6))
    axes = figure.add_subplot(1, 1, 1)
    if deficit.empty:
        axes.text(
            0.5, 0.5, "no deficit", ha="center", va="center", fontsize=16, transform=axes.transAxes
        )
        axes.set_axis_off()
    else:
        labels = deficit["dimension"] + " = " + deficit["value"]
        y = np.arange(len(deficit))
        bars = axes.barh(y, deficit["missing_hours"], color=TARGET_COLOUR)
        axes.bar_label(
            bars,
            labels=[f"{h:.3g} h" for h in deficit["missing_hours"]],
            padding=3,
            fontsize="small",
        )
        axes.set_yticks(y, labels.tolist())
        axes.set_xlabel("missing hours (target - selected)")
        axes.set_xlim(0, float(deficit["missing_hours"].max()) * 1.2)
        axes.grid(axis="x", alpha=0.3)
    title = "Hours missing to reach the target"
    axes.set_title(title)
    described = "; ".join(
        f"{row.dimension}={row.value}: {row.missing_hours:.3g} h" for row in deficit.itertuples()
    )
    return _save(figure, path, title, described or "no deficit")


def _count(frame: pd.DataFrame, dimension: str) -> int:
    return int((frame["dimension"] == dimension).sum())


def _figure(*, width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: this figure renders with Agg, nothing global
    return figure


def _save(figure: Figure, path: Path, title: str, description: str) -> Path:
    """Write the PNG atomically; title and description also go in its text chunks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Title": title, "Description": description}
    replace_atomically(
        path, lambda partial: figure.savefig(partial, format="png", dpi=DPI, metadata=metadata)
    )
    return path
