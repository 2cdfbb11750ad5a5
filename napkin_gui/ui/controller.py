"""PlanController: owns the plan, its undo history and the recompute; views listen to it.

Editors call set_plan(replace(plan, ...)); plan_changed fires at once (editors re-sync
under QSignalBlocker), then one 0-ms single-shot timer coalesces a burst of edits into a
single recompute that emits estimate_changed and sweeps_changed. The hardware table
(only while it is visible) and the advice are slower: each follows on its own 0-ms timer,
after the bars and curves have been painted.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from ..core.errors import PlanError
from ..core.plan import Plan, check_combination
from .estimate_cache import EstimateCache
from .sweeps import plan_sweeps

MERGE_SECONDS = 1.5  # edits of one field closer than this undo as one step (slider drags)


def changed_fields(old: Plan, new: Plan) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Plan) if getattr(old, f.name) != getattr(new, f.name))


class PlanCommand(QUndoCommand):
    """Replace the controller's plan; consecutive edits of one field merge."""

    def __init__(self, controller: PlanController, old: Plan, new: Plan) -> None:
        fields = changed_fields(old, new)
        self.field = fields[0] if len(fields) == 1 else None
        text = f"change {self.field}" if self.field else "change plan"
        super().__init__(text)
        self.controller, self.old, self.new = controller, old, new
        self.stamp = time.monotonic()

    def id(self) -> int:  # noqa: A003 - Qt override
        return 1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt override
        if not isinstance(other, PlanCommand) or self.field is None or other.field != self.field:
            return False
        if other.stamp - self.stamp > MERGE_SECONDS:
            return False
        self.new, self.stamp = other.new, other.stamp
        if self.new == self.old:
            self.setObsolete(True)
        return True

    def redo(self) -> None:
        self.controller._apply(self.new)

    def undo(self) -> None:
        self.controller._apply(self.old)


