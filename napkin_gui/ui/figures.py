"""Figures: what the window shows of a plan beyond its Estimate, each cached under one key.

Three kinds, each a pure function of (plan, calibration):
- "sweeps": the Time view's curves, core.sweep.plan_sweeps (16 core.estimate_point calls);
- "hardware": the hardware table's rows, core.compare.compare_hardware (~150 cards x counts);
  it replaces the plan's gpu and n_gpus in every row, so plans that differ only there share
  one key;
- "advice": core.advise (a few dozen estimates).

With a BackgroundEstimator (ui/background.py) the sweeps and the advice are computed in its
child process and arrive later through `ready`; the hardware rows cost more to send and to
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
        self.background: Any = None         # a BackgroundEstimator, or None
        self._caches: dict[str, dict[tuple, Any]] = {kind: {} for kind in KINDS}
        self._jobs: dict[int, tuple[str, tuple, Plan]] = {}  # background job -> (kind, key, plan)

    def use_background(self, estimator: Any) -> None:
        """Send the sweeps and the advice to estimator's child process from now on."""
        self.background = estimator
        estimator.result_ready.connect(self._on_background_result)

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
        return self._compute_here(kind, key, plan) if compute else None

    def pending(self, kinds: set[str]) -> bool:
        """Whether a background job of one of these kinds is still out."""
        return any(kind in kinds for kind, _, _ in self._jobs.values())

    def wait(self, kinds: set[str]) -> None:
        """Block until every background job of these kinds is answered (tests, screenshots)."""
        while self.background is not None:
            waiting = [job for job, (kind, _, _) in self._jobs.items() if kind in kinds]
            if not waiting:
                return
            self.background.wait(waiting[0])
            self._jobs.pop(waiting[0], None)  # answered (a stale one included)

    def clear(self) -> None:
        for cache in self._caches.values():
            cache.clear()

    def _submit(self, kind: str, key: tuple, plan: Plan) -> bool:
        """Hand a job to the background process; False when this thread must compute it."""
        if self.background is None:
            return False
        if any(k == kind and pending_key == key for k, pending_key, _ in self._jobs.values()):
            return True  # already on its way
        job = self.background.submit(kind, plan, self.estimates.calibration)
        if job is None:
            return False
        self._jobs[job] = (kind, key, plan)
        return True

    def _compute_here(self, kind: str, key: tuple, plan: Plan) -> Any:
        calibration = self.estimates.calibration
        if kind == "sweeps":  # points from the window's memoised estimate_point
            return self._remember(kind, key, plan_sweeps(plan, self.estimates.get_point))
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
        kind, key, plan = self._jobs.pop(job, (None, None, None))
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
