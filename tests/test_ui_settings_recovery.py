"""Issue 12 item 10: a corrupt napkin-gui.ini is kept and reported, the recent list is capped on
read, and "Discard" at quit discards.

Before: a binary, UTF-16, truncated or invalid-plan settings file was read as far as Qt could
and silently written over (the session gone); 200,000 recent entries built a 200,000-item menu
(startup never finished); quitting with Discard stored the discarded plan, which came back
dirty on the next launch.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
from PySide6.QtWidgets import QMessageBox

from napkin_gui.core.plan import Plan, plan_to_dict, save_plan
from napkin_gui.ui.main_window import DEFAULT_PLAN, MainWindow
from napkin_gui.ui.settings import MAX_RECENT, app_settings, settings_path

PLAN = Plan(model="llama-3.2-1b", batch_size=2, seq_len=1024, gpu="rtx-4090")
Button = QMessageBox.StandardButton


def launch(qtbot, answer=Button.Discard):
    w = MainWindow(None, restore_session=True, poll_nvml=False)
    w.ask_unsaved = lambda: answer
    qtbot.addWidget(w)
    w.controller.flush()
    return w


def store_session(plan=PLAN, path="", dirty=False):
    s = app_settings()
    s.setValue("session/plan", json.dumps(plan_to_dict(plan)))
    s.setValue("session/path", path)
    s.setValue("session/dirty", dirty)
    s.sync()


def backups():
    folder = settings_path().parent
    return sorted(folder.glob("napkin-gui.ini.corrupt-*")) if folder.exists() else []


@pytest.mark.parametrize("kind", ["binary", "utf16", "not-utf8"])
def test_unreadable_file_is_moved_aside_and_reported(qtbot, kind):
    store_session()
    good = settings_path().read_bytes()
    data = {"binary": bytes(range(256)) * 4, "utf16": good.decode().encode("utf-16"),
            "not-utf8": good + b"\nkey=\xff\xfe\xfa\n"}[kind]
    settings_path().write_bytes(data)
    w = launch(qtbot)
    assert w.settings_note.startswith("settings: napkin-gui.ini was unreadable (")
    [backup] = backups()
    assert backup.read_bytes() == data and backup.name in w.settings_note
    assert w.statusBar().currentMessage() == w.settings_note
    assert w.controller.plan == DEFAULT_PLAN
    w._save_session()
    w.settings.sync()
    assert settings_path().read_bytes() != data and backup.read_bytes() == data


@pytest.mark.parametrize("kind", ["truncated", "invalid plan", "not json"])
def test_a_session_that_does_not_load_keeps_a_copy_and_says_why(qtbot, kind):
    store_session()
    text = settings_path().read_text()
    if kind == "truncated":
        text = text[: text.index("batch_size")]
    elif kind == "invalid plan":
        store_session(dataclasses.replace(PLAN, batch_size=2))
        text = settings_path().read_text().replace('\\"batch_size\\": 2', '\\"batch_size\\": -5')
        assert "-5" in text
    else:
        text = text.replace("\nplan=", "\nplan=not json ")
        assert "not json" in text
    settings_path().write_text(text)
    w = launch(qtbot)
    assert "the last session's plan could not be restored (" in w.settings_note, w.settings_note
    if kind == "invalid plan":
        assert "batch_size" in w.settings_note
    [backup] = backups()
    assert backup.read_text() == text and backup.name in w.settings_note
    assert w.controller.plan == DEFAULT_PLAN


def test_a_good_file_is_left_alone(qtbot):
    store_session()
    w = launch(qtbot)
    assert w.settings_note == "" and backups() == [] and w.controller.plan == PLAN


def test_recent_files_are_capped_on_read(qtbot):
    s = app_settings()
    s.setValue("recent", [f"/plans/p{i}.napkin.json" for i in range(200_000)])
    s.sync()
    w = launch(qtbot)
    assert len(w.recent_menu.actions()) == MAX_RECENT
    assert w.recent_menu.actions()[0].text().endswith("/plans/p0.napkin.json")


def test_discard_at_quit_of_an_untitled_plan_is_not_restored(qtbot):
    store_session()
    w = launch(qtbot)
    w.editor.widgets["batch_size"].spin.setValue(16)
    w._save_session()  # the pause timer stored the edit ...
    assert w.close()  # ... and the user discarded it
    again = launch(qtbot)
    assert again.controller.plan == DEFAULT_PLAN and not again.dirty


def test_discard_at_quit_comes_back_as_the_saved_file(qtbot, tmp_path):
    path = tmp_path / "a.napkin.json"
    save_plan(PLAN, path)
    w = launch(qtbot)
    assert w.open_path(path)
    w.editor.widgets["seq_len"].spin.setValue(4096)
    w._save_session()
    assert w.close()
    again = launch(qtbot)
    assert again.controller.plan == PLAN and again.path == path.resolve() and not again.dirty


def test_save_at_quit_keeps_the_edit(qtbot, tmp_path):
    path = tmp_path / "a.napkin.json"
    save_plan(PLAN, path)
    w = launch(qtbot, answer=Button.Save)
    assert w.open_path(path)
    w.editor.widgets["seq_len"].spin.setValue(4096)
    assert w.close()
    again = launch(qtbot)
    assert again.controller.plan == dataclasses.replace(PLAN, seq_len=4096) and not again.dirty
