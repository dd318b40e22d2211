"""The custom-versus-standard comparison as one self-contained HTML page, charts as inline SVG.

    page = render_html(compare(references, custom, standard), title="Acme custom model")
    Path("comparison.html").write_text(page, encoding="utf-8")

No external asset, CDN or script: the page is mailed and archived as is. Every text that comes
from customers (title, speaker names, transcript words) goes through ``html.escape``. Charts are
drawn on their own matplotlib Figure and SVG canvas (no pyplot, no ``matplotlib.use``), so
rendering from a server thread changes no global backend.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from asr.compare import Comparison, Estimate

CUSTOM_COLOUR = "#2f6db5"
STANDARD_COLOUR = "#9aa5b1"
DPI = 100
_SVG_METADATA = ("Creator", "Date", "Format", "Type")  # matplotlib's defaults, all dropped
_ID = re.compile(r'\bid="([^"]+)"')

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pair { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
"""


def render_html(comparison: Comparison, *, title: str) -> str:
    """The whole page: summary, per-speaker WER, the error tables of both models, two charts."""
    c = comparison
    level = f"{100 * c.confidence:g}%"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        f"<p>{c.utterances} held-out utterances, {c.words} reference words. Intervals are "
        f"{level} bootstrap percentile intervals over {c.resamples} resamples of the "
        "utterances; transcripts are normalised before scoring.</p>",
        "<h2>Summary</h2>",
        _summary(c),
        f"<figure>{_svg(_wer_chart(c), 'wer')}</figure>",
    ]
    if c.speakers:
        parts += ["<h2>Word error rate per speaker</h2>", _speaker_table(c)]
        parts.append(f"<figure>{_svg(_speaker_chart(c), 'speakers')}</figure>")
    parts += ["<h2>Most common errors</h2>", *_error_sections(c), "</body></html>"]
    return "\n".join(parts) + "\n"


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _interval(estimate: Estimate) -> str:
    return f"{_percent(estimate.low)} \N{EN DASH} {_percent(estimate.high)}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: int = 0) -> str:
    """A table whose last ``numeric`` columns are right-aligned numbers; every cell is escaped."""
    head = "".join(f"<th>{_text(h)}</th>" for h in header)
    lines = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    first_number = len(header) - numeric
    for row in rows:
        cells = "".join(
            f'<td class="n">{_text(v)}</td>' if i >= first_number else f"<td>{_text(v)}</td>"
            for i, v in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _summary(c: Comparison) -> str:
    level = f"{100 * c.confidence:g}%"
    rows = [
        (name, _percent(m.wer.value), _interval(m.wer), _percent(m.cer.value), _interval(m.cer))
        for name, m in (("custom", c.custom), ("standard", c.standard))
    ]
    header = ("model", "WER", f"WER {level} CI", "CER", f"CER {level} CI")
    table = _table(header, rows, numeric=4)
    reduction = c.relative_wer_reduction
    if reduction is None:
        verdict = "The standard model makes no word error here: there is nothing to reduce."
    else:
        verdict = (
            f"Relative WER reduction (standard \N{MINUS SIGN} custom) / standard: "
            f"<strong>{_percent(reduction.value)}</strong> ({level} CI {_interval(reduction)}, "
            f"from the {c.reduction_resamples} resamples where the standard model errs)."
        )
    share = _percent(c.custom_better_share)
    better = f"The custom model has the lower WER in {share} of resamples."
    return f"{table}\n<p>{verdict} {better}</p>"


def _speaker_table(c: Comparison) -> str:
    rows = [
        (s.speaker, s.utterances, s.words, _percent(s.custom_wer), _percent(s.standard_wer))
        for s in c.speakers
    ]
    header = ("speaker", "utterances", "words", "custom WER", "standard WER")
    return _table(header, rows, numeric=4)


def _error_sections(c: Comparison) -> list[str]:
    models = (("custom", c.custom), ("standard", c.standard))
    kinds = (
        ("Substitutions", ("reference", "hypothesis", "count"), "substitutions"),
        ("Deletions", ("reference", "count"), "deletions"),
        ("Insertions", ("hypothesis", "count"), "insertions"),
    )
    parts = []
    for heading, header, field in kinds:
        parts += [f"<h3>{heading}</h3>", '<div class="pair">']
        for name, model in models:
            rows: list[tuple[object, ...]] = getattr(model, field)
            body = _table(header, rows, numeric=1) if rows else "<p>none</p>"
            parts.append(f"<div><h4>{name} model</h4>\n{body}</div>")
        parts.append("</div>")
    return parts


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasSVG(figure)
    return figure


def _svg(figure: Figure, prefix: str) -> str:
    """The figure as an ``<svg>`` element whose ids cannot clash with another chart's."""
    buffer = io.StringIO()
    # no <metadata> block: it holds a timestamp and RDF links the page does not need
    figure.savefig(buffer, format="svg", metadata=dict.fromkeys(_SVG_METADATA))
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # the XML declaration and doctype are not allowed inline
    # matplotlib names glyph paths after the font ("DejaVuSans-30") in every figure; two
    # charts on one page would define each id twice, so give each chart its own prefix.
    ids = set(_ID.findall(svg))
    if not ids:
        return svg
    names = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
    return re.sub(rf'(id="|#)({names})(?=["\)])', rf"\g<1>{prefix}-\g<2>", svg)


def _wer_chart(c: Comparison) -> Figure:
    figure = _figure(4.5, 3.0)
    axes = figure.add_subplot()
    models = (c.custom.wer, c.standard.wer)
    values = [100 * e.value for e in models]
    # a percentile interval need not contain the point estimate; clamp, matplotlib wants >= 0
    below = [max(0.0, 100 * (e.value - e.low)) for e in models]
    above = [max(0.0, 100 * (e.high - e.value)) for e in models]
    axes.bar(
        ["custom", "standard"],
        values,
        yerr=[below, above],
        capsize=6,
        color=[CUSTOM_COLOUR, STANDARD_COLOUR],
    )
    axes.set_ylabel("WER (%)")
    axes.set_title(f"WER with {100 * c.confidence:g}% bootstrap interval", fontsize=10)
    _tidy(axes)
    return figure


def _speaker_chart(c: Comparison) -> Figure:
    count = len(c.speakers)
    figure = _figure(min(16.0, max(5.0, 0.6 * count + 2.0)), 3.4)
    axes = figure.add_subplot()
    x = np.arange(count)
    custom = [100 * s.custom_wer for s in c.speakers]
    standard = [100 * s.standard_wer for s in c.speakers]
    axes.bar(x - 0.2, custom, 0.4, color=CUSTOM_COLOUR, label="custom")
    axes.bar(x + 0.2, standard, 0.4, color=STANDARD_COLOUR, label="standard")
    # speaker names are customer text: "$...$" must not be parsed as mathtext (or fail to)
    axes.set_xticks(x, [s.speaker for s in c.speakers], parse_math=False)
    if count > 8:
        axes.tick_params(axis="x", labelrotation=45)
    axes.set_ylabel("WER (%)")
    axes.set_title("WER per speaker", fontsize=10)
    axes.legend(fontsize="small", frameon=False)
    _tidy(axes)
    return figure


def _tidy(axes: Axes) -> None:
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
