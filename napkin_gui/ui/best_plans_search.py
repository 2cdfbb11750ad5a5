"""BestPlansSearch: runs core.best_plans for the Best plans view once edits pause, off the window's thread.

The search prices thousands of plans (0.3-2 s on the 2-core machine), so it never runs in the
window's thread of the app and never queues in front of the Time curves: it has a child
process of its own (ui/background.py, estimate worker protocol, job kind "search"), started
when the view is first shown, at a lower CPU priority (SEARCH_NICE): it runs on the time the
window and the curves' child leave. The search starts SEARCH_DELAY_MS after the last estimate of a burst of edits, only
while the view is shown (set_wanted), and each result is kept by (plan, calibration): undo or a
plan seen before shows at once. A result is shown only if it is for the plan and calibration
the controller holds when it arrives; the child itself answers "stale" for a job that a newer
one replaced before it started. Without a child (MainWindow(background=False): tests,
screenshots) the search runs here when the timer fires. Either way the search's table is the
advice's too (core.search.shared_search_table): the plan is searched once for both.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.errors import PlanError

SEARCH_DELAY_MS = 400   # after the last edit of a burst: a slider drag never starts one
SEARCH_NICE = 10        # os.nice of the search's child: ~1/10 of a core against a busy one


class BestPlansSearch(QObject):
    """The controller's plan in, core.best_plans.BestPlans out (results_changed)."""

    results_changed = Signal(object)   # BestPlans for the controller's current plan and calibration
    status_changed = Signal(str)       # what the view says while there are no current results

    def __init__(self, controller: Any, background: bool = True, parent: QObject | None = None,
                 estimator: Any = None) -> None:
        """estimator: a BackgroundEstimator-like object (tests); else, when background is True,
        one is started the first time the view is shown (a window that never shows it never
        pays for a third process)."""
        super().__init__(parent)
        self.controller = controller
        self.wanted = False
        self.background = background and estimator is None
        self.estimator = None
        if estimator is not None:
            self._use(estimator)
        self._results: dict[tuple, Any] = {}   # (plan, calibration) -> BestPlans or the PlanError line
        self._jobs: dict[int, tuple] = {}      # job id -> its (plan, calibration)
        self._waiting = False                  # a search waits for the child to start (its `settled`)
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(self.start)
        controller.estimate_changed.connect(self._on_controller_estimate_changed)
        controller.error_changed.connect(self._on_controller_error_changed)

    def _use(self, estimator: Any) -> None:
        self.estimator = estimator
        estimator.result_ready.connect(self._on_estimator_result_ready)
        estimator.settled.connect(self._on_estimator_settled)

    def key(self) -> tuple:
        return (self.controller.plan, self.controller.calibration)

    def set_wanted(self, wanted: bool) -> None:
        """Search only while the view is shown; when it is shown, bring it up to date."""
        self.wanted = wanted
        if wanted and self.background and self.estimator is None:
            from .background import BackgroundEstimator
            self._use(BackgroundEstimator(self, nice=SEARCH_NICE, name="napkin-search"))
        if wanted and not self.controller.error:
            self._on_controller_estimate_changed(None)

    def _on_controller_estimate_changed(self, _estimate: Any) -> None:
        """An edit's figures are in: show what is known for this plan, else search once edits pause."""
        if not self.wanted:
            return
        key = self.key()
        if key in self._results:
            self._timer.stop()
            self._emit(key)
        else:
            self.status_changed.emit("searching once edits pause…")
            self._timer.start(SEARCH_DELAY_MS)

    def _on_controller_error_changed(self, message: str) -> None:
        if message:
            self._timer.stop()
            self.status_changed.emit(f"no search: {message}")

    def start(self) -> None:
        """Search the current plan now (in the child when there is one)."""
        key = self.key()
        if key in self._results or self.controller.error:
            return self._on_controller_estimate_changed(None) if self.wanted else None
        if key in self._jobs.values():
            return
        if self.estimator is not None and not getattr(self.estimator, "failed", ""):
            job = self.estimator.submit("search", *key)
            if job is not None:
                self._jobs[job] = key
                self.status_changed.emit("searching…")
                return
            if not self.estimator.failed:   # still starting: sent when it has settled
                self._waiting = True
                return
        self._remember(key, self._search_here(*key))
        self._emit(key)

    def _on_estimator_settled(self) -> None:
        """The child is up (or failed): the search that waited for it starts (there, or here)."""
        if self._waiting:
            self._waiting = False
            self.start()

    @staticmethod
    def _search_here(plan: Any, calibration: Any) -> Any:
        from ..core.best_plans import best_plans
        try:
            return best_plans(plan, calibration)
        except PlanError as err:
            return str(err)

    def _on_estimator_result_ready(self, job: int, status: str, payload: Any) -> None:
        key = self._jobs.pop(job, None)
        if key is None or status == "stale":
            return
        if status == "error":   # the child failed or died: search here, once edits pause
            if key == self.key() and self.wanted:
                self._timer.start(SEARCH_DELAY_MS)
            return
        self._remember(key, payload if status == "ok" else str(payload))
        if key == self.key() and self.wanted:   # else: the plan moved on since the job was sent
            self._emit(key)

    def _remember(self, key: tuple, value: Any) -> None:
        if len(self._results) > 64:
            self._results.clear()
        self._results[key] = value

    def _emit(self, key: tuple) -> None:
        value = self._results[key]
        if isinstance(value, str):
            self.status_changed.emit(f"no search: {value}")
        else:
            self.results_changed.emit(value)

    def busy(self) -> bool:
        """Whether the current plan's results are still to come (tests, the benchmark)."""
        return self.wanted and self.key() not in self._results and not self.controller.error and (
            self._timer.isActive() or self._waiting or self.key() in self._jobs.values())

    def flush(self, timeout_seconds: float = 60.0) -> None:
        """Start a pending search now and wait until its result has been delivered (tests)."""
        if self._timer.isActive() or self._waiting:
            self._timer.stop()
            if self.estimator is not None and not getattr(self.estimator, "ready", True):
                self.estimator.wait_ready(timeout_seconds)  # its `settled` starts a waiting search
            self.start()
        key = self.key()
        for job, job_key in list(self._jobs.items()):
            if job_key == key:
                self.estimator.wait(job, timeout_seconds)

    def close(self) -> None:
        self._timer.stop()
        if self.estimator is not None and hasattr(self.estimator, "close"):
            self.estimator.close()
