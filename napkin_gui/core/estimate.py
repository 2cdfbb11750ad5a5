"""core.estimate(plan): the one entry point. Resolves the model and GPU, then wires memory,
time and total cost. Everything the UI, report and CLI show comes from its Estimate."""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .gpu_catalog import find_gpu
from .gpu_spec import GpuSpec
from .memory.fsdp_mixed_precision import accelerate_upcast_warning
from .memory.model_state import model_state
from .memory.summary import (fits_on, memory_estimate, paged_out_bytes, paged_room_bytes, paged_traffic_bytes,
                             step_peak)
from .model_source import resolve_model
from .plan import Plan
from .plan_warnings import plan_warnings
from .result import Estimate, TotalEstimate
from .time_model import step_time, time_estimate

if TYPE_CHECKING:
    from .calibration import CalibrationProfile


def total_estimate(plan: Plan, tokens_per_second_total: float, price_usd_per_hour: float) -> TotalEstimate | None:
    """Hours and cost of dataset_tokens x epochs on n_gpus; None without a dataset size."""
    if plan.dataset_tokens <= 0 or tokens_per_second_total <= 0:
        return None
    tokens = plan.dataset_tokens * plan.epochs
    hours = tokens / tokens_per_second_total / 3600
    return TotalEstimate(tokens=tokens, hours=hours, cost_usd=hours * price_usd_per_hour * plan.n_gpus)


def _card(plan: Plan, calibration: CalibrationProfile | None) -> tuple[GpuSpec, str | None]:
    """The plan's card, calibrated when the profile was measured on it, and the profile's label."""
    gpu = find_gpu(plan.gpu)
    if calibration is None:
        return gpu, None
    from .calibration import apply_calibration, profile_label
    calibrated = apply_calibration(gpu, calibration)
    # a profile applies only to the card it was measured on (else the same object returns)
    return calibrated, (profile_label(calibration) if calibrated is not gpu else None)


def estimate(plan: Plan, calibration: CalibrationProfile | None = None) -> Estimate:
    """Memory, time and cost of one plan (PlanError when its model or GPU is unknown)."""
    spec = resolve_model(plan.model)
    gpu, label = _card(plan, calibration)
    state = model_state(spec, plan)
    memory = memory_estimate(plan, spec, gpu, state)
    time = time_estimate(plan, spec, gpu, state, paged_bytes=memory.paged_traffic_bytes)
    total = total_estimate(plan, time.tokens_per_second_total, gpu.price_usd_per_hour)
    upcast = accelerate_upcast_warning(plan)
    return Estimate(plan=plan, model=spec, gpu=gpu, total_params=state.total_params,
                    trainable_params=state.trainable_params, memory=memory, time=time, total=total,
                    calibration=label,
                    warnings=spec.warnings + ((upcast,) if upcast else ()) + plan_warnings(plan, spec, gpu))


class StepPoint(NamedTuple):
    """One point of a curve: the Estimate's step_seconds, tokens_per_second (per GPU) and fits."""

    step_seconds: float
    tokens_per_second: float
    fits: bool


def estimate_point(plan: Plan, calibration: CalibrationProfile | None = None) -> StepPoint:
    """What estimate(plan) says of time per step, throughput and fit, without the components,
    formulas and time terms (the Time view's curves price 16 plans per edit)."""
    spec = resolve_model(plan.model)
    gpu, _ = _card(plan, calibration)
    state = model_state(spec, plan)
    peak = step_peak(plan, spec, gpu, state)
    managed = peak.gpu_state.managed_bytes
    paged = paged_traffic_bytes(managed, paged_out_bytes(managed, paged_room_bytes(peak.reserved_bytes, gpu, plan.n_gpus)))
    t = step_time(plan, spec, gpu, state, paged_bytes=paged)
    return StepPoint(t.step_seconds, t.tokens_per_second,
                     fits_on(peak.reserved_bytes, gpu, plan.n_gpus, peak.gpu_state.paged_tensor_bytes))
