"""The signed compliance report as JSON, HTML or PDF.

JSON is the evidence bundle itself. HTML and PDF are readings of it, laid out once
(:func:`app.compliance.report_layout.layout`) and drawn by :func:`render_html` (one
self-contained page: inline CSS, charts as PNG data URIs, every value escaped) or
:func:`app.compliance.report_pdf.render_pdf` (reportlab)::

    content = render(bundle, "pdf")   # bytes; MEDIA_TYPES["pdf"] == "application/pdf"
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

import orjson

from app.compliance.report import FORMATS
from app.compliance.report_layout import (
    Block,
    Chart,
    Facts,
    Note,
    checks_table,
    evidence,
    layout,
    when,
)

MEDIA_TYPES: Mapping[str, str] = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}


def render(bundle: Mapping[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(bundle, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if fmt == "html":
        return render_html(bundle).encode("utf-8")
    if fmt == "pdf":
        from app.compliance.report_pdf import render_pdf

        return render_pdf(bundle)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2530;
max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:26px;margin-bottom:.2em}h2{font-size:20px;border-bottom:2px solid #2f6db5;
padding-bottom:.2em;margin-top:2em}h3{font-size:15px;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em;font-size:12.5px}
th,td{border:1px solid #d5dbe3;padding:4px 6px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}th{background:#eef2f7}
table.facts{width:auto;min-width:50%}table.facts th{width:22em;font-weight:600}
.pass{color:#fff;background:#2a9d4f;font-weight:700;text-align:center}
.fail{color:#fff;background:#c62828;font-weight:700;text-align:center}
.status{display:inline-block;padding:.3em .8em;border-radius:4px;color:#fff;font-weight:700}
.muted{color:#5c6b7a}img{max-width:100%;height:auto;display:block;margin:.6em 0}
code{font-size:12px;overflow-wrap:anywhere}
"""


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _html_block(block: Block) -> str:
    if isinstance(block, Note):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Facts):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in block.items)
        return f'<table class="facts">{rows}</table>'
    if isinstance(block, Chart):
        data = base64.b64encode(block.png).decode()
        return f'<img alt="{_e(block.title)}" src="data:image/png;base64,{data}">'
    out = [f"<h3>{_e(block.title)}</h3>"]
    if not block.rows:
        return out[0] + f'<p class="muted">{_e(block.empty)}</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in block.columns)
    body = []
    for row in block.rows:
        cells = []
        for cell in row:
            css = {"PASS": ' class="pass"', "FAIL": ' class="fail"'}.get(cell, "")
            cells.append(f"<td{css}>{_e(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    if block.total > len(block.rows):
        out.append(
            f'<p class="muted">{len(block.rows):,} of {block.total:,} shown; the JSON evidence '
            "bundle lists the rest.</p>"
        )
    return "".join(out)


def render_html(bundle: Mapping[str, Any]) -> str:
    report = bundle["report"]
    period = report["period"]
    ok = report["ok"]
    colour = "#2a9d4f" if ok else "#c62828"
    failed = sum(1 for c in report["checks"] if not c["ok"])
    verdict = "All checks pass" if ok else f"{failed} check(s) fail"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report['title'])} {_e(period['from'])} to {_e(period['to'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(report['title'])}</h1>",
        f'<p class="muted">Period {_e(period["from"])} to {_e(period["to"])} (UTC, '
        f"{_e(period['to'])} excluded; {period['days']} days) · generated "
        f"{_e(when(report['generated_at']))} by {_e(report['generated_by'])}</p>",
        f'<p><span class="status" style="background:{colour}">{_e(verdict)}</span></p>',
        "<h2>Summary</h2>",
        _html_block(checks_table(report)),
    ]
    for part in layout(report):
        parts.append(f"<h2>{_e(part.title)}</h2>")
        parts.extend(_html_block(block) for block in part.blocks)
    parts += ["<h2>Evidence</h2>", _html_block(evidence(bundle)), "</body></html>"]
    return "\n".join(parts)
