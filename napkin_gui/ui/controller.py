"""PlanController: owns the plan, its undo history and the recompute; views listen to it.

Editors call set_plan(replace(plan, ...)); plan_changed fires at once (editors re-sync
under QSignalBlocker), then one 0-ms single-shot timer coalesces a burst of edits into a
single recompute that emits estimate_changed, then sweeps_changed. The hardware table
(only while it is visible) follows on its own 0-ms timer, after the bars and curves; the
advice once edits pause for ADVICE_DELAY_MS.

With a BackgroundEstimator (use_background; the app has one) the curves and the advice are
computed in its child process while this thread paints the bars, and emitted when they
arrive; without one, or until the child is ready, they are computed here.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from ..core.errors import PlanError
from ..core.plan import Plan, check_combination
from ..core.sweep import Sweeps, plan_sweeps
from .estimate_cache import EstimateCache

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
        self._sweeps_cache: dict[tuple[Plan, Any], Sweeps] = {}
        self.background: Any = None               # a BackgroundEstimator, or None
        self._jobs: dict[int, tuple[str, Any]] = {}  # background job -> (kind, cache key)
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

    def use_background(self, estimator: Any) -> None:
        """Compute curves and advice in estimator's child process from now on."""
        self.background = estimator
        estimator.result_ready.connect(self._on_background_result)

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
        kinds = self._waited_kinds(advice)
        while self.background is not None:
            waiting = [job for job, (kind, _) in self._jobs.items() if kind in kinds]
            if not waiting:
                break
            self.background.wait(waiting[0])
            self._jobs.pop(waiting[0], None)  # answered (a stale one included)

    def busy(self, hardware: bool = True, advice: bool = False) -> bool:
        """Whether some figure of the current plan is still to be computed or delivered."""
        kinds = self._waited_kinds(advice)
        return (self._timer.isActive() or (hardware and self._hardware_timer.isActive())
                or (advice and self._advice_timer.isActive())
                or any(kind in kinds for kind, _ in self._jobs.values()))

    @staticmethod
    def _waited_kinds(advice: bool) -> set[str]:
        """The background jobs flush() waits for and busy() reports: the curves, and the advice
        when asked."""
        return {"sweeps", "advice"} if advice else {"sweeps"}

    def clear_caches(self) -> None:
        self.estimates.clear()
        self._hardware_cache.clear()
        self._advice_cache.clear()
        self._sweeps_cache.clear()

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
        key = (self._plan, self.calibration)
        if self.sweeps_wanted and key not in self._sweeps_cache:
            self._submit("sweeps", key, self._plan, self.calibration)

    def _submit(self, kind: str, key: Any, plan: Plan, calibration: Any = None) -> bool:
        """Hand a job to the background process; False when this thread must compute it."""
        if self.background is None:
            return False
        if any(k == kind and pending_key == key for k, pending_key in self._jobs.values()):
            return True  # already on its way
        job = self.background.submit(kind, plan, calibration)
        if job is None:
            return False
        self._jobs[job] = (kind, key)
        return True

    def _on_background_result(self, job: int, status: str, payload: Any) -> None:
        kind, key = self._jobs.pop(job, (None, None))
        if kind is None or status == "stale":
            return
        current = key == (self._plan, self.calibration)
        if status == "error" or (kind == "sweeps" and status != "ok"):
            # the child failed, or could not price what this process can (a model only this
            # process resolved): compute it here if it is still wanted
            if current:
                (self._recompute_sweeps if kind == "sweeps" else self._recompute_advice)(here=True)
            return
        if kind == "sweeps":
            self._remember(self._sweeps_cache, key, payload)
            if current and not self.error:
                self.sweeps_changed.emit(payload)
        else:
            self._remember(self._advice_cache, key, payload if status == "ok" else ())
            if current:
                self.advice_changed.emit(self._advice_cache[key])

    @staticmethod
    def _remember(cache: dict, key: Any, value: Any) -> None:
        if len(cache) > 256:
            cache.clear()
        cache[key] = value

    def _recompute_sweeps(self, here: bool = False) -> None:
        if self.error or self.estimate is None:
            return
        self._sweeps_stale = False
        key = (self._plan, self.calibration)
        if key not in self._sweeps_cache:
            if not here and self._submit("sweeps", key, self._plan, self.calibration):
                return
            self._remember(self._sweeps_cache, key, plan_sweeps(self._plan, self.estimates.get_point))
        self.sweeps_changed.emit(self._sweeps_cache[key])

    def _recompute_hardware(self) -> None:
        if self.error or self.estimate is None:
            return
        self._hardware_stale = False
        self.hardware_changed.emit(self.hardware_rows(self._plan))

    def hardware_rows(self, plan: Plan) -> tuple:
        """core.compare.compare_hardware rows for plan, memoised; () when it is unavailable.

        compare_hardware replaces the plan's gpu and n_gpus in every row, so plans that
        differ only there share one entry. Rows use the calibration, as the bars do.
        """
        key = (dataclasses.replace(plan, gpu="", n_gpus=1), self.calibration)
        if key not in self._hardware_cache:
            try:
                from ..core.compare import compare_hardware
            except ImportError:
                return ()
            try:
                rows = tuple(compare_hardware(plan, counts=self.hardware_counts, calibration=self.calibration))
            except PlanError:
                rows = ()
            self._remember(self._hardware_cache, key, rows)
        return self._hardware_cache[key]

    def _recompute_advice(self, here: bool = False) -> None:
        plan = self._plan
        key = (plan, self.calibration)
        if key not in self._advice_cache:
            if not here and self._submit("advice", key, plan, self.calibration):
                return
            try:
                from ..core.advise import advise
            except ImportError:
                return
            try:
                items = tuple(advise(plan, calibration=self.calibration))
            except PlanError:
                items = ()
            self._remember(self._advice_cache, key, items)
        self.advice_changed.emit(self._advice_cache[key])
