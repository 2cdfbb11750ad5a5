"""One plan on every catalog card, alone and in groups of 2/4/8: fits?, speed, hours, cost.

Reuses the estimate's pieces: the model is resolved and its state counted once; memory is
estimated once per (cuBLAS workspace size, GPU count, sharding) and time per (card, GPU count). With more than one GPU and no sharding in the plan a
row assumes data parallel (DDP) when the model fits each card, else FSDP FULL_SHARD.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import PlanError
from .estimate import total_estimate
from .gpu_catalog import gpu_catalog
from .gpu_spec import GpuSpec
from .memory.model_state import ModelState, model_state
from .memory.summary import capacity_bytes, device_used_bytes, fits_on, memory_estimate
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


class _MemoryByWorkspace:
    """The step's memory for each (cuBLAS workspace, GPU count, sharding) met.

    A card enters a step's memory only through its cuBLAS workspaces (part of every phase's
    temporaries); its CUDA context and capacity only decide fits_on / device_used_bytes. So
    the 38 catalog cards need just their few distinct workspace sizes estimated."""

    def __init__(self, spec: ModelSpec, state: ModelState) -> None:
        self.spec, self.state = spec, state
        self._items: dict[tuple[int, int, str], MemoryEstimate] = {}

    def get(self, plan: Plan, gpu: GpuSpec) -> MemoryEstimate:
        key = (gpu.cublas_workspace_bytes, plan.n_gpus, plan.sharding)
        found = self._items.get(key)
        if found is None:
            found = self._items[key] = memory_estimate(plan, self.spec, gpu, self.state)
        return found


def _variant(plan: Plan, gpu: GpuSpec, n: int, memories: _MemoryByWorkspace) -> tuple[Plan, MemoryEstimate]:
    """The plan on n of this card: DDP if that fits, else FSDP (unless the plan names a sharding)."""
    candidate = replace(plan, gpu=gpu.id, n_gpus=n)
    memory = memories.get(candidate, gpu)
    if n == 1 or plan.sharding != "none" or fits_on(memory.peak_reserved_bytes, gpu):
        return candidate, memory
    try:
        candidate = check_combination(replace(candidate, sharding="fsdp"))
    except PlanError:
        return candidate, memory
    return candidate, memories.get(candidate, gpu)


def _row(plan: Plan, gpu: GpuSpec, memory: MemoryEstimate, time: TimeEstimate) -> HardwareRow:
    """One table row; memory may have been estimated on a card with the same workspace."""
    tps = time.tokens_per_second_total
    total = total_estimate(plan, tps, gpu.price_usd_per_hour)
    per_million = gpu.price_usd_per_hour * plan.n_gpus / (tps * 3600) * 1e6 if tps > 0 else float("inf")
    return HardwareRow(
        gpu_id=gpu.id, gpu_name=gpu.name, n_gpus=plan.n_gpus, sharding=plan.sharding, fits=fits_on(memory.peak_reserved_bytes, gpu),
        peak_allocated_bytes=memory.peak_allocated_bytes,
        device_used_bytes=device_used_bytes(memory.peak_reserved_bytes, gpu, memory.managed_bytes),
        capacity_bytes=capacity_bytes(gpu), step_seconds=time.step_seconds, tokens_per_second=tps,
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
    return tuple(replace(r, cheapest=r is cheapest, fastest=r is fastest) if r is cheapest or r is fastest else r
                 for r in rows)


def compare_hardware(plan: Plan, counts: tuple[int, ...] = COUNTS,
                     gpus: tuple[GpuSpec, ...] | None = None) -> tuple[HardwareRow, ...]:
    """Every catalog card x every count in `counts`, in catalog order, best ones flagged."""
    spec = resolve_model(plan.model)
    state = model_state(spec, plan)
    memories = _MemoryByWorkspace(spec, state)
    rows = []
    for gpu in gpus if gpus is not None else gpu_catalog():
        for n in counts:
            variant, memory = _variant(plan, gpu, n, memories)
            rows.append(_row(variant, gpu, memory, time_estimate(variant, spec, gpu, state, memory)))
    return _mark(rows)


def sorted_rows(rows: tuple[HardwareRow, ...], by: str = "cost") -> tuple[HardwareRow, ...]:
    """Rows that fit first, by cost per token ("cost") or tokens/s ("time"); then the rest."""
    if by == "time":
        key = lambda r: (not r.fits, -r.tokens_per_second, r.usd_per_million_tokens)  # noqa: E731
    else:
        key = lambda r: (not r.fits, r.usd_per_million_tokens, -r.tokens_per_second)  # noqa: E731
    return tuple(sorted(rows, key=key))
