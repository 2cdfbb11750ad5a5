"""Step time and throughput of the plan over micro-batch sizes (core.estimate per point)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.errors import PlanError
from ..core.plan import Plan

# powers of two around the plan's own batch size, at most this many points
MAX_POINTS = 9


@dataclass(frozen=True, slots=True)
class SweepPoint:
    batch_size: int
    step_seconds: float
    tokens_per_second: float
    fits: bool


def batch_sizes(current: int, max_points: int = MAX_POINTS) -> tuple[int, ...]:
    """1, 2, 4, ... up to 8x the current size (at least 64), with the current size included."""
    sizes = {current}
    b = 1
    while b <= max(64, current * 8) and len(sizes) < max_points:
        sizes.add(b)
        b *= 2
    return tuple(sorted(sizes))


def batch_sweep(plan: Plan, calibration=None) -> tuple[SweepPoint, ...]:
    """One SweepPoint per batch size; sizes the model cannot evaluate are skipped."""
    from ..core.estimate import estimate
    points = []
    for b in batch_sizes(plan.batch_size):
        try:
            est = estimate(replace(plan, batch_size=b), calibration)
        except PlanError:
            continue
        points.append(SweepPoint(b, est.time.step_seconds, est.time.tokens_per_second, est.memory.fits))
    return tuple(points)
