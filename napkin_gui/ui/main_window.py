"""MainWindow: editor left, memory bar on top, timeline / time / hardware / best plans tabs, advice right.

It wires the PlanController to every view and owns the document: New / Open / Save /
Save As (*.napkin.json through core.plan.save_plan, atomic), recent files, the
unsaved-changes prompt, undo/redo, the last session (QSettings) and the probe thread.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QFileDialog, QLineEdit, QMainWindow, QMessageBox, QScrollArea, QSplitter, QTabWidget,
                               QWidget)

from ..core.errors import PlanError
from ..core.plan import PLAN_SUFFIX, Plan, load_plan, plan_from_dict, plan_to_dict, save_plan
from .. import palette
from . import window_menus
from .advice_panel import AdvicePanel
from .best_plans_search import BestPlansSearch
from .best_plans_view import BestPlansView
from .controller import PlanController
from .hardware_table import HardwareTable
from .invalid_plan import grey_out
from .memory_bar_view import MemoryBarView
from .plan_editor import PlanEditor
from .settings import add_recent_file, keep_backup, open_app_settings, recent_files, settings_path
from .probe_runner import ProbeRunner
from .status_strip import NvmlStrip, ProbePanel, measured_vs_estimated
from .time_curve_view import TimeCurveView
from .timeline_view import MemoryTimelineView, measured_timeline

DEFAULT_PLAN = Plan(model="llama-3.1-8b", batch_size=4, grad_ckpt=True, dataset_tokens=100e6)
FILE_FILTER = f"napkin plans (*{PLAN_SUFFIX});;JSON (*.json)"
# The session (plan, path, dirty) is stored once edits pause this long, and on close: each
# QSettings.setValue makes Qt rewrite the settings file at the next turn of the event loop
# (bench/README.md), which a slider drag would otherwise pay on every step.
SESSION_SAVE_DELAY_MS = 1000
DEFAULT_SIZE = (1600, 1000)  # the window at first launch (and napkin-gui --screenshot's default)


class MainWindow(QMainWindow):
    """The napkin window."""

    def __init__(self, plan: Plan | None = None, restore_session: bool = True, poll_nvml: bool = True,
                 persist: bool = True, background: bool = False) -> None:
        super().__init__()
        pg.setConfigOptions(background=palette.BACKGROUND, foreground=palette.FOREGROUND, antialias=True)
        self.settings, self.settings_note = open_app_settings()  # note: a corrupt file was set aside
        self.persist = persist  # False: leave the stored session and recent files alone (screenshots)
        self.path: Path | None = None
        self._session_timer = QTimer(self, singleShot=True, interval=SESSION_SAVE_DELAY_MS)
        self._session_timer.timeout.connect(self._save_session)
        self.controller = PlanController(plan or DEFAULT_PLAN, self)
        self.background = self.slow_background = None
        if background:  # curves on the other core (ui/background.py); the advice and the plan
            # search, which price thousands of plans, in a low-priority child of their own
            from .background import BackgroundEstimator
            from .best_plans_search import SEARCH_NICE
            self.background = BackgroundEstimator(self)
            self.slow_background = BackgroundEstimator(self, nice=SEARCH_NICE, name="napkin-search")
            self.controller.use_background(self.background, self.slow_background)
        self._build_views()
        self._build_actions()
        self._connect()
        if plan is None and restore_session:
            self._restore_session()
        if self.settings_note:
            self.statusBar().showMessage(self.settings_note, 30000)
        self._restore_geometry()
        self._update_title()
        self.controller.schedule()
        self.poller = None
        if poll_nvml:
            self.start_nvml_poller()

    # ------------------------------------------------------------------ layout
    def _build_views(self) -> None:
        c = self.controller
        self.editor = PlanEditor(c, self)
        scroll = QScrollArea(self)
        scroll.setWidget(self.editor)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.memory_view = MemoryBarView(self)
        self.timeline_view = MemoryTimelineView(self)
        self.time_view = TimeCurveView(self)
        self.hardware_table = HardwareTable(self)
        self.advice_panel = AdvicePanel(self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.timeline_view, "Memory timeline")
        self.tabs.addTab(self.time_view, "Time")
        self.tabs.addTab(self.hardware_table, "Hardware")
        self.best_plans_view = BestPlansView(self)
        self.tabs.addTab(self.best_plans_view, "Best plans")
        # the plan search, in a low-priority child of its own when the window has a background
        # the plan search shares the advice's low-priority child (none: it runs here)
        self.best_plans = BestPlansSearch(c, background=False, parent=self, estimator=self.slow_background)
        self.center = QSplitter(Qt.Orientation.Vertical, self)
        self.center.addWidget(self.memory_view)
        self.center.addWidget(self.tabs)
        self.center.setStretchFactor(0, 0)
        self.center.setStretchFactor(1, 1)
        self.center.setSizes([330, 600])
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.center)
        self.splitter.addWidget(self.advice_panel)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([360, 960, 300])
        self.setCentralWidget(self.splitter)
        self.nvml_strip = NvmlStrip(parent=self)
        self.probe_panel = ProbePanel(self)
        self.statusBar().addWidget(self.nvml_strip, 1)
        self.statusBar().addPermanentWidget(self.probe_panel)
        self.resize(*DEFAULT_SIZE)

    def _action(self, menu: Any, text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&New", self.new_plan, QKeySequence.StandardKey.New, "Start a new plan.")
        self._action(file_menu, "&Open…", self._on_open_triggered, QKeySequence.StandardKey.Open,
                     "Open a *.napkin.json plan.")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._action(file_menu, "&Save", self.save, QKeySequence.StandardKey.Save, "Save the plan.")
        self._action(file_menu, "Save &as…", self.save_as, QKeySequence.StandardKey.SaveAs,
                     "Save the plan under a new name.")
        self.export_action = window_menus.add_export_action(self, file_menu)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit, "Close napkin.")
        self.examples_menu = window_menus.add_examples_menu(self)
        edit = bar.addMenu("&Edit")
        undo = self.controller.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.controller.undo_stack.createRedoAction(self, "&Redo")
        keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)
        redo.setShortcuts(keys + [k for k in (QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")) if k not in keys])
        edit.addAction(undo)
        edit.addAction(redo)
        self.undo_action, self.redo_action = undo, redo
        edit.addSeparator()
        self._action(edit, "Find &model", lambda: self._focus(self.editor.model_combo), "Ctrl+F",
                     "Type to search the model presets.")
        self._action(edit, "Find &GPU", lambda: self._focus(self.editor.gpu_combo), "Ctrl+G",
                     "Type to search the GPU catalog.")
        view = bar.addMenu("&View")
        self.pin_action = self._action(view, "&Pin current as before", self._on_pin_triggered, "Ctrl+P",
                                       "Keep the current bar to compare the next change against.")
        self.pin_action.setCheckable(True)
        for i, name in enumerate(("Memory timeline", "Time", "Hardware", "Best plans"), start=1):
            self._action(view, name, lambda _=False, i=i: self.tabs.setCurrentIndex(i - 1), f"Ctrl+{i}")
        tools = bar.addMenu("&Tools")
        self.probe_action = self._action(tools, "&Probe GPU", self.start_probe, "Ctrl+R",
                                         "Measure this GPU and run a short trial of the plan.")
        self._action(tools, "&Calibration profiles…", self.show_calibration_dialog, "Ctrl+K",
                     "List, use, delete, export or import probe calibration profiles.")
        self.help_menu = window_menus.add_help_menu(self)
        self._rebuild_recent_menu()
        for field in self.editor.findChildren(QWidget):
            if isinstance(field, (QLineEdit, QAbstractSpinBox, QComboBox)):
                field.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """Ctrl+Z / redo in a spin box or text field undo the plan, not the field's text.

        Every keystroke already edited the plan; a QLineEdit would otherwise claim the
        shortcut (ShortcutOverride) for its own text undo, and the plan's undo never ran.
        """
        if (event.type() == QEvent.Type.ShortcutOverride and shiboken6.isValid(self)
                and (event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo)
                     or event.key() == Qt.Key.Key_Y and event.modifiers() == Qt.KeyboardModifier.ControlModifier)):
            return True  # left unaccepted: the window's Undo / Redo shortcut fires
        return False

    def _connect(self) -> None:
        c = self.controller
        c.estimate_changed.connect(self.memory_view.show_estimate)
        c.estimate_changed.connect(self.timeline_view.show_estimate)
        c.estimate_changed.connect(self.time_view.show_estimate)
        c.sweeps_changed.connect(self.time_view.show_sweeps)
        c.hardware_changed.connect(self.hardware_table.show_rows)
        c.advice_changed.connect(self._on_controller_advice_changed)
        c.error_changed.connect(self._on_controller_error_changed)
        c.undo_stack.cleanChanged.connect(self._on_undo_stack_clean_changed)
        c.plan_changed.connect(self._on_controller_plan_changed)
        self.hardware_table.row_chosen.connect(self._on_hardware_row_chosen)
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        self._on_tabs_current_changed(self.tabs.currentIndex())
        self.advice_panel.plan_chosen.connect(c.set_plan)
        self.best_plans.results_changed.connect(self.best_plans_view.show_results)
        self.best_plans.status_changed.connect(self.best_plans_view.show_status)
        self.best_plans_view.plan_chosen.connect(c.set_plan)
        self.memory_view.pin_toggled.connect(self.pin_action.setChecked)
        c.probe_changed.connect(self._on_controller_probe_changed)
        self.probe_runner = runner = ProbeRunner(c, self)
        runner.running_changed.connect(self._on_probe_runner_running_changed)
        runner.progress.connect(self.probe_panel.show_progress)
        runner.failed.connect(self._on_probe_runner_failed)
        runner.nvml_updated.connect(self.nvml_strip.show_snapshot)
        runner.message.connect(self._on_probe_runner_message)
        self.probe_panel.probe_requested.connect(self.start_probe)
        self.probe_panel.cancel_requested.connect(runner.cancel)

    def _focus(self, widget: QWidget) -> None:
        widget.setFocus()
        widget.lineEdit().selectAll()

    # ---------------------------------------------------------------- documents
    @property
    def dirty(self) -> bool:
        return not self.controller.undo_stack.isClean()

    def _update_title(self) -> None:
        name = self.path.name if self.path else "untitled"
        self.setWindowTitle(f"{name}[*] — napkin")
        self.setWindowModified(self.dirty)

    def ask_unsaved(self) -> QMessageBox.StandardButton:
        """Save / Discard / Cancel for unsaved changes (tests replace this)."""
        return QMessageBox.question(
            self, "Unsaved changes", "The plan has unsaved changes. Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def show_error(self, title: str, text: str) -> None:
        """A message box with the one-line reason (tests replace this)."""
        self.statusBar().showMessage(text, 10000)
        QMessageBox.warning(self, title, text)

    def maybe_save(self) -> bool:
        """True when it is fine to drop the current plan (saved, discarded)."""
        if not self.dirty:
            return True
        answer = self.ask_unsaved()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def new_plan(self) -> None:
        if self.maybe_save():
            self.path = None
            self.controller.reset_plan(DEFAULT_PLAN)
            self._update_title()

    def _on_open_triggered(self) -> None:
        if not self.maybe_save():
            return
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open plan", start, FILE_FILTER)
        if path:
            self.open_path(path, ask=False)

    def open_path(self, path: str | Path, ask: bool = True) -> bool:
        """Load a plan file; a bad file is reported and left untouched, the current plan kept."""
        if ask and not self.maybe_save():
            return False
        try:
            plan = load_plan(path)
        except PlanError as err:
            self.show_error("Cannot open plan", str(err))
            return False
        self.path = Path(path).resolve()
        self.controller.reset_plan(plan)
        self._remember_recent(str(self.path))
        self._update_title()
        return True

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self) -> bool:
        start = str(self.path) if self.path else f"{self.controller.plan.model.replace('/', '_')}{PLAN_SUFFIX}"
        path, _ = QFileDialog.getSaveFileName(self, "Save plan as", start, FILE_FILTER)
        return self.save_to(path) if path else False

    def save_to(self, path: str | Path) -> bool:
        """Write the plan atomically (core.plan.save_plan); *.napkin.json appended when missing."""
        p = Path(path)
        if not p.name.endswith(PLAN_SUFFIX) and not p.name.endswith(".json"):
            p = p.with_name(p.name + PLAN_SUFFIX)
        try:
            save_plan(self.controller.plan, p)
        except OSError as err:
            self.show_error("Cannot save plan", f"plan: cannot write {p}: {err}")
            return False
        self.path = p.resolve()
        self.controller.undo_stack.setClean()
        self._remember_recent(str(self.path))
        self._update_title()
        self._save_session()
        self.statusBar().showMessage(f"saved {self.path}", 5000)
        return True

    def _remember_recent(self, path: str) -> None:
        if not self.persist:
            return
        add_recent_file(self.settings, path)
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = recent_files(self.settings)
        for i, path in enumerate(files, start=1):
            action = self.recent_menu.addAction(f"&{i} {path}")
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(files))

    # ------------------------------------------------------------------ session
    def _save_session(self) -> None:
        self._session_timer.stop()
        if not self.persist:
            return
        s = self.settings
        s.setValue("session/plan", json.dumps(plan_to_dict(self.controller.plan)))
        s.setValue("session/path", str(self.path) if self.path else "")
        s.setValue("session/dirty", self.dirty)

    def _restore_session(self) -> None:
        s = self.settings
        text = str(s.value("session/plan", "") or "")
        path = str(s.value("session/path", "") or "")
        dirty = str(s.value("session/dirty", "false")).lower() == "true"
        if not text:
            return
        try:
            plan = plan_from_dict(json.loads(text))
        except (PlanError, ValueError, RecursionError) as err:
            self._set_session_aside(err)
            return
        self.path = Path(path) if path and Path(path).is_file() else None
        self.controller.reset_plan(plan)
        if dirty or (path and self.path is None):
            self.controller.undo_stack.resetClean()
        self._save_session()

    def _set_session_aside(self, err: Exception) -> None:
        """The stored session plan does not load: keep a copy of the settings file and say so
        (the next session save writes over it)."""
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        if not self.persist:
            return
        self.settings.sync()
        try:
            backup = keep_backup(settings_path(), move=False).name
        except OSError as copy_err:
            backup = f"no copy ({copy_err.strerror or copy_err})"
        note = f"settings: the last session's plan could not be restored ({reason}); kept the file as {backup}"
        self.settings_note = f"{self.settings_note}; {note}" if self.settings_note else note

    def _forget_discarded_session(self) -> None:
        """Quit with Discard: the session becomes the saved file (or nothing), never the discarded edits."""
        if not self.persist:
            return
        s = self.settings
        plan = None
        if self.path is not None:
            try:
                plan = load_plan(self.path)
            except PlanError:
                plan = None
        if plan is None:
            for key in ("session/plan", "session/path", "session/dirty"):
                s.remove(key)
            return
        s.setValue("session/plan", json.dumps(plan_to_dict(plan)))
        s.setValue("session/path", str(self.path))
        s.setValue("session/dirty", False)

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self.maybe_save():
            event.ignore()
            return
        self._session_timer.stop()
        if self.dirty:  # still unsaved after maybe_save: the user chose Discard
            self._forget_discarded_session()
        else:
            self._save_session()
        if self.persist:
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.sync()
        self.probe_runner.cancel()
        if self.poller is not None:
            self.poller.stop()
        if self.background is not None:
            self.background.close()
        self.best_plans.close()
        event.accept()

    # ------------------------------------------------------------------ slots
    # The controller and undo stack die with the window and may signal while it is being
    # destroyed (QUndoStack clears itself): those slots check the window is still alive.
    def _on_undo_stack_clean_changed(self, _clean: bool) -> None:
        if shiboken6.isValid(self):
            self._update_title()

    def _on_controller_plan_changed(self, _plan: Plan) -> None:
        if shiboken6.isValid(self):
            self._session_timer.start()  # saved once edits pause (SESSION_SAVE_DELAY_MS)

    def _on_controller_advice_changed(self, items: tuple) -> None:
        self.advice_panel.show_advice(items, self.controller.plan)

    def _on_controller_error_changed(self, message: str) -> None:
        """An invalid plan greys out every figure and says why; the next valid one restores
        them (its estimate_changed follows this signal)."""
        if message:
            self.statusBar().showMessage(message, 15000)
            self.memory_view.show_invalid(message)
        else:
            self.statusBar().clearMessage()
        for view in (self.memory_view, self.timeline_view, self.time_view, self.hardware_table, self.advice_panel):
            grey_out(view, bool(message))
        self.pin_action.setEnabled(not message)

    def _on_hardware_row_chosen(self, row: Any) -> None:
        plan = self.controller.plan
        self.controller.set_plan(dataclasses.replace(plan, gpu=row.gpu_id, n_gpus=row.n_gpus, sharding=row.sharding))

    def _on_tabs_current_changed(self, index: int) -> None:
        if not shiboken6.isValid(self):
            return
        shown = self.tabs.widget(index)
        self.controller.set_wanted(sweeps=shown is self.time_view, hardware=shown is self.hardware_table)
        self.best_plans.set_wanted(shown is self.best_plans_view)

    # the probe's thread may finish while the window is being destroyed (closeEvent cancels it)
    def _on_probe_runner_running_changed(self, running: bool) -> None:
        if not shiboken6.isValid(self):
            return
        self.probe_panel.set_running(running)
        if running:
            self.probe_panel.show_result("probing…")

    def _on_probe_runner_failed(self, message: str) -> None:
        if shiboken6.isValid(self):
            self.probe_panel.show_result(message, ok=False)

    def _on_probe_runner_message(self, text: str) -> None:
        if shiboken6.isValid(self):
            self.statusBar().showMessage(text, 10000)

    def _on_controller_probe_changed(self, result: Any) -> None:
        """The probe's trial against the estimate it was run for, and its measured timeline."""
        record = result.trial.record if result.trial is not None else None
        self.probe_panel.show_result(measured_vs_estimated(record, self.controller.estimate) or result.status)
        self.timeline_view.set_measured(measured_timeline(record))

    def _on_pin_triggered(self, checked: bool) -> None:
        self.memory_view.set_pinned(self.controller.estimate if checked else None)

    # --------------------------------------------------------- NVML and probe
    def start_nvml_poller(self, backend: Any = None) -> None:
        """Poll NVML every 2 s for the status strip (backend: a fake in tests)."""
        from .probe_worker import NvmlPoller
        self.poller = NvmlPoller(backend=backend, parent=self)
        self.nvml_strip._history = self.poller.history
        self.poller.updated.connect(self.nvml_strip.show_snapshot)
        self.poller.start()

    def start_probe(self, probe: Any = None, **probe_kwargs: Any) -> None:
        """Probe the GPU with the current plan as the trial (probe: a test double)."""
        self.probe_runner.start(probe, **probe_kwargs)

    def show_calibration_dialog(self) -> None:
        from .calibration_dialog import CalibrationDialog
        dialog = CalibrationDialog(self.controller.calibration, self)
        dialog.profile_chosen.connect(self.controller.set_calibration)
        dialog.exec()
