"""One plan on every catalog card, alone and in groups of 2/4/8: fits?, speed, hours, cost.

Reuses the estimate's pieces: the model is resolved and its state counted once; memory is
estimated once per (GPU count, sharding) and moved to each card's cuBLAS workspace; time is
priced for all rows at once (_step_times). With more than one GPU and no sharding in the plan a
row assumes data parallel (DDP) when the model fits each card, else FSDP FULL_SHARD.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import PlanError
from .estimate import total_estimate
from .gpu_catalog import gpu_catalog
from .gpu_spec import GpuSpec
from .memory.model_state import ModelState, model_state
from .memory.rollout import vllm_reserved_bytes
from .memory.summary import (capacity_bytes, device_used_bytes, fits_on, memory_estimate, paged_out_bytes,
                             paged_room_bytes, paged_traffic_bytes)
from .model_source import resolve_model
from .model_spec import ModelSpec
from .plan import Plan, check_combination
from .result import MemoryEstimate
from .step_work import StepWork, step_work
from .time_efficiency import time_efficiency
from .time_model import card_rates, plan_traffic, priced_step

if TYPE_CHECKING:
    from .calibration import CalibrationProfile

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
    price_source: str = ""            # where price_usd_per_hour is from (GpuSpec.price_source)
    price_date: str = ""

    @property
    def price_usd_per_hour_total(self) -> float:
        return self.price_usd_per_hour * self.n_gpus


def card_shift_bytes(plan: Plan, gpu: GpuSpec, reference: GpuSpec) -> int:
    """How much every phase of plan's step moves from the reference card to gpu. A card enters
    a step's memory only through what is alive in every phase and sized by the card: its cuBLAS
    workspaces, made before the step (timeline.py), and under GRPO with vllm-colocate vLLM's
    share of the card's memory (rollout.vllm_reserved_bytes, held all run). Its CUDA context and
    capacity only decide fits_on / device_used_bytes."""
    return (gpu.cublas_workspace_bytes - reference.cublas_workspace_bytes
            + vllm_reserved_bytes(plan, gpu.memory_bytes) - vllm_reserved_bytes(plan, reference.memory_bytes))


@dataclass(frozen=True, slots=True)
class _Variant:
    """The plan at one GPU count and sharding, and its step's memory estimated on one card."""

    plan: Plan
    memory: MemoryEstimate
    card: GpuSpec  # the card memory was estimated on

    def reserved_on(self, gpu: GpuSpec) -> int:
        """Peak reserved bytes of this step on gpu: every phase, so the peak too, moves by
        card_shift_bytes."""
        return self.memory.peak_reserved_bytes + card_shift_bytes(self.plan, gpu, self.card)

    def fits_on(self, gpu: GpuSpec) -> bool:
        return fits_on(self.reserved_on(gpu), gpu, self.plan.n_gpus, self.memory.paged_tensor_bytes)

    def paged_traffic_on(self, gpu: GpuSpec) -> int:
        """Paged optimizer states moved over PCIe per step on gpu (summary.paged_traffic_bytes)."""
        managed = self.memory.managed_bytes
        room = paged_room_bytes(self.reserved_on(gpu), gpu, self.plan.n_gpus)
        return paged_traffic_bytes(managed, paged_out_bytes(managed, room))


class _Variants:
    """_Variant per (GPU count, sharding), made the first time a card asks for it."""

    def __init__(self, plan: Plan, spec: ModelSpec, state: ModelState) -> None:
        self.plan, self.spec, self.state = plan, spec, state
        self._items: dict[tuple[int, str], _Variant | None] = {}

    def get(self, n: int, sharding: str, gpu: GpuSpec) -> _Variant | None:
        """None when the plan cannot run that way (check_combination says why)."""
        key = (n, sharding)
        if key not in self._items:
            try:
                plan = check_combination(replace(self.plan, n_gpus=n, sharding=sharding))
            except PlanError:
                self._items[key] = None
            else:
                memory = memory_estimate(plan, self.spec, gpu, self.state)
                self._items[key] = _Variant(plan, memory, gpu)
        return self._items[key]


def _choose(plan: Plan, gpu: GpuSpec, n: int, variants: _Variants) -> _Variant | None:
    """The plan on n of this card: DDP if that fits, else FSDP (unless the plan names a sharding);
    None when it cannot run on n GPUs at all (litgpt quantizes on one device only)."""
    named = variants.get(n, plan.sharding, gpu)
    if named is None:  # the plan's own sharding needs more GPUs than n: run it unsharded
        named = variants.get(n, "none", gpu)
    if named is None or n == 1 or plan.sharding != "none" or named.fits_on(gpu):
        return named
    return variants.get(n, "fsdp", gpu) or named


def _distinct(items: list) -> tuple[list, list[int]]:
    """The distinct items (by identity) in first-seen order, and each item's index among them."""
    first: dict[int, int] = {}
    index = [first.setdefault(id(item), len(first)) for item in items]
    return list({id(item): item for item in items}.values()), index


