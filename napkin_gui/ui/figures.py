"""Figures: what the window shows of a plan beyond its Estimate, each cached under one key.

Three kinds, each a pure function of (plan, calibration):
- "sweeps": the Time view's curves, core.sweep.plan_sweeps (16 core.estimate_point calls);
- "hardware": the hardware table's rows, core.compare.compare_hardware (~150 cards x counts);
  it replaces the plan's gpu and n_gpus in every row, so plans that differ only there share
  one key;
- "advice": core.advise (a few dozen estimates).

With a BackgroundEstimator (ui/background.py) the sweeps and the advice are computed in a
child process and arrive later through `ready`. The advice is a plan search (core.advise runs
core.search: thousands of plans, 0.3-2 s on the 2-core machine), so when the window has a
second, low-priority child (the Best plans view's, ui/best_plans_search.py) the advice goes
there: in the curves' child it held the next edit's curves back by 2.8 s (p50, measured with
bench/gui_latency.py on a loaded machine). Until that child is ready the advice waits for it
(the child's `settled` signal, as the Best plans search waits) rather than running here. The
advice and the Best plans view search one table per plan (core.search.shared_search_table,
kept in the process that runs them: that child, or this one): whichever asks second searches
nothing. The hardware rows cost more to send and to
paint in a second pass than the overlap saves, so they are computed here. Without the child,
until it is ready, or when it fails (or cannot price what this process can: a model only this
process resolved), a figure is computed here: that fallback runs only for a figure of the plan
the window shows now.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.errors import PlanError
from ..core.plan import Plan
from ..core.sweep import plan_sweeps
from .estimate_cache import EstimateCache

KINDS = ("sweeps", "hardware", "advice")
BACKGROUND_KINDS = ("sweeps", "advice")  # sent to the window's child (ui/estimate_worker.py)
HARDWARE_COUNTS = (1, 2, 4, 8)  # GPUs per row of the hardware table
CACHE_SIZE = 256  # figures per kind; the whole kind is dropped beyond it
SLOW_KINDS = ("advice",)  # sent to the low-priority child when there is one


class Figures(QObject):
    """The sweeps, hardware rows and advice of plans: cached, sent to the background process,
    or computed here."""

    ready = Signal(str, object)  # kind, figure: one that arrived for the current plan

    def __init__(self, estimates: EstimateCache, current_plan: Callable[[], Plan],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.estimates = estimates          # the window's: its calibration is the figures' too
        self.current_plan = current_plan    # the plan the window shows now
        self.hardware_counts = HARDWARE_COUNTS
        self.background: Any = None         # the curves' BackgroundEstimator, or None
        self._estimators: dict[str, Any] = {}   # kind -> the BackgroundEstimator it is sent to
        self._caches: dict[str, dict[tuple, Any]] = {kind: {} for kind in KINDS}
        # (estimator id, job) -> (kind, key, plan): two children number their jobs alike
        self._jobs: dict[tuple[int, int], tuple[str, tuple, Plan]] = {}
        self._deferred: set[str] = set()    # kinds waiting for their child to start (its `settled`)

    def use_background(self, estimator: Any, slow: Any = None) -> None:
        """Send the sweeps and the advice to estimator's child process from now on; with slow
        (a low-priority BackgroundEstimator), the advice to slow's instead."""
        self.background = estimator
        for kind in BACKGROUND_KINDS:
            self._estimators[kind] = slow if slow is not None and kind in SLOW_KINDS else estimator
        # a bound method, not a lambda holding self and the child: that cycle was left to
        # Python's gc, which may run in the probe's thread and destroy Qt objects from there
        for each in {id(e): e for e in self._estimators.values()}.values():
            each.result_ready.connect(self._on_background_result)
            each.settled.connect(self._send_deferred)

    def key(self, kind: str, plan: Plan) -> tuple:
        """What a figure of plan is cached under: (plan, calibration); for the hardware rows
        the plan without its gpu and n_gpus."""
        if kind == "hardware":
            plan = dataclasses.replace(plan, gpu="", n_gpus=1)
        return plan, self.estimates.calibration

    def get(self, kind: str, plan: Plan, compute: bool = True) -> Any:
        """The figure of plan when it is known; else None, and it is sent to the background
        process (it arrives through `ready`) or, with compute, computed here and returned."""
        key = self.key(kind, plan)
        found = self._caches[kind].get(key)
        if found is not None:
            return found
        if kind in BACKGROUND_KINDS and self._submit(kind, key, plan):
            return None
        if compute and kind in SLOW_KINDS and self._starting(kind):
            self._deferred.add(kind)  # sent once its child is up (_send_deferred)
            return None
        return self._compute_here(kind, key, plan) if compute else None

    def pending(self, kinds: set[str]) -> bool:
        """Whether a background job of one of these kinds is still out (or waits for its child)."""
        return (any(kind in kinds for kind, _, _ in self._jobs.values())
                or bool(self._deferred & kinds))

    def wait(self, kinds: set[str]) -> None:
        """Block until every background job of these kinds is answered (tests, screenshots)."""
        for kind in sorted(self._deferred & kinds):
            estimator = self._estimators[kind]
            estimator.wait_ready()  # its `settled` sends the deferred figures
            self._send_deferred()
        while self._estimators:
            waiting = [job for job, (kind, _, _) in self._jobs.items() if kind in kinds]
            if not waiting:
                return
            estimator = self._estimators[self._jobs[waiting[0]][0]]
            estimator.wait(waiting[0][1])
            self._jobs.pop(waiting[0], None)  # answered (a stale one included)

    def clear(self) -> None:
        for cache in self._caches.values():
            cache.clear()

    def _submit(self, kind: str, key: tuple, plan: Plan) -> bool:
        """Hand a job to the background process; False when this thread must compute it."""
        estimator = self._estimators.get(kind)
        if estimator is None:
            return False
        if any(k == kind and pending_key == key for k, pending_key, _ in self._jobs.values()):
            return True  # already on its way
        job = estimator.submit(kind, plan, self.estimates.calibration)
        if job is None:
            return False
        self._jobs[(id(estimator), job)] = (kind, key, plan)
        return True

    def _starting(self, kind: str) -> bool:
        """Whether kind's child is still starting (neither ready nor failed)."""
        estimator = self._estimators.get(kind)
        return (estimator is not None and estimator is not self.background
                and not estimator.ready and not estimator.failed)

    def _send_deferred(self) -> None:
        """A child settled: send the current plan's figures that waited for it (or compute them
        here when it failed)."""
        for kind in sorted(self._deferred):
            if self._starting(kind):
                continue
            self._deferred.discard(kind)
            value = self.get(kind, self.current_plan())
            if value is not None:  # computed here: the child failed to start
                self.ready.emit(kind, value)

    def _compute_here(self, kind: str, key: tuple, plan: Plan) -> Any:
        calibration = self.estimates.calibration
        if kind == "sweeps":  # points from the window's memoised estimate_point
            return self._remember(kind, key, plan_sweeps(plan, self.estimates.get_point, self.estimates.get_fits))
        # imported on first use: the window's first paint does not wait for them
        from ..core.advise import advise
        from ..core.compare import compare_hardware
        try:
            value = tuple(compare_hardware(plan, counts=self.hardware_counts, calibration=calibration)
                          if kind == "hardware" else advise(plan, calibration=calibration))
        except PlanError:
            value = ()
        return self._remember(kind, key, value)

    def _remember(self, kind: str, key: tuple, value: Any) -> Any:
        cache = self._caches[kind]
        if len(cache) > CACHE_SIZE:
            cache.clear()
        cache[key] = value
        return value

    def _on_background_result(self, job: int, status: str, payload: Any) -> None:
        estimator = self.sender()  # which child answered: both number their jobs from 1
        kind, key, plan = self._jobs.pop((id(estimator), job), (None, None, None))
        if kind is None or status == "stale":
            return
        current = key == self.key(kind, self.current_plan())
        if status == "ok":
            value = self._remember(kind, key, payload)
        elif status == "plan-error" and kind == "advice":
            value = self._remember(kind, key, ())
        elif current:  # the child failed, or could not price what this process can
            value = self._compute_here(kind, key, plan)
        else:
            return
        if current:
            self.ready.emit(kind, value)
