"""Exact frontiers: the largest micro-batch and the longest sequence that fit a card; for GRPO
also the most completions per prompt and the longest completion.

Found by bisection on the model itself (the step's peak reserved bytes, core.memory.summary
step_peak, against fits_on: what estimate(plan).memory.fits says), not read off a sampled
curve: a curve sampled at 8 and 16 cannot tell that 13 fits and 14 does not. Both fields
only grow the step's memory (activations, logits and transients scale with the tokens of a
micro-batch; weights, gradients and optimizer states do not change), so "fits" is monotone
in each and bisection finds the edge with log2(range) estimates.

Each check is an integer comparison of bytes (reserved + outside torch <= capacity), so the
edge has no float rounding: value L fits and L + 1 does not, exactly as estimate says.

GRPO's axes (Axis, axis_plan): completion_len grows the rollout's KV cache and the policy
forward over prompt + completion; num_generations keeps the prompts of a generation batch, so
batch_size (the completions TRL's per_device_train_batch_size counts) scales with it, and only
values that keep batch_size whole are plans (GRPOConfig.__post_init__: generation_batch_size %
num_generations == 0): the bisection runs over that lattice, so its edge is a plan that fits
and the next plan on the lattice does not.
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
MAX_GENERATIONS = 4096
GRPO_AXES = ("num_generations", "completion_len")


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


@dataclass(frozen=True, slots=True)
class Axis:
    """The values a field takes on a curve or frontier: offset + n x step for n >= 1 (n = 0: none)."""

    field: str
    offset: int = 0
    step: int = 1

    def value(self, n: int) -> int:
        return self.offset + n * self.step if n > 0 else 0

    def index(self, value: int) -> int:
        """The largest n whose value is <= value (0: below the first)."""
        return max(0, (value - self.offset) // self.step) if value > self.offset else 0


def axis_of(plan: Plan, field: str) -> Axis:
    """Every integer for seq_len and completion_len, and for batch_size except under GRPO, where
    batch_size x n_gpus x grad_accum must divide by num_generations (multiples of
    num_generations / gcd(num_generations, n_gpus x grad_accum)); for num_generations the values
    >= 2 that keep batch_size x value / num_generations whole (multiples of num_generations /
    gcd(batch_size, num_generations))."""
    import math
    if field == "batch_size" and plan.algorithm == "grpo":
        return Axis(field, step=plan.num_generations // math.gcd(plan.num_generations,
                                                                 plan.n_gpus * plan.grad_accum))
    if field != "num_generations":
        return Axis(field)
    step = plan.num_generations // math.gcd(plan.batch_size, plan.num_generations)
    return Axis(field, offset=1 if step == 1 else 0, step=step)


def axis_plan(plan: Plan, field: str, value: int) -> Plan | None:
    """plan with field at value, as the curves and frontiers vary it: num_generations with
    batch_size scaled to keep the prompts per generation batch (None where batch_size would not
    be whole); every other field alone."""
    if field != "num_generations":
        return replace(plan, **{field: value})
    batch, rest = divmod(plan.batch_size * value, plan.num_generations)
    return None if rest or batch < 1 else replace(plan, num_generations=value, batch_size=batch)


def axis_edge(fits: Callable[[int], bool], axis: Axis, limit: int, known_true: int = 0,
              known_false: int | None = None) -> int:
    """largest_true over the axis's values: the largest value <= limit with fits(value) (0: none);
    known_true / known_false are values on the axis."""
    n = largest_true(lambda i: fits(axis.value(i)), axis.index(limit), axis.index(known_true),
                     None if known_false is None else axis.index(known_false))
    return axis.value(n)


def largest_on_axis(plan: Plan, field: str, calibration: CalibrationProfile | None = None,
                    limit: int = MAX_SEQ_LEN) -> int:
    """The largest value of field (GRPO_AXES: num_generations, completion_len; all else as in
    plan, num_generations with its batch as axis_plan scales it) that fits plan's card; 0 when
    not even the smallest does."""
    from .errors import PlanError
    from .plan import check_combination

    def fits(value: int) -> bool:
        moved = axis_plan(plan, field, value)
        try:
            return moved is not None and plan_fits(check_combination(moved), calibration)
        except PlanError:
            return False
    return axis_edge(fits, axis_of(plan, field), limit)


def largest_num_generations(plan: Plan, gpu_id: str | None = None, calibration: CalibrationProfile | None = None,
                            limit: int = MAX_GENERATIONS) -> int:
    """GRPO: the most completions per prompt (prompts per generation batch as in plan) that fit
    on gpu_id (default: the plan's card)."""
    base = plan if gpu_id is None else replace(plan, gpu=find_gpu(gpu_id).id)
    return largest_on_axis(base, "num_generations", calibration, limit)


def longest_completion_len(plan: Plan, gpu_id: str | None = None, calibration: CalibrationProfile | None = None,
                           limit: int = MAX_SEQ_LEN) -> int:
    """GRPO: the longest max_completion_length (all else as in plan) that fits on gpu_id."""
    base = plan if gpu_id is None else replace(plan, gpu=find_gpu(gpu_id).id)
    return largest_on_axis(base, "completion_len", calibration, limit)


def plan_fits(plan: Plan, calibration: CalibrationProfile | None = None) -> bool:
    """estimate(plan, calibration).memory.fits, from the step's peak alone."""
    from .estimate import _card
    spec = resolve_model(plan.model)
    gpu, _ = _card(plan, calibration)
    peak = step_peak(plan, spec, gpu, model_state(spec, plan))
    return fits_on(peak.reserved_bytes, gpu, plan.n_gpus, peak.gpu_state.paged_tensor_bytes)


def largest_batch_size(plan: Plan, gpu_id: str | None = None, calibration: CalibrationProfile | None = None,
                       limit: int = MAX_BATCH_SIZE) -> int:
    """The largest micro-batch (batch_size, all else as in plan) that fits on gpu_id (default:
    the plan's card); 0 when not even one sequence fits."""
    base = plan if gpu_id is None else replace(plan, gpu=find_gpu(gpu_id).id)
    return axis_edge(lambda n: plan_fits(replace(base, batch_size=n), calibration), axis_of(base, "batch_size"), limit)


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
    """What fits one card (the plan's GPU count and everything else as in the plan). A GRPO plan
    never reads seq_len (grpo_trainer.py: prompt_len + completion_len), so its lengths are the
    longest completion and the most completions per prompt, and longest_seq_len is None; for
    every other plan those two are None."""

    gpu_id: str
    gpu_name: str
    largest_batch_size: int   # 0: not even micro-batch 1 fits
    longest_seq_len: int | None           # at the plan's batch_size; 0: nothing fits; None: GRPO
    longest_completion_len: int | None = None   # GRPO: at the plan's batch_size
    largest_num_generations: int | None = None  # GRPO: completions per prompt


def card_frontier(plan: Plan, gpu_id: str, calibration: CalibrationProfile | None = None) -> CardFrontier:
    """The frontier of one catalog card: the micro-batch, and the lengths the plan's trainer reads."""
    g = find_gpu(gpu_id)
    largest = largest_batch_size(plan, g.id, calibration)
    if plan.algorithm == "grpo":
        return CardFrontier(g.id, g.name, largest, None, longest_completion_len(plan, g.id, calibration),
                            largest_num_generations(plan, g.id, calibration))
    return CardFrontier(g.id, g.name, largest, longest_seq_len(plan, g.id, calibration))


def card_frontiers(plan: Plan, gpus: Iterable[str] | None = None,
                   calibration: CalibrationProfile | None = None) -> tuple[CardFrontier, ...]:
    """The frontiers of every catalog card (or those named)."""
    cards = gpu_catalog() if gpus is None else tuple(find_gpu(g) for g in gpus)
    return tuple(card_frontier(plan, g.id, calibration) for g in cards)
