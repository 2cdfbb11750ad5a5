"""core.estimate memoised by (plan, calibration): Plan is a frozen, hashable dataclass."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..core.errors import PlanError
from ..core.estimate import estimate
from ..core.plan import Plan, check_combination
from ..core.result import Estimate


class EstimateCache:
    """Least-recently-used map plan -> Estimate (or the PlanError it raised)."""

    # ~60 edits of a session with their 16 curve points each. An Estimate is ~95 objects the
    # garbage collector walks; 8,192 of them made each full collection a ~100 ms stutter.
    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self.calibration: Any = None
        self._items: OrderedDict[tuple[Plan, Any], Estimate | PlanError] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def set_calibration(self, profile: Any) -> None:
        """Estimates from now on use this CalibrationProfile (None: the catalog's figures)."""
        self.calibration = profile

    def get(self, plan: Plan) -> Estimate:
        """The Estimate of plan; raises the PlanError core raised for it."""
        key = (plan, self.calibration)
        try:
            found = self._items[key]
            self._items.move_to_end(key)
            self.hits += 1
        except KeyError:
            self.misses += 1
            try:
                found = estimate(check_combination(plan), calibration=self.calibration)
            except PlanError as err:
                found = err
            self._items[key] = found
            if len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        if isinstance(found, PlanError):
            raise found
        return found

    def get_or_none(self, plan: Plan) -> Estimate | None:
        """The Estimate, or None when core rejects the plan."""
        try:
            return self.get(plan)
        except PlanError:
            return None

    def clear(self) -> None:
        self._items.clear()
