"""Sweeps: step time, throughput and fit of one plan with one field varied over a fixed grid.

The one sweep behind the Time view's four curves (micro-batch size and sequence length) and
the report's batch-size chart. Each point is core.estimate_point (what core.estimate says of
step_seconds, tokens_per_second and fits, without its components and formulas): the curves
price 16 plans per edit.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import PlanError
from .estimate import StepPoint, estimate_point
from .frontier import largest_true
from .plan import Plan, check_combination

if TYPE_CHECKING:
    from .calibration import CalibrationProfile

# Powers of two keep the grid small (8 points, each one estimate_point call) and evenly
# spaced on a log axis; the plan's own value is added when it is not on the grid.
BATCH_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
SEQ_GRID = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)

PointFn = Callable[[Plan], "StepPoint | None"]


@dataclass(frozen=True, slots=True)
class Sweep:
    """One field varied over values; nan (and not fitting) where the core rejected the plan."""

    field: str
    values: tuple[int, ...]
    step_seconds: tuple[float, ...]
    tokens_per_second: tuple[float, ...]
    fits: tuple[bool, ...]
    current: int  # the plan's own value (always among values)
    grid: tuple[int, ...] = ()  # the fixed grid values (the axis ticks), without the plan's own
    # the largest value that fits, found between the samples by core.frontier's bisection
    # (None: every sample fits); the OOM zone starts just above it, not between two samples
    fit_edge: int | None = None

    @property
    def current_index(self) -> int:
        return self.values.index(self.current)

    @property
    def first_oom_value(self) -> float | None:
        """The smallest value from which every larger one is out of memory (None: all fit)."""
        first = None
        for value, ok in zip(reversed(self.values), reversed(self.fits)):
            if ok:
                break
            first = value
        return first

    def priced(self) -> tuple[tuple[int, float, float, bool], ...]:
        """(value, step seconds, tokens/s, fits) of the points the core priced."""
        return tuple(p for p in zip(self.values, self.step_seconds, self.tokens_per_second, self.fits)
                     if math.isfinite(p[1]))


@dataclass(frozen=True, slots=True)
class Sweeps:
    batch: Sweep
    seq: Sweep


def grid_values(grid: tuple[int, ...], current: int) -> tuple[int, ...]:
    """The grid plus the plan's own value, sorted."""
    return tuple(sorted(set(grid) | {current}))


def priced_by(calibration: CalibrationProfile | None = None) -> PointFn:
    """core.estimate_point of a plan under calibration; None where the core rejects the plan."""
    def point(plan: Plan) -> StepPoint | None:
        try:
            return estimate_point(check_combination(plan), calibration)
        except PlanError:
            return None
    return point


def sweep(plan: Plan, field: str, grid: tuple[int, ...], point_fn: PointFn) -> Sweep:
    """Step seconds, tokens/s and fits of plan with `field` set to each grid value
    (point_fn: priced_by(calibration), or the window's memoised copy of it)."""
    current = getattr(plan, field)
    values = grid_values(grid, current)
    step, tps, fits = [], [], []
    for value in values:
        point = point_fn(dataclasses.replace(plan, **{field: value}))
        step.append(point.step_seconds if point else math.nan)
        tps.append(point.tokens_per_second if point else math.nan)
        fits.append(bool(point and point.fits))
    out = Sweep(field, values, tuple(step), tuple(tps), tuple(fits), current, grid)
    return dataclasses.replace(out, fit_edge=_fit_edge(plan, out, point_fn))


def _fit_edge(plan: Plan, sweep: Sweep, point_fn: PointFn) -> int | None:
    """The largest value of the field that fits (core.frontier.largest_true between the last
    sample that fits and the first out of memory, log2 of their gap in calls; the same
    point_fn, so the same cache and calibration as the samples); None when every sample fits."""
    first = sweep.first_oom_value
    if first is None:
        return None
    j = sweep.values.index(first)

    def fits(value: int) -> bool:
        point = point_fn(dataclasses.replace(plan, **{sweep.field: value}))
        return bool(point and point.fits)
    return largest_true(fits, first - 1, known_true=sweep.values[j - 1] if j else 0, known_false=first)


def batch_sweep(plan: Plan, point_fn: PointFn) -> Sweep:
    """The plan over micro-batch sizes (BATCH_GRID and its own)."""
    return sweep(plan, "batch_size", BATCH_GRID, point_fn)


def plan_sweeps(plan: Plan, point_fn: PointFn) -> Sweeps:
    """Both curves of the Time view for one plan."""
    return Sweeps(batch=batch_sweep(plan, point_fn), seq=sweep(plan, "seq_len", SEQ_GRID, point_fn))