def _columns(records: list[tuple], index: list[int]) -> tuple:
    """One record of the records' type whose fields are float64 arrays, one element per row:
    row r holds records[index[r]]."""
    import numpy
    table = numpy.array(list(zip(*records)), dtype=float)  # [field, record]
    return type(records[0])._make(table[:, numpy.array(index)])  # [field, row]


def _step_times(plan: Plan, spec: ModelSpec, state: ModelState, work: StepWork,
                chosen: list[tuple[GpuSpec, _Variant]]) -> tuple[list[float], list[float], list[str]]:
    """Step seconds, tokens/s per GPU and bound of every (card, variant) row.

    Why arrays: the desktop app reprices the table's 152 rows (38 cards x 4 counts) on each edit
    of the plan, and step_time in floats was most of compare's time (bench/README.md). So time_model's formulas run once here over numpy arrays (priced_step):
    each row's card comes as CardRates, its GPU count and sharding as LinkTraffic, each priced in
    floats once per card / variant and gathered by row. Values equal step_time's, bounds exactly,
    seconds to ~1e-15 relative (numpy's SIMD pow may round differently from Python's **)."""
    import numpy
    eff = time_efficiency()
    cards, card_of_row = _distinct([gpu for gpu, _ in chosen])
    variants, variant_of_row = _distinct([variant for _, variant in chosen])
    card = _columns([card_rates(work, gpu, eff, plan.compute_dtype) for gpu in cards], card_of_row)
    traffic = _columns([plan_traffic(variant.plan, spec, state) for variant in variants], variant_of_row)
    paged = numpy.array([variant.paged_traffic_on(gpu) for gpu, variant in chosen], dtype=float)
    time = priced_step(plan, work, card, traffic, eff, paged)
    return time.step_seconds.tolist(), time.tokens_per_second.tolist(), time.bound.tolist()


def _row(gpu: GpuSpec, variant: _Variant, step_seconds: float, tokens_per_second: float, bound: str) -> HardwareRow:
    """One table row: the variant's plan on n of this card, its step priced (tokens/s per GPU)."""
    plan, reserved = variant.plan, variant.reserved_on(gpu)
    tps = tokens_per_second * plan.n_gpus
    total = total_estimate(plan, tps, gpu.price_usd_per_hour)
    per_million = gpu.price_usd_per_hour * plan.n_gpus / (tps * 3600) * 1e6 if tps > 0 else float("inf")
    return HardwareRow(
        gpu_id=gpu.id, gpu_name=gpu.name, n_gpus=plan.n_gpus, sharding=plan.sharding, fits=variant.fits_on(gpu),
        peak_allocated_bytes=variant.memory.peak_allocated_bytes + reserved - variant.memory.peak_reserved_bytes,
        device_used_bytes=device_used_bytes(reserved, gpu, variant.memory.managed_bytes, plan.n_gpus),
        capacity_bytes=capacity_bytes(gpu), step_seconds=step_seconds, tokens_per_second=tps,
        usd_per_million_tokens=per_million, hours=total.hours if total else None,
        cost_usd=total.cost_usd if total else None, price_usd_per_hour=gpu.price_usd_per_hour,
        price_source=gpu.price_source, price_date=gpu.price_date,
        bound=bound)


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
                     gpus: tuple[GpuSpec, ...] | None = None,
                     calibration: CalibrationProfile | None = None) -> tuple[HardwareRow, ...]:
    """Every catalog card x every count in `counts`, in catalog order, best ones flagged.

    calibration: each card the profile was measured on is priced with its measured figures
    (core.calibration.apply_calibration), as core.estimate(plan, calibration) prices it."""
    plan = check_combination(plan)  # PlanError here, so that every variant below has a fallback
    if calibration is not None:
        from .calibration import apply_calibration
        gpus = tuple(apply_calibration(g, calibration) for g in (gpus if gpus is not None else gpu_catalog()))
    spec = resolve_model(plan.model)
    state = model_state(spec, plan)
    variants = _Variants(plan, spec, state)
    work = step_work(spec, plan, state.trainable_params)  # one GPU's micro-batch: the same in every row
    chosen = [(gpu, variant) for gpu in (gpus if gpus is not None else gpu_catalog()) for n in counts
              if (variant := _choose(plan, gpu, n, variants)) is not None]   # no row for a count it cannot run on
    if not chosen:  # no card or no count asked for
        return ()
    times = _step_times(plan, spec, state, work, chosen)
    return _mark([_row(gpu, variant, *time) for (gpu, variant), time in zip(chosen, zip(*times))])


def sorted_rows(rows: tuple[HardwareRow, ...], by: str = "cost") -> tuple[HardwareRow, ...]:
    """Rows that fit first, by cost per token ("cost") or tokens/s ("time"); then the rest."""
    if by == "time":
        key = lambda r: (not r.fits, -r.tokens_per_second, r.usd_per_million_tokens)  # noqa: E731
    else:
        key = lambda r: (not r.fits, r.usd_per_million_tokens, -r.tokens_per_second)  # noqa: E731
    return tuple(sorted(rows, key=key))
