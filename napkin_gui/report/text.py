"""Plain formatting of an Estimate for the report: strings and rows, no Qt, no computing."""
from __future__ import annotations

import html

from ..core.plan import Plan, plan_to_dict
from ..core.result import COMPONENT_LABELS, Estimate, MemoryEstimate, TimeEstimate
from ..core.user_prices import price_citation
from ..core.names import gpu_name, value_name
from ..units import count, gib, host_ram_text, hours, managed_text, plural, seconds, usd, usd_per_hour


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def component_label(name: str) -> str:
    return COMPONENT_LABELS.get(name, name.replace("_", " "))


def title_text(est: Estimate) -> str:
    p = est.plan
    gpus = f"{est.gpu.name}" + (f" × {p.n_gpus}" if p.n_gpus > 1 else "")
    return f"{est.model.name} · {p.method} · {gpus}"


def plan_rows(plan: Plan) -> tuple[tuple[str, str], ...]:
    """Every plan-v1 field with its value, in contract order; choices by their human names
    (names.py: 'LoRA', 'NVIDIA H100 80GB SXM5'), not the plan file's ids."""
    rows = []
    for name, value in plan_to_dict(plan).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ", ".join(value)
        elif name == "dataset_tokens":
            text = f"{value:,.0f}" if value else "0 (no total time / cost)"
        elif isinstance(value, float):
            text = f"{value:g}"
        elif name == "gpu":
            text = gpu_name(value)
        else:
            text = value_name(name, value)
        rows.append((name, text))
    return tuple(rows)


def verdict_text(mem: MemoryEstimate) -> str:
    """'fits' with headroom, or 'does not fit: over by X GiB'; always with the peak phase."""
    if mem.fits:
        head = f"Fits: {gib(mem.device_used_bytes)} of {gib(mem.capacity_bytes)} used, {gib(mem.headroom_bytes)} free"
    else:
        head = (f"Does not fit: over by {gib(-mem.headroom_bytes)} "
                f"({gib(mem.device_used_bytes)} needed, {gib(mem.capacity_bytes)} on the GPU)")
    return f"{head}; peak at {mem.peak_phase}"


def component_rows(mem: MemoryEstimate, n_gpus: int = 1) -> tuple[tuple[str, str, str], ...]:
    """(label, GiB, formula) per component, then the peak / reserved / device-used totals."""
    rows = [(component_label(c.name), gib(c.bytes), c.formula) for c in mem.components]
    rows.append(("peak allocated", gib(mem.peak_allocated_bytes), f"max_memory_allocated, at {mem.peak_phase}"))
    rows.append(("peak reserved", gib(mem.peak_reserved_bytes), "max_memory_reserved (caching allocator)"))
    rows.append(("device used", gib(mem.device_used_bytes), "nvidia-smi view: reserved + CUDA context"))
    if mem.host_bytes:
        rows.append(("host RAM per GPU", gib(mem.host_bytes), host_ram_text(mem, n_gpus)))
    if mem.managed_bytes:
        rows.append(("managed", gib(mem.managed_bytes), managed_text(mem)))
    return tuple(rows)


def algorithm_rows(est: Estimate) -> tuple[tuple[str, str, str], ...]:
    """A preference / RL plan's own phases: (phase, GiB allocated, what runs); empty for SFT."""
    algo = est.memory.algorithm
    if algo is None:
        return ()
    by_phase = {p.phase: p.allocated_bytes for p in est.memory.timeline}
    what = {"policy log-probs": f"{algo.policy_sequences} sequences x {algo.sequence_tokens:,} tokens, "
                                f"{algo.scored_tokens:,} scored",
            "reference log-probs": f"reference {algo.reference}, no_grad, on the policy's saved tensors",
            "log-probs backward": "the log-prob head's gradients",
            "KL log-probs": "KTO's KL batch, no_grad",
            "generate": (f"{algo.generation_sequences} sequences decoded together"
                         + (f", KV cache {gib(algo.kv_cache_bytes)}" if algo.kv_cache_bytes else "")
                         + (f", vLLM share {gib(algo.vllm_reserved_bytes)}" if algo.vllm_reserved_bytes else "")),
            "old-policy log-probs": "vLLM importance-sampling correction, no_grad"}
    return tuple((name, gib(by_phase[name]), what.get(name, "")) for name in algo.phases)


def time_rows(time: TimeEstimate, grad_accum: int) -> tuple[tuple[str, str], ...]:
    rows = [
        ("step (one micro-batch)", seconds(time.step_seconds)),
        (f"optimizer step ({grad_accum} micro-batch{'es' if grad_accum > 1 else ''} + update)",
         seconds(time.optimizer_step_seconds)),
        ("tokens/s per GPU", count(time.tokens_per_second)),
        ("tokens/s all GPUs", count(time.tokens_per_second_total)),
        ("bound", time.bound),
    ]
    if time.mfu:
        rows.append(("MFU (6·N·tokens / peak)", f"{time.mfu * 100:.1f} %"))
    return tuple(rows)


def term_rows(time: TimeEstimate) -> tuple[tuple[str, str, str], ...]:
    return tuple((t.name, seconds(t.seconds), t.formula) for t in time.terms)


def total_text(est: Estimate) -> str | None:
    if est.total is None:
        return None
    t = est.total
    return (f"{count(t.tokens)} tokens ({plural(est.plan.epochs, 'epoch')}): "
            f"{hours(t.hours)} on {est.plan.n_gpus} × {est.gpu.name}, "
            f"{usd(t.cost_usd)} at {usd_per_hour(est.gpu.price_usd_per_hour)} per GPU "
            f"({price_citation(est.gpu.price_source, est.gpu.price_date)})")
