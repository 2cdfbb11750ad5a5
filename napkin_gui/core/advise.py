"""What to change in a plan: a view of the search (core/search.py), then single edits.

The first items are the search's best plans that train the same thing: "fastest on this
card" (the plan's card, at most its GPU count), "cheapest overall" (every catalog card, up
to 8 GPUs) and, when the plan does not fit, "fits on this card" (the plan on its card with
the fewest changes, then the fastest). When nothing of the space fits the card, the search
may also change the method (LoRA / QLoRA) to say what would fit there. Then come single
edits, each estimated: when the plan does not fit, those that make it fit, the cheapest in
time first; when it fits, those that speed it up most, then the ones that cut its cost. No
two items lead to the same plan. Each Advice carries the changed Plan, so a UI can apply it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..units import gib, gib_delta, percent, usd
from .compare import compare_hardware
from .errors import PlanError
from .estimate import estimate
from .frontier import axis_of, largest_batch_size
from .gpu_catalog import find_gpu, gpu_catalog
from .memory.model_state import model_state
from .memory.summary import memory_estimate
from .model_source import resolve_model
from .names import plan_change_words, tokens_text
from .plan import Plan, check_combination
from .plan_warnings import FP16_COUNTERPART, bf16_without_tensor_cores
from .result import Estimate

if TYPE_CHECKING:
    from .calibration import CalibrationProfile

SHARD_COUNTS = (2, 4, 8)
METHOD_ORDER = ("full", "lora", "qlora")
# the search's items: titles a UI can tell apart from single edits
FASTEST_ON_CARD = "fastest on this card"
CHEAPEST_OVERALL = "cheapest overall"
FITS_ON_CARD = "fits on this card"
SEARCH_TITLES = (FASTEST_ON_CARD, CHEAPEST_OVERALL, FITS_ON_CARD)
# a search item is shown when it beats the plan by more than this (relative)
BETTER = 0.005


@dataclass(frozen=True, slots=True)
class Advice:
    """One change: the new plan, its effect on memory (per GPU) and time per token, in words."""

    title: str
    plan: Plan
    memory_delta_bytes: int      # device_used after - before (per GPU)
    time_delta_fraction: float   # seconds per token after / before - 1 (negative: faster)
    fits_after: bool
    reason: str
    cost_delta_fraction: float = 0.0   # USD per token after / before - 1
    changes: tuple[str, ...] = ()      # "field: old -> new" (the search's items)


def _card(gpu_id: str, calibration: CalibrationProfile | None = None):
    """The catalog card, with the profile's measured figures where it was measured on it
    (the card core.estimate prices with the same calibration)."""
    gpu = find_gpu(gpu_id)
    if calibration is None:
        return gpu
    from .calibration import apply_calibration
    return apply_calibration(gpu, calibration)


def largest_batch_that_fits(plan: Plan, gpu_id: str | None = None,
                            calibration: CalibrationProfile | None = None) -> int:
    """The largest batch_size whose step fits on gpu_id (default: the plan's card); 0 if none
    (core.frontier.largest_batch_size: bisection on the model)."""
    return largest_batch_size(plan, gpu_id, calibration)


def fit_summary(plan: Plan, calibration: CalibrationProfile | None = None) -> str:
    """One line on what fits the plan's card: the largest micro-batch, or that nothing does
    (never "largest batch: 0")."""
    gpu = find_gpu(plan.gpu)
    count = f" × {plan.n_gpus}" if plan.n_gpus > 1 else ""
    largest = largest_batch_size(plan, calibration=calibration)
    if largest == 0:
        # GRPO: the smallest micro-batch TRL accepts (frontier.axis_of), of prompt + completion
        smallest = axis_of(plan, "batch_size").value(1)
        return (f"nothing fits {gpu.name}{count} as planned, not even micro-batch {smallest} of "
                f"{tokens_text(plan)} tokens")
    return f"largest micro-batch that fits {gpu.name}{count}: {largest}"


def _seconds_per_token(est: Estimate) -> float:
    return 1.0 / est.time.tokens_per_second_total


def _usd_per_token(est: Estimate) -> float:
    return est.gpu.price_usd_per_hour * est.plan.n_gpus / 3600 * _seconds_per_token(est)


def _smallest_card(plan: Plan, calibration: CalibrationProfile | None = None) -> str:
    """'fits on a 24 GiB card (NVIDIA GeForce RTX 4090)': the smallest catalog card it fits on
    (GiB like every memory figure napkin shows; the card's own name keeps its maker's GB)."""
    spec = resolve_model(plan.model)
    state = model_state(spec, plan)
    for gpu in sorted(gpu_catalog(), key=lambda g: (g.memory_bytes, g.price_usd_per_hour)):
        card = _card(gpu.id, calibration)
        if memory_estimate(replace(plan, gpu=gpu.id), spec, card, state).fits:
            return f"fits on a {gib(gpu.memory_bytes, 0)} card ({gpu.name})"
    return "fits on no single catalog card"


def _advice(title: str, plan: Plan, before: Estimate, note: str = "",
            calibration: CalibrationProfile | None = None, changes: tuple[str, ...] = ()) -> Advice | None:
    """Estimate the changed plan and describe its effect; None when the change cannot run."""
    try:
        after = estimate(check_combination(plan), calibration=calibration)
    except PlanError:
        return None
    mem = after.memory.device_used_bytes - before.memory.device_used_bytes
    time = _seconds_per_token(after) / _seconds_per_token(before) - 1
    cost = _usd_per_token(after) / _usd_per_token(before) - 1
    speed = f"{percent(1 / (1 + time) - 1, signed=True)} tokens/s" if time < -0.005 else f"{percent(time, signed=True)} time"
    # the changes in words, with human names (LoRA, H100 80GB SXM5); changes keeps the ids
    named = ", ".join(plan_change_words(before.plan, after.plan)) if changes else ""
    words = f"{title}: " + (f"{named}: " if named else "") + f"{_memory_words(before, after)}, {speed}"
    if abs(cost - time) > 0.01:
        words += f", {percent(cost, signed=True)} cost"
    if after.memory.fits and not before.memory.fits:
        words += ", fits"
    if note:
        words += f"; {note}"
    return Advice(title, after.plan, mem, time, after.memory.fits, words, cost, changes)


def _memory_words(before: Estimate, after: Estimate) -> str:
    """The change in device memory per GPU; on another card, what it uses of that card, and
    why the same plan's figure moves at all (its CUDA context and workspaces are the card's)."""
    mem = after.memory.device_used_bytes - before.memory.device_used_bytes
    if after.gpu.id == before.gpu.id:
        return f"{gib_delta(mem)} per GPU"
    used = f"{gib(after.memory.device_used_bytes, 1)} of its {gib(after.memory.capacity_bytes, 1)} per GPU"
    same_split = (after.plan.n_gpus, after.plan.sharding) == (before.plan.n_gpus, before.plan.sharding)
    why = ": that card's CUDA context and workspaces" if same_split else ""
    return f"{used} ({gib_delta(mem)} vs now{why})"


def _memory_edits(p: Plan) -> list[tuple[str, Plan]]:
    """Edits that trade time for memory (or back)."""
    edits = [("gradient checkpointing " + ("off" if p.grad_ckpt else "on"), replace(p, grad_ckpt=not p.grad_ckpt))]
    if p.method == "full":
        edits.append(("LoRA instead of full fine-tuning", replace(p, method="lora")))
    if p.method != "qlora" and p.precision != "fp32":
        edits.append(("QLoRA (4-bit base)", replace(p, method="qlora")))
    if p.optimizer == "adamw":
        edits.append(("8-bit AdamW", replace(p, optimizer="adamw-8bit")))
        edits.append(("paged 8-bit AdamW", replace(p, optimizer="paged-adamw-8bit")))
    if p.attention == "eager":
        edits.append(("sdpa attention instead of eager", replace(p, attention="sdpa")))
    fp16 = FP16_COUNTERPART.get(p.precision)
    if fp16 is not None and bf16_without_tensor_cores(p, find_gpu(p.gpu)) is not None:
        edits.append((f"precision {fp16} (this card has fp16 tensor cores, not bf16)", replace(p, precision=fp16)))
    if p.offload == "none":
        edits.append(("offload optimizer states to the CPU", replace(p, offload="optimizer")))
    if p.seq_len >= 1024:
        edits.append((f"sequence {p.seq_len} → {p.seq_len // 2}", replace(p, seq_len=p.seq_len // 2)))
    return edits


def _batch_edits(p: Plan) -> list[tuple[str, Plan]]:
    """Smaller / larger micro-batch with grad_accum keeping the effective batch."""
    edits = []
    if p.batch_size > 1:
        bs = p.batch_size // 2
        ga = p.grad_accum * p.batch_size // bs if (p.batch_size % bs == 0) else p.grad_accum
        edits.append((f"batch {p.batch_size} → {bs} (grad_accum {p.grad_accum} → {ga})",
                      replace(p, batch_size=bs, grad_accum=ga)))
    bs = p.batch_size * 2
    ga = p.grad_accum // 2 if p.grad_accum % 2 == 0 else p.grad_accum
    edits.append((f"batch {p.batch_size} → {bs}" + (f" (grad_accum {p.grad_accum} → {ga})" if ga != p.grad_accum else ""),
                  replace(p, batch_size=bs, grad_accum=ga)))
    if not p.grad_ckpt:
        edits.append((f"batch {p.batch_size} → {bs} with checkpointing", replace(p, batch_size=bs, grad_accum=ga, grad_ckpt=True)))
    return edits


def _scale_edits(p: Plan, calibration: CalibrationProfile | None = None) -> list[tuple[str, Plan, str]]:
    """More GPUs (FSDP when the model does not fit one card), another card, the largest batch."""
    edits = []
    if p.n_gpus == 1:
        for n in SHARD_COUNTS:
            edits.append((f"FSDP over {n} GPUs", replace(p, n_gpus=n, sharding="fsdp"), ""))
    # one card of each kind, unsharded unless the plan offloads its parameters: that runs under
    # FSDP / ZeRO-3 even on one GPU (check_combination)
    single = replace(p, n_gpus=1, sharding=p.sharding if p.offload == "optimizer+params" else "none")
    rows = [r for r in compare_hardware(single, counts=(1,), calibration=calibration) if r.fits]
    current = find_gpu(p.gpu).id
    if rows:
        cheap = min(rows, key=lambda r: r.usd_per_million_tokens)
        fast = max(rows, key=lambda r: r.tokens_per_second)
        for label, row in (("cheapest card that fits", cheap), ("fastest card that fits", fast)):
            if row.gpu_id != current or p.n_gpus != 1:
                edits.append((f"{label}: {row.gpu_name}", replace(single, gpu=row.gpu_id),
                              f"{usd(row.usd_per_million_tokens)} per M tokens"))
    best = largest_batch_size(p, calibration=calibration)
    if best > p.batch_size:
        edits.append((f"largest batch that fits: {p.batch_size} → {best}", replace(p, batch_size=best), ""))
    return edits


def _fits(plan: Plan, calibration: CalibrationProfile | None = None) -> bool:
    spec = resolve_model(plan.model)
    return memory_estimate(plan, spec, _card(plan.gpu, calibration), model_state(spec, plan)).fits


def _ladder(p: Plan) -> list[tuple[str, Plan]]:
    """Memory savers from the least disruptive: checkpointing, 8-bit optimizer states,
    halving the batch (grad_accum keeps the effective batch), LoRA, QLoRA, optimizer on the CPU."""
    steps = []
    if not p.grad_ckpt:
        p = replace(p, grad_ckpt=True)
        steps.append(("checkpointing", p))
    if p.method == "full" and p.optimizer == "adamw":
        p = replace(p, optimizer="adamw-8bit")
        steps.append(("8-bit AdamW", p))
    while p.batch_size > 1:
        p = replace(p, batch_size=p.batch_size // 2, grad_accum=p.grad_accum * 2)
        steps.append((f"batch {p.batch_size} (grad_accum {p.grad_accum})", p))
    for method, name in (("lora", "LoRA"), ("qlora", "QLoRA")):
        if p.precision != "fp32" and METHOD_ORDER.index(p.method) < METHOD_ORDER.index(method):
            p = replace(p, method=method)
            steps.append((name, p))
    if p.offload == "none":
        steps.append(("optimizer on the CPU", replace(p, offload="optimizer")))
    return steps


def _kind(name: str) -> str:
    """Ladder rungs that replace each other: batch sizes, and LoRA / QLoRA."""
    word = name.split(" ")[0]
    return "method" if word in ("LoRA", "QLoRA") else word


def _combined(p: Plan, calibration: CalibrationProfile | None = None) -> tuple[str, Plan] | None:
    """The first rung of the ladder at which the plan fits this card, as one combined edit."""
    names: list[str] = []
    for name, changed in _ladder(p):
        kind = _kind(name)
        names = [n for n in names if _kind(n) != kind] + [name]
        if _fits(changed, calibration):
            return (" + ".join(names), changed) if len(names) > 1 else None
    return None


def _rank(items: list[Advice], fits_now: bool) -> list[Advice]:
    if not fits_now:
        fixing = sorted((a for a in items if a.fits_after), key=lambda a: (a.time_delta_fraction, a.cost_delta_fraction))
        rest = sorted((a for a in items if not a.fits_after and a.memory_delta_bytes < 0),
                      key=lambda a: a.memory_delta_bytes)
        return fixing + rest
    faster = sorted((a for a in items if a.fits_after and a.time_delta_fraction < -0.01),
                    key=lambda a: a.time_delta_fraction)
    cheaper = sorted((a for a in items if a.fits_after and a.time_delta_fraction >= -0.01
                      and a.cost_delta_fraction < -0.01), key=lambda a: a.cost_delta_fraction)
    return faster + cheaper


def _search_items(plan: Plan, before: Estimate, calibration: CalibrationProfile | None) -> list[Advice]:
    """The search's best plans for this one (module docstring), each with its changes."""
    from .search import DEFAULT_MAX_GPUS, MAX_SEARCH_GPUS, plan_changes, search_table, shared_search_table
    card = find_gpu(plan.gpu).id
    try:   # the table the Best plans view and the report search too (shared_search_table)
        table = shared_search_table(plan, min(max(DEFAULT_MAX_GPUS, plan.n_gpus), MAX_SEARCH_GPUS), calibration)
    except PlanError:
        return []
    mine = table.rows(gpus=(card,), max_gpus=plan.n_gpus)
    everywhere = table.rows()
    base_tps = before.time.tokens_per_second_total
    base_usd = _usd_per_token(before)
    picks: list[tuple[str, Plan]] = []
    if len(mine):
        best = int(table.ranked("fastest", mine)[0])
        if not before.memory.fits or table.tokens_per_second[best] > base_tps * (1 + BETTER):
            picks.append((FASTEST_ON_CARD, table.plan(best)))
    if len(everywhere):
        best = int(table.ranked("cheapest", everywhere)[0])
        if not before.memory.fits or table.usd_per_token[best] < base_usd * (1 - BETTER):
            picks.append((CHEAPEST_OVERALL, table.plan(best)))
    if not before.memory.fits:
        import numpy
        rows, changed = mine, table
        if not len(rows):   # nothing of the space fits this card: would another method?
            try:
                changed = search_table(plan, gpus=(card,), max_gpus=plan.n_gpus, allow=frozenset({"method"}),
                                       calibration=calibration)
            except PlanError:
                changed = None
            rows = changed.rows() if changed is not None else numpy.zeros(0, dtype=int)
        if len(rows):
            order = numpy.lexsort((-changed.tokens_per_second[rows], changed.changes[rows]))
            picks.append((FITS_ON_CARD, changed.plan(int(rows[order[0]]))))
    items = []
    for title, changed_plan in picks:
        advice = _advice(title, changed_plan, before, calibration=calibration,
                         changes=plan_changes(plan, changed_plan))
        if advice is not None:
            items.append(advice)
    return items


