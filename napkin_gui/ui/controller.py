"""PlanController: owns the plan, its undo history and the recompute timers; views listen to it.

Editors call set_plan(replace(plan, ...)); plan_changed fires at once (editors re-sync
under QSignalBlocker), then one 0-ms single-shot timer coalesces a burst of edits into a
single recompute that emits estimate_changed, then sweeps_changed. The hardware table
(only while it is visible) follows on its own 0-ms timer, after the bars and curves; the
advice once edits pause for ADVICE_DELAY_MS.

The curves, the hardware rows and the advice come from ui/figures.py (their caches, the
background process, the fallback here); a finished probe reaches the views through
probe_changed.
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
from .figures import Figures

MERGE_SECONDS = 1.5  # edits of one field closer than this undo as one step (slider drags)
# The advice (core.advise: a few dozen estimates, ~10 ms) waits until edits pause this long:
# during a slider drag it would otherwise hold up the next edit's curves and table, here or
# in the background process.
ADVICE_DELAY_MS = 150


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
    sweeps_changed = Signal(object)     # core.sweep.Sweeps
    hardware_changed = Signal(object)   # tuple of core.compare rows
    advice_changed = Signal(object)     # tuple of core.advise Advice
    probe_changed = Signal(object)      # probe.runner.ProbeResult of the last probe
    recomputed = Signal()               # after every view got the new figures (benchmarks, tests)

    def __init__(self, plan: Plan, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._plan = plan
        self.estimates = EstimateCache()
        self.figures = Figures(self.estimates, lambda: self._plan, self)
        self.figures.ready.connect(self._on_figure_ready)
        self.undo_stack = QUndoStack(self)
        self.estimate = None
        self.error = ""
        self.probe_result: Any = None
        self.sweeps_wanted = self.hardware_wanted = True
        self._sweeps_stale = self._hardware_stale = False
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.recompute)
        # the table (compare_hardware: ~150 estimates) follows the views on its own 0-ms
        # timer, so bars and curves are painted before it starts; the advice waits for a pause
        self._hardware_timer = QTimer(self, singleShot=True, interval=0)
        self._hardware_timer.timeout.connect(self._recompute_hardware)
        self._advice_timer = QTimer(self, singleShot=True, interval=ADVICE_DELAY_MS)
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

    def set_probe_result(self, result: Any) -> None:
        """A finished probe (probe.runner.ProbeResult): the views show it against the current
        estimate (its profile, if any, was set with set_calibration first)."""
        self.probe_result = result
        self.probe_changed.emit(result)

    def _apply(self, plan: Plan) -> None:
        self._plan = plan
        # the curves' job goes out before the editors re-sync and the recompute timer fires
        # (~1 ms): the child is on the critical path of the Time tab
        self._send_sweeps()
        self.plan_changed.emit(plan)
        self.schedule()

    def schedule(self) -> None:
        """Recompute once the current burst of events is handled."""
        self._timer.start()

    @property
    def background(self) -> Any:
        """The BackgroundEstimator computing curves and advice, or None."""
        return self.figures.background

    def use_background(self, estimator: Any, slow: Any = None) -> None:
        """Compute curves and advice in estimator's child process from now on (the advice in
        slow's, a low-priority child, when given)."""
        self.figures.use_background(estimator, slow)

    def flush(self, hardware: bool = True, advice: bool = True) -> None:
        """Run pending work now instead of on the timers, and wait for the background jobs
        it started (tests, screenshots)."""
        if self._timer.isActive():
            self._timer.stop()
            self.recompute()
        for wanted, timer, run in ((hardware, self._hardware_timer, self._recompute_hardware),
                                   (advice, self._advice_timer, self._recompute_advice)):
            if wanted and timer.isActive():
                timer.stop()
                run()
        self.figures.wait(self._waited_kinds(advice))

    def busy(self, hardware: bool = True, advice: bool = False) -> bool:
        """Whether some figure of the current plan is still to be computed or delivered."""
        return (self._timer.isActive() or (hardware and self._hardware_timer.isActive())
                or (advice and self._advice_timer.isActive())
                or self.figures.pending(self._waited_kinds(advice)))

    @staticmethod
    def _waited_kinds(advice: bool) -> set[str]:
        """The background jobs flush() waits for and busy() reports: the curves, and the advice
        when asked."""
        return {"sweeps", "advice"} if advice else {"sweeps"}

    def clear_caches(self) -> None:
        self.estimates.clear()
        self.figures.clear()

    # ---------------------------------------------------------------- figures out
    def recompute(self) -> None:
        """Estimate the plan and push it, its curves and the hardware rows to the views."""
        plan = self._plan
        self._send_sweeps()  # unless it went out with the edit (a new calibration, a shown tab)
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

    def _send_sweeps(self) -> None:
        """Hand the current plan's curves to the background process, if they are wanted and
        not known: the child prices them while this thread estimates the plan and updates the
        bars (a result for an invalid plan is dropped)."""
        if self.sweeps_wanted:
            self.figures.get("sweeps", self._plan, compute=False)

    def _on_figure_ready(self, kind: str, value: Any) -> None:
        """A figure of the current plan from the background process (or its fallback here)."""
        if kind == "sweeps" and not self.error:
            self.sweeps_changed.emit(value)
        elif kind == "advice":
            self.advice_changed.emit(value)

    def _recompute_sweeps(self) -> None:
        if self.error or self.estimate is None:
            return
        self._sweeps_stale = False
        sweeps = self.figures.get("sweeps", self._plan)
        if sweeps is not None:  # else it arrives from the background process
            self.sweeps_changed.emit(sweeps)

    def _recompute_hardware(self) -> None:
        if self.error or self.estimate is None:
            return
        self._hardware_stale = False
        self.hardware_changed.emit(self.hardware_rows(self._plan))

    def hardware_rows(self, plan: Plan) -> tuple:
        """core.compare.compare_hardware rows for plan under the calibration, memoised; ()
        when the core rejects the plan."""
        return self.figures.get("hardware", plan)

    def _recompute_advice(self) -> None:
        advice = self.figures.get("advice", self._plan)
        if advice is not None:  # else it arrives from the background process
            self.advice_changed.emit(advice)