class PlanController(QObject):
    """The one model of the window: a Plan in, Estimates (and curves, rows, advice) out."""

    plan_changed = Signal(object)       # Plan
    estimate_changed = Signal(object)   # Estimate of a valid plan
    error_changed = Signal(str)         # PlanError line, "" when the plan is valid
    sweeps_changed = Signal(object)     # sweeps.Sweeps
    hardware_changed = Signal(object)   # tuple of core.compare rows
    advice_changed = Signal(object)     # tuple of core.advise Advice
    recomputed = Signal()               # after every view got the new figures (benchmarks, tests)

    def __init__(self, plan: Plan, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._plan = plan
        self.estimates = EstimateCache()
        self.undo_stack = QUndoStack(self)
        self.estimate = None
        self.error = ""
        self.hardware_counts = (1, 2, 4, 8)
        self.sweeps_wanted = self.hardware_wanted = True
        self._sweeps_stale = self._hardware_stale = False
        self._hardware_cache: dict[Plan, Any] = {}
        self._advice_cache: dict[tuple[Plan, Any], Any] = {}
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.recompute)
        # the table (compare_hardware: ~150 estimates) and advice follow the views, each on
        # its own 0-ms timer, so bars and curves are painted before they start
        self._hardware_timer = QTimer(self, singleShot=True, interval=0)
        self._hardware_timer.timeout.connect(self._recompute_hardware)
        self._advice_timer = QTimer(self, singleShot=True, interval=0)
        self._advice_timer.timeout.connect(self._recompute_advice)

    # ------------------------------------------------------------------ plan in
    @property
    def plan(self) -> Plan:
        return self._plan

    def set_plan(self, plan: Plan) -> None:
        """An edit: undoable, coalesced; a no-op when nothing changed."""
        if plan == self._plan:
            return
        self.undo_stack.push(PlanCommand(self, self._plan, plan))

    def reset_plan(self, plan: Plan) -> None:
        """A new document (New, Open, restore): no undo history, marked clean."""
        self.undo_stack.clear()
        self._apply(plan)
        self.undo_stack.setClean()

    def set_calibration(self, profile: Any) -> None:
        """Use a CalibrationProfile (or None) for every estimate from now on."""
        self.estimates.set_calibration(profile)
        self.schedule()

    @property
    def calibration(self) -> Any:
        return self.estimates.calibration

    def _apply(self, plan: Plan) -> None:
        self._plan = plan
        self.plan_changed.emit(plan)
        self.schedule()

    def schedule(self) -> None:
        """Recompute once the current burst of events is handled."""
        self._timer.start()

    def flush(self, hardware: bool = True, advice: bool = True) -> None:
        """Run pending work now instead of on the timers (tests, screenshots, the benchmark)."""
        if self._timer.isActive():
            self._timer.stop()
            self.recompute()
        for wanted, timer, run in ((hardware, self._hardware_timer, self._recompute_hardware),
                                   (advice, self._advice_timer, self._recompute_advice)):
            if wanted and timer.isActive():
                timer.stop()
                run()

    def hold(self) -> None:
        """Benchmark: keep the pending table / advice from running in the next processEvents."""
        for timer in (self._hardware_timer, self._advice_timer):
            timer.setProperty("held", timer.isActive())
            timer.stop()

    def release(self) -> None:
        for timer in (self._hardware_timer, self._advice_timer):
            if timer.property("held"):
                timer.start()
                timer.setProperty("held", False)

    def clear_caches(self) -> None:
        self.estimates.clear()
        self._hardware_cache.clear()
        self._advice_cache.clear()

    # ---------------------------------------------------------------- figures out
    def recompute(self) -> None:
        """Estimate the plan and push it, its curves and the hardware rows to the views."""
        plan = self._plan
        try:
            est = self.estimates.get(check_combination(plan))
        except PlanError as err:
            self.error = str(err)
            self.error_changed.emit(self.error)
            self.recomputed.emit()
            return
        self.estimate = est
        if self.error:
            self.error = ""
            self.error_changed.emit("")
        self.estimate_changed.emit(est)
        self._sweeps_stale = self._hardware_stale = True
        if self.sweeps_wanted:
            self._recompute_sweeps()
        if self.hardware_wanted:
            self._hardware_timer.start()
        self.recomputed.emit()
        self._advice_timer.start()

    def set_wanted(self, sweeps: bool, hardware: bool) -> None:
        """Which costly outputs a visible view needs: the Time curves (~16 estimates) and the
        hardware table (compare_hardware, ~150). Hidden ones are brought up to date when shown."""
        self.sweeps_wanted, self.hardware_wanted = sweeps, hardware
        if sweeps and self._sweeps_stale:
            self._recompute_sweeps()
        if hardware and self._hardware_stale:
            self._hardware_timer.start()

    def _recompute_sweeps(self) -> None:
        if self.error or self.estimate is None:
            return
        self._sweeps_stale = False
        self.sweeps_changed.emit(plan_sweeps(self._plan, self.estimate, self.estimates.get_point))

    def _recompute_hardware(self) -> None:
        if self.error or self.estimate is None:
            return
        self._hardware_stale = False
        self.hardware_changed.emit(self.hardware_rows(self._plan))

    def hardware_rows(self, plan: Plan) -> tuple:
        """core.compare.compare_hardware rows for plan, memoised; () when it is unavailable.

        compare_hardware replaces the plan's gpu and n_gpus in every row, so plans that
        differ only there share one entry.
        """
        key = dataclasses.replace(plan, gpu="", n_gpus=1)
        if key not in self._hardware_cache:
            try:
                from ..core.compare import compare_hardware
            except ImportError:
                return ()
            try:
                rows = tuple(compare_hardware(plan, counts=self.hardware_counts))
            except PlanError:
                rows = ()
            if len(self._hardware_cache) > 256:
                self._hardware_cache.clear()
            self._hardware_cache[key] = rows
        return self._hardware_cache[key]

    def _recompute_advice(self) -> None:
        plan = self._plan
        key = (plan, self.calibration)
        if key not in self._advice_cache:
            try:
                from ..core.advise import advise
            except ImportError:
                return
            try:
                items = tuple(advise(plan))
            except PlanError:
                items = ()
            if len(self._advice_cache) > 256:
                self._advice_cache.clear()
            self._advice_cache[key] = items
        self.advice_changed.emit(self._advice_cache[key])
