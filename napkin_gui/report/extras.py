"""Optional report sections from core.compare and core.advise, formatted as plain strings.

Both modules are imported lazily: when one is missing (or fails on this plan) its section
is left out of the report instead of failing it.
"""
from __future__ import annotations

from ..core.errors import PlanError
from ..core.plan import Plan
from .text import gib

TOP_ROWS = 8


def hardware_table(plan: Plan) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str]:
    """(header, rows, note) of the cheapest and fastest setups that fit; empty when unavailable."""
    try:
        from ..core.compare import compare_hardware
    except ImportError:
        return (), (), ""
    try:
        rows = compare_hardware(plan)
    except PlanError as err:
        return (), (), f"hardware comparison unavailable: {err}"
    fitting = [r for r in rows if getattr(r, "fits", True)]
    by_cost = sorted((r for r in fitting if _cost(r) is not None), key=_cost)
    by_time = sorted(fitting, key=lambda r: _hours_or_step(r))
    picked = []
    for r in by_cost[:TOP_ROWS // 2] + by_time[:TOP_ROWS // 2] + by_time[TOP_ROWS // 2:]:
        if r not in picked and len(picked) < TOP_ROWS:
            picked.append(r)
    header = ("GPU", "count", "device used", "step", "tokens/s", "hours", "cost", "")
    out = tuple(_row(r, r is (by_cost[0] if by_cost else None), r is (by_time[0] if by_time else None))
                for r in picked)
    note = f"{len(fitting)} of {len(rows)} setups fit" if rows else ""
    return header, out, note


def _cost(row) -> float | None:
    total = _total(row)
    return getattr(total, "cost_usd", None) if total is not None else getattr(row, "cost_usd", None)


def _total(row):
    est = getattr(row, "estimate", None)
    return getattr(row, "total", None) or (getattr(est, "total", None) if est is not None else None)


def _hours_or_step(row) -> float:
    total = _total(row)
    if total is not None and getattr(total, "hours", None) is not None:
        return total.hours
    est = getattr(row, "estimate", None)
    tps = getattr(row, "tokens_per_second_total", None) or getattr(getattr(est, "time", None), "tokens_per_second_total", 0)
    return 1 / tps if tps else float("inf")


def _row(row, cheapest: bool, fastest: bool) -> tuple[str, ...]:
    est = getattr(row, "estimate", None)
    gpu = getattr(row, "gpu", None) or getattr(est, "gpu", None)
    name = getattr(gpu, "name", None) or str(getattr(row, "gpu_name", gpu))
    n = getattr(row, "n_gpus", None) or getattr(getattr(est, "plan", None), "n_gpus", 1)
    used = getattr(row, "device_used_bytes", None) or getattr(getattr(est, "memory", None), "device_used_bytes", 0)
    time = getattr(est, "time", None)
    step = getattr(row, "step_seconds", None) or getattr(time, "step_seconds", 0.0)
    tps = getattr(row, "tokens_per_second_total", None) or getattr(time, "tokens_per_second_total", 0.0)
    total = _total(row)
    hours = f"{total.hours:,.1f}" if total is not None else "–"
    cost = f"${total.cost_usd:,.0f}" if total is not None else "–"
    tag = " / ".join(t for t, on in (("cheapest", cheapest), ("fastest", fastest)) if on)
    return (str(name), str(n), gib(used), f"{step * 1e3:.0f} ms", f"{tps:,.0f}", hours, cost, tag)


def advice_lines(plan: Plan) -> tuple[str, ...]:
    """One line per piece of advice, best first; () when core.advise is missing."""
    try:
        from ..core.advise import advise
    except ImportError:
        return ()
    try:
        items = advise(plan)
    except PlanError as err:
        return (f"advice unavailable: {err}",)
    return tuple(_advice_text(a) for a in items)


def _advice_text(item) -> str:
    for attr in ("text", "summary", "title", "message", "description"):
        value = getattr(item, attr, None)
        if isinstance(value, str) and value:
            return value
    return str(item)
