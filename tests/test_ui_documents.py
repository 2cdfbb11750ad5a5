"""Plans as documents: save, open, corrupt files, unsaved changes, recent files, last session."""
from __future__ import annotations

import dataclasses
import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from napkin_gui.core.names import value_name
from napkin_gui.core.plan import Plan, load_plan, save_plan
from napkin_gui.ui.main_window import DEFAULT_PLAN, MainWindow
from napkin_gui.ui.settings import app_settings, recent_files

PLAN = Plan(model="llama-3.2-1b", batch_size=2, seq_len=1024, gpu="rtx-4090")
Button = QMessageBox.StandardButton


def make_window(qtbot, plan=PLAN, restore=False):
    w = MainWindow(plan, restore_session=restore, poll_nvml=False)
    w.answers = []
    w.ask_unsaved = lambda: w.answers.pop(0) if w.answers else Button.Discard
    w.errors = []
    w.show_error = lambda title, text: w.errors.append(text)
    qtbot.addWidget(w)
    w.show()
    w.controller.flush()
    return w


def test_save_and_open_roundtrip(qtbot, tmp_path):
    w = make_window(qtbot)
    w.editor.widgets["batch_size"].spin.setValue(8)
    assert w.dirty and w.isWindowModified()
    assert w.save_to(tmp_path / "run")  # the suffix is added
    path = tmp_path / "run.napkin.json"
    assert load_plan(path) == dataclasses.replace(PLAN, batch_size=8)
    assert not w.dirty and not w.isWindowModified()
    assert w.windowTitle().startswith("run.napkin.json")
    other = make_window(qtbot, plan=DEFAULT_PLAN)
    assert other.open_path(path)
    assert other.controller.plan == dataclasses.replace(PLAN, batch_size=8)
    assert other.editor.widgets["batch_size"].spin.value() == 8
    assert not other.dirty
    assert str(path.resolve()) in recent_files(app_settings())
    assert other.recent_menu.actions()[0].text().endswith(str(path.resolve()))


def test_corrupt_file_is_reported_and_left_alone(qtbot, tmp_path):
    w = make_window(qtbot)
    bad = tmp_path / "bad.napkin.json"
    bad.write_text('{"model": "llama-3.2-1b", "batch_size": 0', encoding="utf-8")
    before = bad.read_bytes()
    assert not w.open_path(bad)
    assert w.errors and "not valid JSON" in w.errors[0]
    assert bad.read_bytes() == before
    assert w.controller.plan == PLAN and w.path is None
    invalid = tmp_path / "invalid.napkin.json"
    invalid.write_text(json.dumps({"model": "llama-3.2-1b", "method": "qlora", "precision": "fp32"}))
    assert not w.open_path(invalid)
    assert w.errors[-1].startswith("precision:")


def test_unsaved_changes_prompt(qtbot, tmp_path):
    w = make_window(qtbot)
    w.editor.widgets["grad_ckpt"].setChecked(True)
    w.answers = [Button.Cancel]
    w.new_plan()
    assert w.controller.plan.grad_ckpt  # cancelled: nothing lost
    w.answers = [Button.Discard]
    w.new_plan()
    assert w.controller.plan == DEFAULT_PLAN and not w.dirty
    w.editor.widgets["grad_ckpt"].setChecked(not DEFAULT_PLAN.grad_ckpt)
    w.path = tmp_path / "keep.napkin.json"
    w.answers = [Button.Save]
    w.new_plan()
    assert load_plan(tmp_path / "keep.napkin.json").grad_ckpt != DEFAULT_PLAN.grad_ckpt


def test_close_with_unsaved_changes_can_be_cancelled(qtbot):
    w = make_window(qtbot)
    w.editor.widgets["batch_size"].spin.setValue(3)
    w.answers = [Button.Cancel]
    assert not w.close()
    assert w.isVisible()


def test_last_session_is_restored(qtbot, tmp_path):
    w = make_window(qtbot)
    save_plan(PLAN, tmp_path / "a.napkin.json")
    w.open_path(tmp_path / "a.napkin.json")
    w.editor.widgets["seq_len"].spin.setValue(4096)  # unsaved edit
    w._save_session()  # what the pause timer does; then the app is killed (Discard at quit forgets it:
    again = make_window(qtbot, plan=None, restore=True)  # tests/test_ui_settings_recovery.py)
    assert again.controller.plan == dataclasses.replace(PLAN, seq_len=4096)
    assert again.path == (tmp_path / "a.napkin.json").resolve()
    assert again.dirty  # the edit was never saved


def test_session_is_stored_once_edits_pause(qtbot):
    w = make_window(qtbot)

    def stored_batch_size():
        text = app_settings().value("session/plan", "")
        return json.loads(text)["batch_size"] if text else None

    before = stored_batch_size()
    for value in (3, 5, 7):  # a drag: not written on every step
        w.editor.widgets["batch_size"].spin.setValue(value)
    assert stored_batch_size() == before
    qtbot.waitUntil(lambda: stored_batch_size() == 7, timeout=5000)


def test_keyboard_undo_redo(qtbot):
    w = make_window(qtbot)
    w.editor.combos["attention"].setCurrentText(value_name("attention", "eager"))
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    w.tabs.setFocus()
    qtbot.keyClick(w.tabs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.controller.plan.attention == "sdpa"
    qtbot.keyClick(w.tabs, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert w.controller.plan.attention == "eager"


def test_ctrl_z_in_a_spin_box_undoes_the_plan(qtbot):
    w = make_window(qtbot)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    line = w.editor.widgets["batch_size"].spin.lineEdit()
    w.editor.widgets["batch_size"].spin.setFocus()
    line.selectAll()
    qtbot.keyClicks(line, "24")
    assert w.controller.plan.batch_size == 24
    qtbot.keyClick(line, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.controller.plan.batch_size == PLAN.batch_size
    assert w.editor.widgets["batch_size"].spin.value() == PLAN.batch_size


def test_keyboard_tab_switch_and_find(qtbot):
    w = make_window(qtbot)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    w.tabs.setFocus()
    qtbot.keyClick(w.tabs, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert w.tabs.currentWidget() is w.time_view
    qtbot.keyClick(w.tabs, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    assert w.editor.gpu_combo.lineEdit().hasFocus()
