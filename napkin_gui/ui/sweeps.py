"""Curves for the Time view: core.estimate_point evaluated over a small grid of one plan field."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from ..core.plan import Plan
from ..core.estimate import StepPoint

# Powers of two keep the grid small (8 points, each one core.estimate_point call) and evenly
# spaced on a log axis; the plan's own value is added when it is not on the grid.
BATCH_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
SEQ_GRID = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


@dataclass(frozen=True, slots=True)
class Sweep:
    """One field varied over values; nan where core rejected the plan."""

    field: str
    values: tuple[int, ...]
    step_seconds: tuple[float, ...]
    tokens_per_second: tuple[float, ...]
    fits: tuple[bool, ...]
    current: int  # the plan's own value (always among values)
    grid: tuple[int, ...] = ()  # the fixed grid values (the axis ticks), without the plan's own

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


@dataclass(frozen=True, slots=True)
class Sweeps:
    batch: Sweep
    seq: Sweep


def grid_values(grid: tuple[int, ...], current: int) -> tuple[int, ...]:
    """The grid plus the plan's own value, sorted."""
    return tuple(sorted(set(grid) | {current}))


def sweep(plan: Plan, field: str, grid: tuple[int, ...],
          point_fn: Callable[[Plan], StepPoint | None]) -> Sweep:
    """Step seconds, tokens/s and fits of plan with `field` set to each grid value
    (point_fn: core.estimate_point, memoised, or None where core rejects the plan)."""
    current = getattr(plan, field)
    values = grid_values(grid, current)
    step, tps, fits = [], [], []
    for value in values:
        point = point_fn(dataclasses.replace(plan, **{field: value}))
        step.append(point.step_seconds if point else math.nan)
        tps.append(point.tokens_per_second if point else math.nan)
        fits.append(bool(point and point.fits))
    return Sweep(field, values, tuple(step), tuple(tps), tuple(fits), current, grid)


def plan_sweeps(plan: Plan, point_fn: Callable[[Plan], StepPoint | None]) -> Sweeps:
    """Both curves of the Time view for one plan."""
    return Sweeps(batch=sweep(plan, "batch_size", BATCH_GRID, point_fn),
                  seq=sweep(plan, "seq_len", SEQ_GRID, point_fn))