def _same_plan(a: Plan, b: Plan) -> bool:
    """Plans equal but for how the card is named."""
    return replace(a, gpu=find_gpu(a.gpu).id) == replace(b, gpu=find_gpu(b.gpu).id)


def advise(plan: Plan, limit: int = 8, calibration: CalibrationProfile | None = None) -> tuple[Advice, ...]:
    """The search's best plans for this one, then the single changes that help most, each
    with its modelled effect; no two lead to the same plan.

    calibration: every estimate (and every card's fit) uses the probe's measured figures where
    they apply, as core.estimate(plan, calibration) does."""
    before = estimate(plan, calibration=calibration)
    found = _search_items(plan, before, calibration)
    items: list[Advice] = []
    for title, changed in _memory_edits(plan) + _batch_edits(plan):
        advice = _advice(title, changed, before, calibration=calibration)
        if advice is not None:
            items.append(advice)
    combined = None if before.memory.fits else _combined(plan, calibration)
    if combined is not None:
        advice = _advice(*combined, before, calibration=calibration)
        if advice is not None:
            items.append(advice)
    for title, changed, note in _scale_edits(plan, calibration):
        advice = _advice(title, changed, before, note, calibration)
        if advice is not None:
            items.append(advice)
    for i, advice in enumerate(items):
        if advice.plan.method != plan.method and advice.plan.method in ("lora", "qlora"):
            items[i] = replace(advice, reason=f"{advice.reason}; {_smallest_card(advice.plan, calibration)}")
    out: list[Advice] = []
    for advice in found + _rank(items, before.memory.fits):
        if _same_plan(advice.plan, plan) or any(_same_plan(advice.plan, o.plan) for o in out):
            continue
        out.append(advice)
    return tuple(out[:limit])
