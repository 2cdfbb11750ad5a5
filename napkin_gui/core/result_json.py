"""Estimate -> the JSON object of the `napkin estimate --json` contract (plan-v1.md)."""
from __future__ import annotations

import dataclasses
from typing import Any

from .plan import plan_to_dict
from .result import Estimate


def estimate_to_dict(est: Estimate) -> dict[str, Any]:
    """The contract's fields (memory.*, time.*, total.*, calibration) plus a few extras; a
    preference / RL plan adds "algorithm" (its phases and what sets them)."""
    out = _estimate_dict(est)
    if est.memory.algorithm is not None:
        out["algorithm"] = algorithm_to_dict(est)
    return out


def algorithm_to_dict(est: Estimate) -> dict[str, Any]:
    """The algorithm's figures, its own phases with their allocated bytes, and GRPO's generation time."""
    algo = est.memory.algorithm
    out = dataclasses.asdict(algo)
    by_phase = {p.phase: p.allocated_bytes for p in est.memory.timeline}
    out["phases"] = [{"phase": name, "allocated_bytes": by_phase[name]} for name in algo.phases]
    terms = {t.name: t.seconds for t in est.time.terms}
    out["generation_seconds"] = terms["generation"] * est.plan.grad_accum if "generation" in terms else None
    return out


def _estimate_dict(est: Estimate) -> dict[str, Any]:
    mem, time = est.memory, est.time
    return {
        "plan": plan_to_dict(est.plan),
        "model": {"name": est.model.name, "model_type": est.model.model_type, "source": est.model.source,
                  "total_params": est.total_params, "trainable_params": est.trainable_params,
                  "num_layers": est.model.num_layers},
        "gpu": {"id": est.gpu.id, "name": est.gpu.name, "memory_bytes": est.gpu.memory_bytes,
                "price_usd_per_hour": est.gpu.price_usd_per_hour},
        "memory": {
            "components": {c.name: c.bytes for c in mem.components},
            "formulas": {c.name: c.formula for c in mem.components},
            "peak_allocated_bytes": mem.peak_allocated_bytes,
            "peak_reserved_bytes": mem.peak_reserved_bytes,
            "device_used_bytes": mem.device_used_bytes,
            "capacity_bytes": mem.capacity_bytes,
            "timeline": [{"phase": p.phase, "allocated_bytes": p.allocated_bytes} for p in mem.timeline],
            "peak_phase": mem.peak_phase,
            "fits": mem.fits,
            "host_bytes": mem.host_bytes,
            "managed_bytes": mem.managed_bytes,
        },
        "time": {
            "step_seconds": time.step_seconds,
            "optimizer_step_seconds": time.optimizer_step_seconds,
            "tokens_per_second": time.tokens_per_second,
            "tokens_per_second_total": time.tokens_per_second_total,
            "bound": time.bound,
            "terms": {t.name: t.seconds for t in time.terms},
            "mfu": time.mfu,
        },
        "total": None if est.total is None else {"tokens": est.total.tokens, "hours": est.total.hours,
                                                 "cost_usd": est.total.cost_usd},
        "calibration": est.calibration,
        "warnings": list(est.warnings),
    }
