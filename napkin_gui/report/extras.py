"""Optional report sections from core.compare and core.advise, formatted as plain strings.

Both modules are imported lazily: when one is missing (or fails on this plan) its section
is left out of the report instead of failing it.
"""
from __future__ import annotations

from ..core.errors import PlanError
from ..core.plan import Plan
from ..units import count, gib, hours, seconds, usd

TOP_ROWS = 4  # cheapest fitting rows, then this many fastest (duplicates dropped)
HARDWARE_HEADER = ("GPU", "count", "sharding", "used / GPU", "step", "tokens/s", "$ / M tokens",
                   "hours", "cost", "")


def hardware_table(plan: Plan) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str]:
    """(header, rows, note) of the cheapest and fastest setups that fit; empty when unavailable."""
    try:
        from ..core.compare import compare_hardware, sorted_rows
    except ImportError:
        return (), (), ""
    try:
        rows = compare_hardware(plan)
    except PlanError as err:
        return (), (), f"Hardware comparison unavailable: {err}"
    fitting = [r for r in rows if r.fits]
    picked = []
    for order in ("cost", "time"):
        cards: set[str] = set()
        for r in sorted_rows(fitting, order):  # best count of each card, TOP_ROWS cards
            if r.gpu_id not in cards and len(cards) < TOP_ROWS:
                cards.add(r.gpu_id)
                if r not in picked:
                    picked.append(r)
    note = (f"{len(fitting)} of {len(rows)} catalog setups (each card × 1, 2, 4, 8) fit; shown: the "
            f"{TOP_ROWS} cheapest cards per token, then the {TOP_ROWS} fastest, each at its best GPU count.")
    return HARDWARE_HEADER, tuple(_hardware_row(r) for r in picked), note


def _hardware_row(row) -> tuple[str, ...]:
    tag = " / ".join(t for t, on in (("cheapest", row.cheapest), ("fastest", row.fastest)) if on)
    return (row.gpu_name, str(row.n_gpus), row.sharding, gib(row.device_used_bytes),
            seconds(row.step_seconds), count(row.tokens_per_second), usd(row.usd_per_million_tokens),
            hours(row.hours), usd(row.cost_usd), tag)


def advice_lines(plan: Plan) -> tuple[str, ...]:
    """core.advise's ranked changes, one line each with its modelled effect; () when missing."""
    try:
        from ..core.advise import advise
    except ImportError:
        return ()
    try:
        items = advise(plan)
    except PlanError as err:
        return (f"Advice unavailable: {err}",)
    return tuple(a.reason for a in items)
