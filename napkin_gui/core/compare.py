"""One plan on every catalog card, alone and in groups of 2/4/8: fits?, speed, hours, cost.

Reuses the estimate's pieces: the model is resolved and its state counted once; memory and
time are priced per (card, GPU count). With more than one GPU and no sharding in the plan a
row assumes data parallel (DDP) when the model fits each card, else FSDP FULL_SHARD.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import PlanError
from .estimate import total_estimate
from .gpu_catalog import gpu_catalog
from .gpu_spec import GpuSpec
from .memory.model_state import ModelState, model_state
from .memory.summary import memory_estimate
from .model_source import resolve_model
from .model_spec import ModelSpec
from .plan import Plan, check_combination
from .result import MemoryEstimate, TimeEstimate
from .time_model import time_estimate

COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True, slots=True)
class HardwareRow:
    """One (card, GPU count) for the plan. hours / cost_usd are None without dataset_tokens."""

    gpu_id: str
    gpu_name: str
    n_gpus: int
    sharding: str
    fits: bool
    peak_allocated_bytes: int
    device_used_bytes: int
    capacity_bytes: int
    step_seconds: float
    tokens_per_second: float          # all GPUs together
    usd_per_million_tokens: float
    hours: float | None
    cost_usd: float | None
    price_usd_per_hour: float         # per GPU
    bound: str
    cheapest: bool = False
    fastest: bool = False

    @property
    def price_usd_per_hour_total(self) -> float:
        return self.price_usd_per_hour * self.n_gpus


def _priced(plan: Plan, spec: ModelSpec, gpu: GpuSpec, state: ModelState) -> tuple[MemoryEstimate, TimeEstimate]:
    memory = memory_estimate(plan, spec, gpu, state)
    return memory, time_estimate(plan, spec, gpu, state, memory)


def _variant(plan: Plan, spec: ModelSpec, gpu: GpuSpec, n: int, state: ModelState):
    """The plan on n of this card: DDP if that fits, else FSDP (unless the plan names a sharding)."""
    candidate = replace(plan, gpu=gpu.id, n_gpus=n)
    if n == 1 or plan.sharding != "none":
        return (candidate,) + _priced(candidate, spec, gpu, state)
    memory = memory_estimate(candidate, spec, gpu, state)
    try:
        if not memory.fits:
            candidate = check_combination(replace(candidate, sharding="fsdp"))
            memory = memory_estimate(candidate, spec, gpu, state)
    except PlanError:
        pass
    return candidate, memory, time_estimate(candidate, spec, gpu, state, memory)


def _row(plan: Plan, gpu: GpuSpec, memory: MemoryEstimate, time: TimeEstimate) -> HardwareRow:
    tps = time.tokens_per_second_total
    total = total_estimate(plan, tps, gpu.price_usd_per_hour)
    per_million = gpu.price_usd_per_hour * plan.n_gpus / (tps * 3600) * 1e6 if tps > 0 else float("inf")
    return HardwareRow(
        gpu_id=gpu.id, gpu_name=gpu.name, n_gpus=plan.n_gpus, sharding=plan.sharding, fits=memory.fits,
        peak_allocated_bytes=memory.peak_allocated_bytes, device_used_bytes=memory.device_used_bytes,
        capacity_bytes=memory.capacity_bytes, step_seconds=time.step_seconds, tokens_per_second=tps,
        usd_per_million_tokens=per_million, hours=total.hours if total else None,
        cost_usd=total.cost_usd if total else None, price_usd_per_hour=gpu.price_usd_per_hour,
        bound=time.bound)


def _mark(rows: list[HardwareRow]) -> tuple[HardwareRow, ...]:
    """Flag the cheapest (cost per token) and the fastest (tokens/s) among rows that fit."""
    fitting = [r for r in rows if r.fits]
    if not fitting:
        return tuple(rows)
    cheapest = min(fitting, key=lambda r: (r.usd_per_million_tokens, -r.tokens_per_second))
    fastest = max(fitting, key=lambda r: (r.tokens_per_second, -r.usd_per_million_tokens))
    return tuple(replace(r, cheapest=r is cheapest, fastest=r is fastest) for r in rows)


def compare_hardware(plan: Plan, counts: tuple[int, ...] = COUNTS,
                     gpus: tuple[GpuSpec, ...] | None = None) -> tuple[HardwareRow, ...]:
    """Every catalog card x every count in `counts`, in catalog order, best ones flagged."""
    spec = resolve_model(plan.model)
    state = model_state(spec, plan)
    rows = []
    for gpu in gpus if gpus is not None else gpu_catalog():
        for n in counts:
            variant, memory, time = _variant(plan, spec, gpu, n, state)
            rows.append(_row(variant, gpu, memory, time))
    return _mark(rows)


def sorted_rows(rows: tuple[HardwareRow, ...], by: str = "cost") -> tuple[HardwareRow, ...]:
    """Rows that fit first, by cost per token ("cost") or tokens/s ("time"); then the rest."""
    if by == "time":
        key = lambda r: (not r.fits, -r.tokens_per_second, r.usd_per_million_tokens)  # noqa: E731
    else:
        key = lambda r: (not r.fits, r.usd_per_million_tokens, -r.tokens_per_second)  # noqa: E731
    return tuple(sorted(rows, key=key))
