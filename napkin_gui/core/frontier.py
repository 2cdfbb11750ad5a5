"""Exact frontiers: the largest micro-batch and the longest sequence that fit a card.

Found by bisection on the model itself (the step's peak reserved bytes, core.memory.summary
step_peak, against fits_on: what estimate(plan).memory.fits says), not read off a sampled
curve: a curve sampled at 8 and 16 cannot tell that 13 fits and 14 does not. Both fields
only grow the step's memory (activations, logits and transients scale with the tokens of a
micro-batch; weights, gradients and optimizer states do not change), so "fits" is monotone
in each and bisection finds the edge with log2(range) estimates.

Each check is an integer comparison of bytes (reserved + outside torch <= capacity), so the
edge has no float rounding: value L fits and L + 1 does not, exactly as estimate says.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable

from .gpu_catalog import find_gpu, gpu_catalog
from .memory.model_state import model_state
from .memory.summary import fits_on, step_peak
from .model_source import resolve_model
from .plan import Plan

if TYPE_CHECKING:
    from .calibration import CalibrationProfile

MAX_BATCH_SIZE = 4096
MAX_SEQ_LEN = 1 << 20


def largest_true(fits: Callable[[int], bool], limit: int, known_true: int = 0,
                 known_false: int | None = None) -> int:
    """The largest n in [1, limit] with fits(n), for fits monotone (true up to some n, then
    false); 0 when fits(1) is false. known_true / known_false: values already checked (a
    sampled curve's last fitting and first failing points) that narrow the bisection."""
    lo, hi = known_true, known_false   # fits(lo) or lo == 0; not fits(hi) or hi is None (not found yet)
    if hi is None:   # double until a value fails or the limit fits
        probe = max(1, 2 * lo)
        while True:
            probe = min(probe, limit)
            if probe <= lo:
                return lo
            if not fits(probe):
                hi = probe
                break
            lo, probe = probe, 2 * probe
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def plan_fits(plan: Plan, calibration: CalibrationProfile | None = None) -> bool:
    """estimate(plan, calibration).memory.fits, from the step's peak alone."""
    from .estimate import _card
    spec = resolve_model(plan.model)
    gpu, _ = _card(plan, calibration)
    return fits_on(step_peak(plan, spec, gpu, model_state(spec, plan)).reserved_bytes, gpu, plan.n_gpus)


def largest_batch_size(plan: Plan, gpu_id: str | None = None, calibration: CalibrationProfile | None = None,
                       limit: int = MAX_BATCH_SIZE) -> int:
    """The largest micro-batch (batch_size, all else as in plan) that fits on gpu_id (default:
    the plan's card); 0 when not even one sequence fits."""
    base = plan if gpu_id is None else replace(plan, gpu=find_gpu(gpu_id).id)
    return largest_true(lambda n: plan_fits(replace(base, batch_size=n), calibration), limit)


def longest_seq_len(plan: Plan, gpu_id: str | None = None, calibration: CalibrationProfile | None = None,
                    limit: int = MAX_SEQ_LEN) -> int:
    """The longest seq_len (all else as in plan) that fits on gpu_id (default: the plan's
    card); 0 when not even a one-token sequence fits. For preference / RL plans the
    sequence holds the prompt: the search starts above prompt_len where the plan needs it."""
    base = plan if gpu_id is None else replace(plan, gpu=find_gpu(gpu_id).id)
    floor = base.prompt_len if base.algorithm in ("dpo", "orpo", "simpo", "kto") else 0

    def fits(n: int) -> bool:
        from .errors import PlanError
        from .plan import check_combination
        try:
            return plan_fits(check_combination(replace(base, seq_len=floor + n)), calibration)
        except PlanError:
            return False
    found = largest_true(fits, limit - floor)
    return floor + found if found else 0


@dataclass(frozen=True, slots=True)
class CardFrontier:
    """What fits one card (the plan's GPU count and everything else as in the plan)."""

    gpu_id: str
    gpu_name: str
    largest_batch_size: int   # 0: not even micro-batch 1 fits
    longest_seq_len: int      # at the plan's batch_size; 0: nothing fits


def card_frontiers(plan: Plan, gpus: Iterable[str] | None = None,
                   calibration: CalibrationProfile | None = None) -> tuple[CardFrontier, ...]:
    """The frontiers of every catalog card (or those named)."""
    cards = gpu_catalog() if gpus is None else tuple(find_gpu(g) for g in gpus)
    return tuple(CardFrontier(g.id, g.name, largest_batch_size(plan, g.id, calibration),
                              longest_seq_len(plan, g.id, calibration)) for g in cards)
