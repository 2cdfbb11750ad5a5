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


def write_report(data: ReportData, path: str | os.PathLike[str]) -> int:
    """Print the report to path (A4) via a temp file in the same folder + os.replace; returns pages."""
    from PySide6.QtCore import QMarginsF, QSizeF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter

    target = Path(path)
    doc = report_document(data)
    with atomic_path(target) as tmp:
        writer = QPdfWriter(str(tmp))
        writer.setTitle(f"napkin report: {data.estimate.model.name}")
        writer.setCreator("napkin")
        writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
        writer.setPageMargins(QMarginsF(15, 12, 15, 12), QPageLayout.Unit.Millimeter)
        # lay the document out on the printable area in points so pageCount() is the PDF's
        rect = writer.pageLayout().paintRect(QPageLayout.Unit.Point)
        doc.setPageSize(QSizeF(rect.width() * 96 / 72, rect.height() * 96 / 72))
        pages = doc.pageCount()
        doc.print_(writer)
        del writer  # closes the file
        if os.path.getsize(tmp) == 0:
            raise OSError(f"report: Qt wrote an empty PDF for {target}")
    return pages


def build_report(plan: Plan, path: str | os.PathLike[str], calibration=None) -> int:
    """Estimate the plan and write its PDF report to path; returns the page count."""
    return write_report(collect_report_data(plan, calibration), path)
