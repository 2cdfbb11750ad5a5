"""Sweeps: step time, throughput and fit of one plan with one field varied over a fixed grid.

The one sweep behind the Time view's four curves (micro-batch size and sequence length; for
GRPO plans also completions per prompt and completion length) and the report's batch-size
chart. Each point is core.estimate_point (what core.estimate says of step_seconds,
tokens_per_second and fits, without its components and formulas) of the plan core.frontier's
axis_plan makes at that value: the curves price 16 plans per edit (31 for GRPO).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import PlanError
from .estimate import StepPoint, estimate_point
from .frontier import Axis, axis_edge, axis_of, axis_plan, plan_fits
from .plan import Plan, check_combination

if TYPE_CHECKING:
    from .calibration import CalibrationProfile

# Powers of two keep the grid small (8 points, each one estimate_point call) and evenly
# spaced on a log axis; the plan's own value is added when it is not on the grid.
BATCH_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
SEQ_GRID = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
# GRPO: TRL's num_generations default is 8; DeepSeek-R1-style runs use 16-64
GENERATIONS_GRID = (2, 4, 8, 16, 32, 64, 128)
COMPLETION_GRID = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)

PointFn = Callable[[Plan], "StepPoint | None"]
FitsFn = Callable[[Plan], bool]


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
    generations: Sweep | None = None   # GRPO plans only: num_generations (batch scaled with it)
    completion: Sweep | None = None    # GRPO plans only: completion_len

    def of(self, field: str) -> Sweep | None:
        return {"batch_size": self.batch, "seq_len": self.seq, "num_generations": self.generations,
                "completion_len": self.completion}[field]


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


def fitting_by(calibration: CalibrationProfile | None = None) -> FitsFn:
    """core.frontier.plan_fits of a plan under calibration: the step's peak alone, no step
    time (what the fit edge's bisection asks, ~half an estimate_point); False where the core
    rejects the plan."""
    def fits(plan: Plan) -> bool:
        try:
            return plan_fits(check_combination(plan), calibration)
        except PlanError:
            return False
    return fits


def point_at(plan: Plan, field: str, value: int, point_fn: PointFn) -> StepPoint | None:
    """The point of the plan core.frontier.axis_plan makes at value (None: not a plan)."""
    moved = axis_plan(plan, field, value)
    return None if moved is None else point_fn(moved)


def on_axis(grid: tuple[int, ...], axis: Axis) -> tuple[int, ...]:
    """The grid moved onto the axis's values (the nearest multiple of its step, at least its
    first value): powers of two stay where the step divides them."""
    if axis.step == 1:
        return grid
    return tuple(sorted({max(axis.value(1), axis.step * max(1, round(g / axis.step))) for g in grid}))


def sweep(plan: Plan, field: str, grid: tuple[int, ...], point_fn: PointFn, fits_fn: FitsFn | None = None) -> Sweep:
    """Step seconds, tokens/s and fits of plan with `field` set to each grid value
    (point_fn: priced_by(calibration), or the window's memoised copy of it), and the exact
    fit edge (fits_fn: fitting_by(calibration) or its memoised copy; default: point_fn's fits)."""
    current = getattr(plan, field)
    axis = axis_of(plan, field)
    grid = on_axis(grid, axis)
    values = grid_values(grid, current)
    step, tps, fits = [], [], []
    for value in values:
        point = point_at(plan, field, value, point_fn)
        step.append(point.step_seconds if point else math.nan)
        tps.append(point.tokens_per_second if point else math.nan)
        fits.append(bool(point and point.fits))
    out = Sweep(field, values, tuple(step), tuple(tps), tuple(fits), current, grid)
    if fits_fn is None:
        def fits_fn(moved: Plan) -> bool:
            point = point_fn(moved)
            return bool(point and point.fits)
    return dataclasses.replace(out, fit_edge=_fit_edge(plan, out, axis, fits_fn))


def _fit_edge(plan: Plan, sweep: Sweep, axis: Axis, fits_fn: FitsFn) -> int | None:
    """The largest value of the field that fits (core.frontier.axis_edge between the last
    sample that fits and the first out of memory, log2 of their gap in fits_fn calls, under
    the samples' calibration); None when every sample fits."""
    first = sweep.first_oom_value
    if first is None:
        return None
    j = sweep.values.index(first)

    def fits(value: int) -> bool:
        moved = axis_plan(plan, sweep.field, value)
        return moved is not None and fits_fn(moved)
    return axis_edge(fits, axis, first - 1, known_true=sweep.values[j - 1] if j else 0, known_false=first)


def batch_sweep(plan: Plan, point_fn: PointFn, fits_fn: FitsFn | None = None) -> Sweep:
    """The plan over micro-batch sizes (BATCH_GRID and its own)."""
    return sweep(plan, "batch_size", BATCH_GRID, point_fn, fits_fn)


def plan_sweeps(plan: Plan, point_fn: PointFn, fits_fn: FitsFn | None = None) -> Sweeps:
    """The Time view's curves for one plan: batch size and sequence length; for GRPO plans
    also num_generations and completion_len."""
    grpo = plan.algorithm == "grpo"
    return Sweeps(batch=batch_sweep(plan, point_fn, fits_fn), seq=sweep(plan, "seq_len", SEQ_GRID, point_fn, fits_fn),
                  generations=sweep(plan, "num_generations", GENERATIONS_GRID, point_fn, fits_fn) if grpo else None,
                  completion=sweep(plan, "completion_len", COMPLETION_GRID, point_fn, fits_fn) if grpo else None)
