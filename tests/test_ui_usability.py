"""Issue 12.15-12.17 in the window: human names, nothing clipped, tooltips that stay, the menus
users look in (export, examples, about), page numbers in the PDF. Geometry and text checks."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, QRect
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QToolTip
from drawn_text import axis_texts

from napkin_gui.core import calibration as cal
from napkin_gui.core.plan import Plan, load_plan
from napkin_gui.core.names import short_gpu_name, value_name
from napkin_gui.ui.memory_bar_view import ROW_PINNED, describe_plan
from napkin_gui.ui.plan_editor import gpu_items
from napkin_gui.ui.timeline_view import STAGES

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
PLAN = load_plan(EXAMPLES / "llama-3.1-8b-lora.napkin.json")


@pytest.fixture
def window(open_window):
    return open_window(PLAN, size=(1280, 720))


# ------------------------------------------------------------------ names (12.15)
def test_choice_combos_show_human_names_and_keep_ids(window):
    combos = window.editor.combos
    assert combos["method"].currentText() == "LoRA" and combos["method"].currentData() == "lora"
    for field, combo in combos.items():
        for i in range(combo.count()):
            assert combo.itemText(i) == value_name(field, combo.itemData(i))
    assert combos["optimizer"].currentText() == "AdamW"


def test_gpu_labels_lead_with_what_tells_cards_apart():
    labels = {ident: label for label, ident, _ in gpu_items()}
    assert labels["mi300x"].startswith("MI300X ·") and labels["mi325x"].startswith("MI325X ·")
    assert labels["h100-80gb-sxm"].startswith("H100 80GB SXM5 ·")
    assert short_gpu_name("AMD Instinct MI300X") != short_gpu_name("AMD Instinct MI325X")


def test_pdf_plan_table_shows_names_not_ids():
    from napkin_gui.report.text import plan_rows
    rows = dict(plan_rows(PLAN))
    assert rows["method"] == "LoRA" and rows["gpu"] == "NVIDIA H100 80GB SXM5"
    assert rows["optimizer"] == "AdamW" and rows["sharding"] == "None (a copy per GPU)"
    assert "lora" not in rows.values() and "h100-80gb-sxm" not in rows.values()


# --------------------------------------------------------------- clipped text (12.16)
def _text_fits(widget, text):
    return widget.fontMetrics().horizontalAdvance(text) <= widget.contentsRect().width() - 4


@pytest.mark.parametrize("size", [(1280, 720), (1600, 1000)])
def test_gpu_combo_shows_its_whole_label(open_window, size):
    w = open_window(PLAN, size=size)
    line = w.editor.gpu_combo.lineEdit()
    assert "· $" in line.text() and line.text().endswith("/h")
    assert _text_fits(line, line.text()), (line.text(), line.width())


def test_gpu_field_is_above_the_fold_at_1280x720(window):
    scroll = window.editor.parentWidget().parentWidget()  # QScrollArea viewport -> area
    viewport = scroll.viewport() if hasattr(scroll, "viewport") else window.editor.parentWidget()
    combo = window.editor.gpu_combo
    top_left = combo.mapTo(viewport, QPoint(0, 0))
    assert QRect(QPoint(0, 0), viewport.size()).contains(QRect(top_left, combo.size()))


def test_open_button_is_never_narrower_than_its_text(window):
    button = next(b for b in window.editor.widgets["model"].children() if getattr(b, "text", lambda: "")() == "Open…")
    assert button.width() >= button.sizeHint().width()
    assert button.menu() is not None


def test_pinned_label_stays_on_the_plot(window):
    view = window.memory_view
    view.set_pinned(window.controller.estimate)
    window.controller.set_plan(dataclasses.replace(PLAN, batch_size=8))
    window.controller.flush()
    QApplication.processEvents()
    box = view.plot.getPlotItem().getViewBox().sceneBoundingRect()
    for label in view.row_labels.values():
        assert box.contains(label.sceneBoundingRect()), (label.toPlainText(), label.sceneBoundingRect(), box)
    assert view.pinned_caption.isVisible()
    assert view.pinned_caption.text() == f"before: {describe_plan(view.pinned)}"
    assert view.row_labels[ROW_PINNED].isVisible()


@pytest.mark.parametrize("size", [(1280, 720), (1600, 1000)])
def test_every_timeline_stage_label_is_drawn_inside_the_axis(open_window, size):
    w = open_window(PLAN, size=size)
    view = w.timeline_view
    axis = view.plot.getPlotItem().getAxis("bottom")
    texts = axis_texts(axis)
    drawn = " · ".join(text for _, _, text in texts)
    for _, label in STAGES:
        assert label in drawn, (label, drawn)
    bounds = axis.boundingRect()
    assert all(bounds.left() - 1 <= rect.left() and rect.right() <= bounds.right() + 1 for rect, _, _ in texts)


def test_probe_error_line_never_covers_the_probe_button(window):
    panel = window.probe_panel
    text = ("probe failed: RuntimeError: CUDA error: an illegal memory access was encountered; "
            "compile with TORCH_USE_CUDA_DSA to enable device-side assertions")
    panel.show_result(text, ok=False)
    QApplication.processEvents()
    assert not panel.result.geometry().intersects(panel.button.geometry())
    assert panel.result.text().endswith("…") and panel.result.toolTip() == text
    assert panel.result.full_text == text


def test_chart_hover_tooltip_survives_the_views_tooltip_event(window, qtbot):
    """Qt sends the plot a ToolTip event once the mouse rests; the scene answered it by hiding
    the hover tooltip about a second after it appeared."""
    for view in (window.memory_view, window.timeline_view):
        plot = view.plot
        QToolTip.showText(plot.mapToGlobal(QPoint(100, 60)), "<b>segment</b>", plot)
        qtbot.waitUntil(QToolTip.isVisible)
        viewport = plot.viewport()
        QApplication.sendEvent(viewport, QHelpEvent(QEvent.Type.ToolTip, QPoint(100, 60),
                                                    viewport.mapToGlobal(QPoint(100, 60))))
        qtbot.wait(700)  # QToolTip hides 300 ms after an empty showText
        assert QToolTip.isVisible()
        QToolTip.hideText()


def test_calibration_buttons_wait_for_a_profile(window, qtbot):
    from napkin_gui.ui.calibration_dialog import CalibrationDialog
    dialog = CalibrationDialog(None, window)
    qtbot.addWidget(dialog)
    assert dialog.list.count() == 1 and dialog.selected_profile() is None
    dialog.list.setCurrentRow(0)  # the "No profiles yet" line cannot be chosen
    assert dialog.selected_profile() is None
    for button in (dialog.use_button, dialog.delete_button, dialog.export_button, dialog.none_button):
        assert not button.isEnabled(), button.text()
    assert dialog.import_button.isEnabled()


def test_calibration_buttons_follow_the_selection(window, qtbot):
    from napkin_gui.ui.calibration_dialog import CalibrationDialog
    created = "2026-11-25T10:00:00Z"
    cal.save_profile(cal.CalibrationProfile(
        id=cal.new_profile_id("NVIDIA GeForce RTX 4090", created), gpu_name="NVIDIA GeForce RTX 4090",
        gpu_id="rtx-4090", created=created, matmul_tflops=(("bf16", 120.0),), memory_bandwidth_gbps=900.0,
        total_memory_bytes=24 * 2**30))
    dialog = CalibrationDialog(None, window)
    qtbot.addWidget(dialog)
    assert not dialog.use_button.isEnabled()
    dialog.list.setCurrentRow(0)
    assert dialog.use_button.isEnabled() and dialog.delete_button.isEnabled() and dialog.export_button.isEnabled()
    dialog.use_button.click()
    assert dialog.none_button.isEnabled()


# ------------------------------------------------------------------------ menus (12.17)
def test_file_export_report_writes_the_plans_pdf(window, tmp_path):
    assert window.export_action.text() == "&Export report (PDF)…"
    from napkin_gui.ui.window_menus import export_report
    out = tmp_path / "plan"
    assert export_report(window, str(out))
    pdf = tmp_path / "plan.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and not window.errors
    (tmp_path / "a-file").write_text("")
    assert export_report(window, str(tmp_path / "a-file" / "x.pdf")) is False
    assert window.errors and window.errors[-1].startswith("report:")


def test_examples_menu_opens_each_shipped_plan(window):
    actions = window.examples_menu.actions()
    shipped = sorted(EXAMPLES.glob("*.napkin.json"))
    assert [Path(a.data()) for a in actions] == shipped and len(shipped) >= 3
    for action, path in zip(actions, shipped):
        action.trigger()
        assert window.path == path.resolve() and window.controller.plan == load_plan(path)
    assert "llama-3.1-70b · QLoRA (4-bit base) · RTX 4090 × 2" in [a.text() for a in actions]


def test_help_about(window, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append((title, text)))
    about = next(a for a in window.help_menu.actions() if a.text() == "&About napkin")
    about.trigger()
    assert shown and shown[0][0] == "About napkin" and "napkin" in shown[0][1]
    assert window.menuBar().actions()[-1].text() == "&Help"


def test_pdf_pages_are_numbered(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    from napkin_gui.report.pdf import build_report
    out = tmp_path / "r.pdf"
    pages = build_report(Plan(model="llama-3.2-1b"), out)
    reader = pypdf.PdfReader(str(out))
    assert len(reader.pages) == pages >= 2
    for i, page in enumerate(reader.pages, start=1):
        text = " ".join(page.extract_text().split())
        assert text.endswith(f"page {i} of {pages}"), text[-80:]
