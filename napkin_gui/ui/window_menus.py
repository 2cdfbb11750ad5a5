"""The menus a user looks in first: File → Export report (PDF)…, Examples, Help → About.

Kept out of main_window.py (which owns the document); each function adds its actions to the
window's menu bar and calls back into the window (open_path, controller.plan, show_error).
The PDF is the same report as `napkin report` (report/pdf.py build_report).
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from ..core.plan import PLAN_SUFFIX

ABOUT_TEXT = ("<b>napkin</b> {version}<br>Napkin math for fine-tuning LLMs: memory, step time and cost "
              "of a training run, from a model of which tensors exist, in which dtype, when.<br><br>"
              "Estimates, not measurements: Tools → Probe GPU measures this machine's card.<br>"
              "The same figures from the command line: <tt>napkin estimate PLAN.napkin.json</tt>.")


def examples_dir() -> Path | None:
    """resources/examples: the checkout's folder, else the installed package data."""
    checkout = Path(__file__).resolve().parents[2] / "resources" / "examples"
    if checkout.is_dir():
        return checkout
    try:
        import importlib.resources
        found = importlib.resources.files("napkin_gui.resources").joinpath("examples")
        return Path(str(found)) if found.is_dir() else None
    except (ModuleNotFoundError, TypeError):  # a bundle keeps the data at napkin_gui/resources
        bundled = Path(__file__).resolve().parents[1] / "resources" / "examples"
        return bundled if bundled.is_dir() else None


def example_plans() -> list[Path]:
    """The shipped example plans (*.napkin.json), sorted by name."""
    folder = examples_dir()
    return sorted(folder.glob(f"*{PLAN_SUFFIX}")) if folder is not None else []


def example_title(path: Path) -> str:
    """'llama-3.1-70b · QLoRA (4-bit base) · RTX 4090 × 2': what the plan trains, how, on what."""
    from ..core.errors import PlanError
    from ..core.plan import load_plan
    from ..core.names import gpu_name, short_gpu_name, value_name
    try:
        plan = load_plan(path)
    except PlanError:
        return path.name
    return (f"{plan.model} · {value_name('method', plan.method)} · "
            f"{short_gpu_name(gpu_name(plan.gpu))} × {plan.n_gpus}")


def version_text() -> str:
    try:
        return importlib.metadata.version("napkin")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def add_export_action(window: Any, file_menu: QMenu, before: QAction | None = None) -> QAction:
    """File → Export report (PDF)…: the current plan's PDF report."""
    action = QAction("&Export report (PDF)…", window)
    action.setShortcut(QKeySequence("Ctrl+E"))
    action.setStatusTip("Write the plan's PDF report: memory, timeline, time, hardware and advice.")
    action.triggered.connect(lambda: export_report(window))
    file_menu.insertAction(before, action) if before is not None else file_menu.addAction(action)
    return action


def export_report(window: Any, path: str | None = None) -> bool:
    """Ask for a file name (unless given) and write the report; errors go to window.show_error."""
    from ..core.errors import PlanError
    from ..report.pdf import build_report
    if path is None:
        stem = window.path.name.removesuffix(PLAN_SUFFIX) if window.path else window.controller.plan.model
        start = str((window.path.parent if window.path else Path.home()) / f"{stem.replace('/', '_')}.pdf")
        path, _ = QFileDialog.getSaveFileName(window, "Export report", start, "PDF (*.pdf)")
        if not path:
            return False
    if not path.lower().endswith(".pdf"):
        path += ".pdf"
    try:
        pages = build_report(window.controller.plan, path, window.controller.calibration)
    except (PlanError, OSError) as err:
        window.show_error("Cannot export report", f"report: {err}")
        return False
    window.statusBar().showMessage(f"wrote {path} ({pages} page{'s' if pages != 1 else ''})", 8000)
    return True


def add_examples_menu(window: Any) -> QMenu:
    """Examples: one entry per shipped plan; choosing one opens it like File → Open."""
    menu = window.menuBar().addMenu("E&xamples")
    plans = example_plans()
    for path in plans:
        action = menu.addAction(example_title(path))
        action.setStatusTip(str(path))
        action.setData(str(path))
        action.triggered.connect(lambda _=False, p=path: window.open_path(p))
    menu.setEnabled(bool(plans))
    return menu


def add_help_menu(window: Any) -> QMenu:
    """Help → About napkin (version, what it does)."""
    menu = window.menuBar().addMenu("&Help")
    about = menu.addAction("&About napkin")
    about.triggered.connect(lambda: show_about(window))
    return menu


def show_about(window: Any) -> None:
    QMessageBox.about(window, "About napkin", ABOUT_TEXT.format(version=version_text()))
