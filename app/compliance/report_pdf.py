"""The compliance report as a paginated PDF (reportlab platypus).

A title page (period, generation time, the verdict, the signing key), the summary of checks,
one section per area (facts, charts, tables whose header repeats on every page they span),
and the evidence page with the signature. reportlab and matplotlib are imported here, when a
PDF is asked for, never by ``mip --help`` or the JSON report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from app.compliance.report_layout import (
    Chart,
    Facts,
    Note,
    Part,
    Table,
    checks_table,
    evidence,
    layout,
    when,
)

PASS_COLOUR = "#2a9d4f"
FAIL_COLOUR = "#c62828"
HEADER_COLOUR = "#eef2f7"
GRID_COLOUR = "#c3ccd6"
ACCENT = "#2f6db5"


def render_pdf(bundle: Mapping[str, Any]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, SimpleDocTemplate

    report = bundle["report"]
    period = report["period"]
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=f"{report['title']} {period['from']} to {period['to']}",
        author="MIP Governance Service",
        subject="Compliance report (the signed JSON bundle is the evidence)",
        # Same report, same bytes: no random document id, no creation time but the report's.
        invariant=1,
    )
    styles = _Styles()
    width = document.width
    story: list[Any] = _title_page(bundle, styles)
    story.append(PageBreak())
    story += styles.heading("Summary of checks")
    story += _table(checks_table(report), styles, width, show_title=False)
    for part in layout(report):
        story.append(PageBreak())
        story += _part(part, styles, width)
    story.append(PageBreak())
    story += styles.heading("Evidence")
    story += _facts(evidence(bundle), styles, width)

    footer = (
        f"{report['title']} · {period['from']} to {period['to']} (to excluded) · "
        f"signed by {bundle['signature']['key_id']}"
    )

    def decorate(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColorRGB(0.36, 0.42, 0.48)
        canvas.drawString(doc.leftMargin, 10 * mm, footer)
        canvas.drawRightString(
            doc.leftMargin + doc.width, 10 * mm, f"page {canvas.getPageNumber()}"
        )
        canvas.restoreState()

    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


class _Styles:
    def __init__(self) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

        sheet = getSampleStyleSheet()
        self.body = sheet["BodyText"]
        self.title = ParagraphStyle(
            "ReportTitle", parent=sheet["Title"], fontSize=26, leading=32, alignment=0
        )
        self.h1 = ParagraphStyle(
            "Section", parent=sheet["Heading1"], textColor=colors.HexColor(ACCENT), spaceAfter=8
        )
        self.h3 = ParagraphStyle("Sub", parent=sheet["Heading3"], spaceBefore=10, spaceAfter=4)
        self.cell = ParagraphStyle("Cell", parent=self.body, fontSize=7.2, leading=8.8)
        self.head = ParagraphStyle("Head", parent=self.cell, fontName="Helvetica-Bold")
        self.fact = ParagraphStyle("Fact", parent=self.body, fontSize=8.5, leading=10.5)
        self.fact_label = ParagraphStyle("FactLabel", parent=self.fact, fontName="Helvetica-Bold")
        self.muted = ParagraphStyle(
            "Muted", parent=self.body, fontSize=8, textColor=colors.HexColor("#5c6b7a")
        )
        self.big = ParagraphStyle("Big", parent=self.body, fontSize=12, leading=17)

    def heading(self, text: str) -> list[Any]:
        from reportlab.platypus import Paragraph

        return [Paragraph(escape(text), self.h1)]


def _p(text: str, style: Any) -> Any:
    from reportlab.platypus import Paragraph

    return Paragraph(escape(text), style)


def _title_page(bundle: Mapping[str, Any], styles: _Styles) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer
    from reportlab.platypus import Table as PdfTable

    report = bundle["report"]
    period = report["period"]
    failed = sum(1 for c in report["checks"] if not c["ok"])
    verdict = (
        f"All {len(report['checks'])} checks pass"
        if report["ok"]
        else f"{failed} of {len(report['checks'])} checks fail"
    )
    colour = colors.HexColor(PASS_COLOUR if report["ok"] else FAIL_COLOUR)
    white = styles.big.clone("Banner", textColor=colors.white, fontName="Helvetica-Bold")
    banner = PdfTable([[_p(verdict, white)]], colWidths=[110 * mm], hAlign="LEFT")
    banner.setStyle(
        [
            ("BACKGROUND", (0, 0), (-1, -1), colour),
            ("TOPPADDING", (0, 0), (-1, -1), 8),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 8),
            ("LEFTPADDING", (0, 0), (-1, -1), 10),
        ]
    )
    lines = [
        (
            "Period",
            f"{period['from']} to {period['to']} (UTC; {period['to']} excluded, "
            f"{period['days']} days)",
        ),
        ("Generated", when(report["generated_at"])),
        ("Generated by", report["generated_by"]),
        ("Signing key", bundle["signature"]["key_id"]),
        ("Report format", report["format"]),
    ]
    return [
        Spacer(1, 40 * mm),
        _p("MIP Governance Service", styles.muted),
        _p(report["title"], styles.title),
        Spacer(1, 6 * mm),
        *(_p(f"{label}: {value}", styles.big) for label, value in lines),
        Spacer(1, 10 * mm),
        banner,
        Spacer(1, 10 * mm),
        _p(
            "Each section is computed from the service's database and sample store when the "
            "report is generated. Checks marked 'the period' cover what happened between the "
            "two dates; checks marked 'now' cover the catalog, the store and the keys as they "
            "stood at generation. The JSON form of this report, signed with the key above, is "
            "the evidence; this document is a reading of it.",
            styles.fact,
        ),
    ]


def _part(part: Part, styles: _Styles, width: float) -> list[Any]:
    flowables = styles.heading(part.title)
    for block in part.blocks:
        if isinstance(block, Facts):
            flowables += _facts(block, styles, width)
        elif isinstance(block, Chart):
            flowables += _chart(block, width)
        elif isinstance(block, Note):
            flowables.append(_p(block.text, styles.fact))
        else:
            flowables += _table(block, styles, width)
    return flowables


def _facts(block: Facts, styles: _Styles, width: float) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.platypus import Spacer
    from reportlab.platypus import Table as PdfTable

    rows = [[_p(k, styles.fact_label), _p(v, styles.fact)] for k, v in block.items]
    table = PdfTable(rows, colWidths=[width * 0.42, width * 0.58], hAlign="LEFT")
    table.setStyle(
        [
            ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor(GRID_COLOUR)),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]
    )
    return [table, Spacer(1, 6)]


def _chart(block: Chart, width: float) -> list[Any]:
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image, Spacer

    pixels_wide, pixels_high = ImageReader(io.BytesIO(block.png)).getSize()
    shown = min(width, pixels_wide * 0.75)  # at most 96 dpi, never upscaled past the page
    return [
        Image(io.BytesIO(block.png), width=shown, height=shown * pixels_high / pixels_wide),
        Spacer(1, 6),
    ]


def _table(block: Table, styles: _Styles, width: float, *, show_title: bool = True) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.platypus import Spacer
    from reportlab.platypus import Table as PdfTable

    flowables: list[Any] = [_p(block.title, styles.h3)] if show_title else []
    if not block.rows:
        return [*flowables, _p(block.empty, styles.muted), Spacer(1, 4)]
    weights = block.widths or [1.0] * len(block.columns)
    widths = [width * w / sum(weights) for w in weights]
    rows = [[_p(c, styles.head) for c in block.columns]]
    rows += [[_p(cell, styles.cell) for cell in row] for row in block.rows]
    commands: list[Any] = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEADER_COLOUR)),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor(GRID_COLOUR)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    for index, row in enumerate(block.rows, start=1):
        for column, cell in enumerate(row):
            if cell in ("PASS", "FAIL"):
                colour = PASS_COLOUR if cell == "PASS" else FAIL_COLOUR
                commands.append(
                    ("BACKGROUND", (column, index), (column, index), colors.HexColor(colour))
                )
                rows[index][column] = _p(cell, styles.head.clone("Verdict", textColor=colors.white))
    table = PdfTable(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(commands)
    flowables.append(table)
    if block.total > len(block.rows):
        flowables.append(
            _p(
                f"{len(block.rows):,} of {block.total:,} shown; the JSON evidence bundle lists "
                "the rest.",
                styles.muted,
            )
        )
    flowables.append(Spacer(1, 6))
    return flowables
