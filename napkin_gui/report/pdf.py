"""Write a report PDF: QTextDocument (HTML + chart images) printed to a QPdfWriter, atomically."""
from __future__ import annotations

import os
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.plan import Plan
from .data import ReportData, collect_report_data


def ensure_gui_app():
    """A QGuiApplication for fonts and painting; offscreen when none exists yet (CLI)."""
    from PySide6.QtGui import QGuiApplication
    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication(["napkin-report"])
    return app


def report_document(data: ReportData):
    """The QTextDocument of the report, with its chart images registered."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QFont, QTextDocument

    from . import charts
    from .html import BATCH_CURVE, MEMORY_BAR, TIMELINE, report_html
    ensure_gui_app()
    doc = QTextDocument()
    font = QFont("DejaVu Sans")
    font.setPointSizeF(8.5)
    doc.setDefaultFont(font)
    est = data.estimate
    images = {MEMORY_BAR: charts.memory_bar_image(est.memory),
              TIMELINE: charts.timeline_image(est.memory),
              BATCH_CURVE: charts.batch_curve_image(data.sweep)}
    for name, image in images.items():
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    doc.setHtml(report_html(data))
    return doc


FOOTER_PX = 18  # layout pixels below each page's text, in the bottom margin (12 mm = 45 px), for its number


def page_footer(page: int, pages: int, title: str) -> str:
    """'napkin report: Llama 3.1 8B · page 2 of 3'."""
    return f"{title} · page {page} of {pages}"


def _print_pages(doc, writer, title: str) -> int:
    """Paint the laid-out document page by page, each with its number in the footer.

    QTextDocument.print_ numbers pages only for a document without a page size of its own
    (qtbase src/gui/text/qtextdocument.cpp, QTextDocument::print); this one is laid out on the
    writer's printable area so that pageCount() is the PDF's, so its pages are drawn here:
    each page's slice of the document, then the footer below it, in the bottom margin."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QPainter
    size = doc.pageSize()
    pages = doc.pageCount()
    scale = writer.resolution() / 96  # layout pixels (96 dpi) -> the writer's device units
    font = QFont("DejaVu Sans")
    font.setPointSizeF(7.5)
    painter = QPainter(writer)
    try:
        for i in range(pages):
            if i:
                writer.newPage()
            painter.save()
            painter.scale(scale, scale)
            painter.translate(0, -i * size.height())
            doc.drawContents(painter, QRectF(0, i * size.height(), size.width(), size.height()))
            painter.restore()
            painter.save()
            painter.scale(scale, scale)
            painter.setFont(font)
            painter.setPen(QColor("#777777"))
            painter.drawText(QRectF(0, size.height() + 2, size.width(), FOOTER_PX - 2),
                             int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                             page_footer(i + 1, pages, title))
            painter.restore()
    finally:
        painter.end()
    return pages


def write_report(data: ReportData, path: str | os.PathLike[str]) -> int:
    """Print the report to path (A4) via a temp file in the same folder + os.replace; returns pages."""
    from PySide6.QtCore import QMarginsF, QSizeF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter

    target = Path(path)
    doc = report_document(data)
    title = f"napkin report: {data.estimate.model.name}"
    with atomic_path(target) as tmp:
        writer = QPdfWriter(str(tmp))
        writer.setTitle(title)
        writer.setCreator("napkin")
        writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
        writer.setPageMargins(QMarginsF(15, 12, 15, 12), QPageLayout.Unit.Millimeter)
        # lay the document out on the printable area in points so pageCount() is the PDF's
        rect = writer.pageLayout().paintRect(QPageLayout.Unit.Point)
        doc.setPageSize(QSizeF(rect.width() * 96 / 72, rect.height() * 96 / 72))
        pages = _print_pages(doc, writer, title)
        del writer  # closes the file
        if os.path.getsize(tmp) == 0:
            raise OSError(f"report: Qt wrote an empty PDF for {target}")
    return pages


def build_report(plan: Plan, path: str | os.PathLike[str], calibration=None) -> int:
    """Estimate the plan and write its PDF report to path; returns the page count."""
    return write_report(collect_report_data(plan, calibration), path)
