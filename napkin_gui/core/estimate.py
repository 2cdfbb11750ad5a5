"""core.estimate(plan): the one entry point. Resolves the model and GPU, then wires memory,
time and total cost. Everything the UI, report and CLI show comes from its Estimate."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .gpu_catalog import find_gpu
from .memory.model_state import model_state
from .memory.summary import memory_estimate
from .model_source import resolve_model
from .plan import Plan
from .result import Estimate, TotalEstimate
from .time_model import time_estimate

if TYPE_CHECKING:
    from .calibration import CalibrationProfile


def total_estimate(plan: Plan, tokens_per_second_total: float, price_usd_per_hour: float) -> TotalEstimate | None:
    """Hours and cost of dataset_tokens x epochs on n_gpus; None without a dataset size."""
    if plan.dataset_tokens <= 0 or tokens_per_second_total <= 0:
        return None
    tokens = plan.dataset_tokens * plan.epochs
    hours = tokens / tokens_per_second_total / 3600
    return TotalEstimate(tokens=tokens, hours=hours, cost_usd=hours * price_usd_per_hour * plan.n_gpus)


def estimate(plan: Plan, calibration: CalibrationProfile | None = None) -> Estimate:
    """Memory, time and cost of one plan (PlanError when its model or GPU is unknown)."""
    spec = resolve_model(plan.model)
    gpu = find_gpu(plan.gpu)
    label = None
    if calibration is not None:
        from .calibration import apply_calibration, profile_label
        calibrated = apply_calibration(gpu, calibration)
        # a profile applies only to the card it was measured on (else the same object returns)
        label = profile_label(calibration) if calibrated is not gpu else None
        gpu = calibrated
    state = model_state(spec, plan)
    memory = memory_estimate(plan, spec, gpu, state)
    time = time_estimate(plan, spec, gpu, state, memory)
    total = total_estimate(plan, time.tokens_per_second_total, gpu.price_usd_per_hour)
    return Estimate(plan=plan, model=spec, gpu=gpu, total_params=state.total_params,
                    trainable_params=state.trainable_params, memory=memory, time=time, total=total,
                    calibration=label, warnings=spec.warnings)
