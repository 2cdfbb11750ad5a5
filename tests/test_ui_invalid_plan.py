"""Issue 12 item 4: an invalid edit greys out every figure and says why; a valid edit recovers.

Before: typing `foo/bar-13b` as the model showed the error line, but the banner stayed green
"✓ fits" with the previous model's figures, and every view stayed live and clickable.
"""
from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan
from napkin_gui import palette
from napkin_gui.ui.invalid_plan import is_greyed
from napkin_gui.ui.memory_bar_view import verdict_text

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="rtx-4090")


@pytest.fixture
def window(open_window):
    return open_window(PLAN)


def figures(w):
    return (w.memory_view, w.timeline_view, w.time_view, w.hardware_table, w.advice_panel)


def type_model(w, qtbot, text):
    line = w.editor.model_combo.lineEdit()
    line.clear()
    qtbot.keyClicks(line, text)
    qtbot.keyClick(line, Qt.Key.Key_Return)
    w.controller.flush()


def test_unknown_model_greys_every_figure_and_says_why(window, qtbot):
    assert window.memory_view.verdict.text().startswith("✓ fits")
    type_model(window, qtbot, "foo/bar-13b")
    reason = window.controller.error
    assert reason.startswith("model: unknown model 'foo/bar-13b'")
    verdict = window.memory_view.verdict
    assert verdict.text() == f"✗ no estimate — {reason}"
    assert verdict.property("color") == palette.INVALID
    assert "fits" not in verdict.text() and "GiB" not in window.memory_view.summary.text()
    assert window.editor.model_info.text() == ""
    for view in figures(window):
        assert is_greyed(view), type(view).__name__
    assert not window.pin_action.isEnabled()
    # a later edit of another field keeps the plan invalid: still greyed, still saying why
    window.editor.widgets["batch_size"].spin.setValue(8)
    window.controller.flush()
    assert window.controller.plan.batch_size == 8
    assert verdict.text().startswith("✗ no estimate — model:")
    assert all(is_greyed(v) for v in figures(window))


def test_a_valid_edit_recovers_every_figure(window, qtbot):
    type_model(window, qtbot, "foo/bar-13b")
    window.editor.widgets["batch_size"].spin.setValue(8)
    type_model(window, qtbot, "qwen2.5-0.5b")
    assert window.controller.error == ""
    est = estimate(dataclasses.replace(PLAN, model="qwen2.5-0.5b", batch_size=8))
    assert window.controller.estimate == est
    assert window.memory_view.verdict.text() == verdict_text(est)
    assert window.memory_view.verdict.property("color") == (palette.FITS if est.memory.fits else palette.OOM)
    assert " params · " in window.editor.model_info.text()
    for view in figures(window):
        assert view.isEnabled() and not is_greyed(view), type(view).__name__
    assert window.pin_action.isEnabled()


def test_undo_of_the_invalid_edit_recovers(window, qtbot):
    before = window.memory_view.verdict.text()
    type_model(window, qtbot, "foo/bar-13b")
    window.undo_action.trigger()
    window.controller.flush()
    assert window.memory_view.verdict.text() == before
    assert not any(is_greyed(v) for v in figures(window))


def test_an_impossible_combination_greys_out_too(window):
    window.controller.set_plan(dataclasses.replace(PLAN, method="qlora", precision="fp32"))
    window.controller.flush()
    assert window.controller.error
    assert window.memory_view.verdict.text().startswith("✗ no estimate — ")
    assert all(is_greyed(v) for v in figures(window))


def test_a_refused_edit_line_clears_with_the_next_valid_estimate(window):
    line = window.editor.widgets["lora_targets"]
    line.setText("q proj, v_proj")
    line.editingFinished.emit()
    assert not window.editor.error_label.isHidden()
    window.editor.widgets["batch_size"].spin.setValue(4)
    window.controller.flush()
    assert window.editor.error_label.isHidden()
