"""core.estimate (and core.estimate_point for curve points) memoised by (plan, calibration):
Plan is a frozen, hashable dataclass."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..core.errors import PlanError
from ..core.estimate import StepPoint, estimate, estimate_point
from ..core.frontier import plan_fits
from ..core.plan import Plan, check_combination
from ..core.result import Estimate


class EstimateCache:
    """Least-recently-used map plan -> Estimate (or the PlanError it raised)."""

    # ~60 edits of a session with their 16 curve points each. An Estimate is ~95 objects the
    # garbage collector walks; 8,192 of them made each full collection a stutter (bench/README.md).
    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self.calibration: Any = None
        self._items: OrderedDict[tuple[Plan, Any], Estimate | PlanError] = OrderedDict()
        # curve points priced with core.estimate_point (no Estimate needed: 16 per edit)
        self._points: OrderedDict[tuple[Plan, Any], StepPoint | PlanError] = OrderedDict()
        # fit-edge bisection points (core.frontier.plan_fits: the peak alone, no step time)
        self._fits: OrderedDict[tuple[Plan, Any], bool | PlanError] = OrderedDict()

    def set_calibration(self, profile: Any) -> None:
        """Estimates from now on use this CalibrationProfile (None: the catalog's figures)."""
        self.calibration = profile

    def get(self, plan: Plan) -> Estimate:
        """The Estimate of plan; raises the PlanError core raised for it."""
        found = self._lookup(self._items, plan, estimate)
        if isinstance(found, PlanError):
            raise found
        return found

    def get_point(self, plan: Plan) -> StepPoint | None:
        """Step seconds, tokens/s and fits of plan (None when core rejects it), from its
        Estimate when that is cached, else from core.estimate_point (the same figures)."""
        found = self._items.get((plan, self.calibration))
        if found is not None:
            return None if isinstance(found, PlanError) else StepPoint(
                found.time.step_seconds, found.time.tokens_per_second, found.memory.fits)
        point = self._lookup(self._points, plan, estimate_point)
        return None if isinstance(point, PlanError) else point

    def get_fits(self, plan: Plan) -> bool:
        """Whether plan fits its card (False when core rejects it), from a cached estimate or
        curve point when there is one, else from core.frontier.plan_fits (the same figure)."""
        for items in (self._items, self._points):
            found = items.get((plan, self.calibration))
            if found is not None:
                return not isinstance(found, PlanError) and (found.memory.fits if items is self._items else found.fits)
        fits = self._lookup(self._fits, plan, plan_fits)
        return not isinstance(fits, PlanError) and fits

    def _lookup(self, items: OrderedDict, plan: Plan, compute: Callable[..., Any]) -> Any:
        """items[(plan, calibration)], computed by compute(plan, calibration=...) on a miss
        (a PlanError is kept as the value); least recently used entries are dropped."""
        key = (plan, self.calibration)
        try:
            found = items[key]
            items.move_to_end(key)
        except KeyError:
            try:
                found = compute(check_combination(plan), calibration=self.calibration)
            except PlanError as err:
                found = err
            items[key] = found
            if len(items) > self.maxsize:
                items.popitem(last=False)
        return found

    def clear(self) -> None:
        self._items.clear()
        self._points.clear()
        self._fits.clear()
