"""The compliance report's charts, as PNG bytes (matplotlib on its own Agg canvas).

Drawn on a :class:`~matplotlib.figure.Figure` with no pyplot and no ``matplotlib.use``, so
rendering from a server thread changes no global state. matplotlib is imported here only:
``mip compliance --help`` and the JSON report never load it.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OPTED_IN = "#2f6db5"
OPTED_OUT = "#d1495b"
READS = "#6a4c93"
ERASURE = "#2a9d8f"
DPI = 110
BARS_MAX = 30  # more erasures than this are drawn as a histogram


def _figure(width: float = 7.5, height: float = 2.9) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # The timestamp PIL would write makes two renderings of one report differ.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _numbers(days: Sequence[dt.date]) -> list[float]:
    """Days as matplotlib's date numbers (days since 1970-01-01), for a bar's x."""
    epoch = dt.date(1970, 1, 1)
    return [float((day - epoch).days) for day in days]


def _days_axis(axes: Any, days: Sequence[dt.date]) -> None:
    from matplotlib import dates as mdates

    # matplotlib's date helpers carry no annotations.
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    )
    if days:
        x = _numbers(days)
        axes.set_xlim(x[0] - 0.75, x[-1] + 0.75)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)


def requests_per_day(daily: Sequence[dict[str, Any]]) -> bytes:
    """Stacked bars: opted-in and opted-out requests per UTC day."""
    days = [dt.date.fromisoformat(row["day"]) for row in daily]
    opted_in = [int(row["opted_in"]) for row in daily]
    opted_out = [int(row["opted_out"]) for row in daily]
    figure = _figure()
    axes = figure.add_subplot()
    width = 0.8 if len(days) < 120 else 1.0
    x = _numbers(days)
    axes.bar(x, opted_in, width, color=OPTED_IN, label="opted in")
    axes.bar(x, opted_out, width, bottom=opted_in, color=OPTED_OUT, label="opted out")
    axes.set_title("Requests per day (UTC): opted in vs opted out", fontsize=10)
    axes.set_ylabel("requests")
    axes.legend(loc="upper left", fontsize="small", frameon=False)
    _days_axis(axes, days)
    return _png(figure)


def reads_per_day(daily: Sequence[dict[str, Any]]) -> bytes:
    """Bars: decrypted reads of sample content per UTC day."""
    from matplotlib.ticker import MaxNLocator

    days = [dt.date.fromisoformat(row["day"]) for row in daily]
    reads = [int(row["reads"]) for row in daily]
    figure = _figure()
    axes = figure.add_subplot()
    axes.bar(_numbers(days), reads, 0.8 if len(days) < 120 else 1.0, color=READS)
    axes.set_title("Decrypted reads of sample content per day (UTC)", fontsize=10)
    axes.set_ylabel("reads")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    _days_axis(axes, days)
    return _png(figure)


def erasure_times(requests: Sequence[dict[str, Any]]) -> bytes:
    """Horizontal bars: how long each completed erasure took, from request to done."""
    done = [r for r in requests if r.get("duration_seconds") is not None]
    seconds = [float(r["duration_seconds"]) for r in done]
    unit, scale = _time_unit(max(seconds, default=0.0))
    if len(done) > BARS_MAX:
        return _erasure_histogram([s / scale for s in seconds], unit)
    labels = [f"{r['scope']} {str(r['id'])[:8]}\n{str(r['requested_at'])[:10]}" for r in done]
    figure = _figure(height=max(1.8, 0.42 * len(done) + 1.2))
    axes = figure.add_subplot()
    positions = list(range(len(done)))
    axes.barh(positions, [s / scale for s in seconds], color=ERASURE)
    axes.set_yticks(positions, labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel(f"time to complete ({unit})")
    axes.set_title("Erasure completion times (request to done)", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _erasure_histogram(values: Sequence[float], unit: str) -> bytes:
    figure = _figure()
    axes = figure.add_subplot()
    axes.hist(values, bins=min(30, max(5, len(values) // 5)), color=ERASURE)
    axes.set_xlabel(f"time to complete ({unit})")
    axes.set_ylabel("erasures")
    axes.set_title(f"Erasure completion times ({len(values)} erasures)", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _time_unit(longest: float) -> tuple[str, float]:
    if longest >= 2 * 86400:
        return "days", 86400.0
    if longest >= 2 * 3600:
        return "hours", 3600.0
    if longest >= 120:
        return "minutes", 60.0
    return "seconds", 1.0
