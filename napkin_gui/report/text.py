"""Plain formatting of an Estimate for the report: strings and rows, no Qt, no computing."""
from __future__ import annotations

import html

from ..core.plan import Plan, plan_to_dict
from ..core.result import COMPONENT_LABELS, Estimate, MemoryEstimate, TimeEstimate

GIB = 2**30


def gib(nbytes: float) -> str:
    """Bytes as GiB with two decimals, the way the CLI prints them."""
    return f"{nbytes / GIB:.2f} GiB"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def component_label(name: str) -> str:
    return COMPONENT_LABELS.get(name, name.replace("_", " "))


def title_text(est: Estimate) -> str:
    p = est.plan
    gpus = f"{est.gpu.name}" + (f" × {p.n_gpus}" if p.n_gpus > 1 else "")
    return f"{est.model.name} · {p.method} · {gpus}"


def plan_rows(plan: Plan) -> tuple[tuple[str, str], ...]:
    """Every plan-v1 field with its value, in contract order."""
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
        else:
            text = str(value)
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


def component_rows(mem: MemoryEstimate) -> tuple[tuple[str, str, str], ...]:
    """(label, GiB, formula) per component, then the peak / reserved / device-used totals."""
    rows = [(component_label(c.name), gib(c.bytes), c.formula) for c in mem.components]
    rows.append(("peak allocated", gib(mem.peak_allocated_bytes), f"max_memory_allocated, at {mem.peak_phase}"))
    rows.append(("peak reserved", gib(mem.peak_reserved_bytes), "max_memory_reserved (caching allocator)"))
    rows.append(("device used", gib(mem.device_used_bytes), "nvidia-smi view: reserved + CUDA context"))
    if mem.host_bytes:
        rows.append(("host RAM", gib(mem.host_bytes), "offloaded state in CPU memory"))
    if mem.managed_bytes:
        rows.append(("managed", gib(mem.managed_bytes), "paged optimizer states (CUDA managed memory)"))
    return tuple(rows)


def seconds_text(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.3f} s"


def time_rows(time: TimeEstimate, grad_accum: int) -> tuple[tuple[str, str], ...]:
    rows = [
        ("step (one micro-batch)", seconds_text(time.step_seconds)),
        (f"optimizer step ({grad_accum} micro-batch{'es' if grad_accum > 1 else ''} + update)",
         seconds_text(time.optimizer_step_seconds)),
        ("tokens/s per GPU", f"{time.tokens_per_second:,.0f}"),
        ("tokens/s all GPUs", f"{time.tokens_per_second_total:,.0f}"),
        ("bound", time.bound),
    ]
    if time.mfu:
        rows.append(("MFU (6·N·tokens / peak)", f"{time.mfu * 100:.1f} %"))
    return tuple(rows)


def term_rows(time: TimeEstimate) -> tuple[tuple[str, str, str], ...]:
    return tuple((t.name, seconds_text(t.seconds), t.formula) for t in time.terms)


def total_text(est: Estimate) -> str | None:
    if est.total is None:
        return None
    t = est.total
    return (f"{t.tokens:,.0f} tokens ({est.plan.epochs:g} epoch{'s' if est.plan.epochs != 1 else ''}): "
            f"{t.hours:,.2f} h on {est.plan.n_gpus} × {est.gpu.name}, "
            f"${t.cost_usd:,.2f} at ${est.gpu.price_usd_per_hour:.2f}/GPU-hour")
