"""The report's hardware, best-plans and advice sections from core.compare, core.search and
core.advise, formatted as plain strings.

When the core rejects the plan for one of them, its section is a one-line note instead.
"""
from __future__ import annotations

from ..core.advise import advise
from ..core.compare import compare_hardware, sorted_rows
from ..core.errors import PlanError
from ..core.frontier import card_frontier
from ..core.plan import Plan
from ..core.search import OBJECTIVES, shared_search_table
from ..units import count, gib, hours, seconds, usd

TOP_ROWS = 4  # cheapest fitting rows, then this many fastest (duplicates dropped)
HARDWARE_HEADER = ("GPU", "count", "sharding", "used / GPU", "step", "tokens/s", "$ / M tokens",
                   "hours", "cost", "")


def hardware_table(plan: Plan, calibration=None) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str]:
    """(header, rows, note) of the cheapest and fastest setups that fit; no rows when core rejects the plan.
    calibration: the cards it was measured on are priced with its figures (core.compare_hardware)."""
    try:
        rows = compare_hardware(plan, calibration=calibration)
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
            f"{TOP_ROWS} cheapest cards per token, then the {TOP_ROWS} fastest, each at its best GPU count."
            + _price_note(picked))
    return HARDWARE_HEADER, tuple(_hardware_row(r) for r in picked), note


def _price_note(rows) -> str:
    """' Prices per GPU-hour: <source>, <date> (card, card); ...': where each shown price is from."""
    from ..core.user_prices import price_citation
    cards: dict[str, list[str]] = {}
    for r in rows:
        names = cards.setdefault(price_citation(r.price_source, r.price_date), [])
        if r.gpu_name not in names:
            names.append(r.gpu_name)
    return (" Prices per GPU-hour: " + "; ".join(f"{c} ({', '.join(n)})" for c, n in cards.items()) + ".") if cards else ""


def _hardware_row(row) -> tuple[str, ...]:
    tag = " / ".join(t for t, on in (("cheapest", row.cheapest), ("fastest", row.fastest)) if on)
    return (row.gpu_name, str(row.n_gpus), row.sharding, gib(row.device_used_bytes),
            seconds(row.step_seconds), count(row.tokens_per_second), usd(row.usd_per_million_tokens),
            hours(row.hours), usd(row.cost_usd), tag)


def advice_lines(plan: Plan, calibration=None) -> tuple[str, ...]:
    """core.advise's ranked changes (priced with calibration where given), one line each with its modelled effect."""
    try:
        items = advise(plan, calibration=calibration)
    except PlanError as err:
        return (f"Advice unavailable: {err}",)
    return tuple(a.reason for a in items)


BEST_PER_OBJECTIVE = 3   # distinct plans per objective in the "Best plans" section
BEST_HEADER = ("objective", "GPU", "count", "setup", "used / GPU", "tokens/s", "hours", "cost", "changes")


def best_plans(plan: Plan, calibration=None) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], str]:
    """(header, rows, note) of the search's best plans per objective (core.search: the plans
    that train what this one trains, each figure core.estimate's), and what fits the plan's
    own card (core.frontier); a one-line note when the core rejects the plan."""
    try:
        table = shared_search_table(plan, calibration=calibration)   # advice_lines' too
        rows = []
        for objective in OBJECTIVES:
            for r in table.distinct(table.ranked(objective, table.rows()))[:BEST_PER_OBJECTIVE]:
                rows.append(_best_row(objective, table.entry(int(r))))
        frontier = card_frontier(plan, plan.gpu, calibration)
        largest = frontier.largest_batch_size
        if frontier.longest_seq_len is None:   # GRPO never reads seq_len: its lengths are the completions
            lengths = (f"completions up to {count(frontier.longest_completion_len)} tokens at micro-batch "
                       f"{plan.batch_size}, up to {frontier.largest_num_generations} completions per prompt")
        else:
            lengths = f"sequences up to {count(frontier.longest_seq_len)} tokens at micro-batch {plan.batch_size}"
    except PlanError as err:
        return (), (), f"Plan search unavailable: {err}"
    from ..core.gpu_catalog import find_gpu
    card = f"{find_gpu(plan.gpu).name} × {plan.n_gpus}"
    on_card = (f"nothing fits {card} as planned, not even micro-batch 1" if largest == 0 else
               f"on {card} as planned: micro-batch up to {largest}, {lengths}")
    note = (f"{count(table.tried)} plans searched that train the same thing (same model, method, sequence length "
            f"and global batch {plan.batch_size * plan.grad_accum * plan.n_gpus} sequences; every card, 1 to 8 GPUs, "
            f"sharding, offload, checkpointing, micro-batch split, AdamW variant, loss kernel), "
            f"{count(len(table))} fit; {on_card}.")
    if not rows:
        note += " None of them fits."
    return BEST_HEADER, tuple(rows), note


def _best_row(objective: str, e) -> tuple[str, ...]:
    p = e.plan
    setup = [f"{p.batch_size} × {p.grad_accum}", "ckpt" if p.grad_ckpt else "no ckpt", p.optimizer]
    setup += [x for x in (p.sharding if p.sharding != "none" else "", f"offload {p.offload}" if p.offload != "none"
                          else "", p.loss if p.loss != "standard" else "",
                          "activation offload" if p.activation_offload else "") if x]
    from ..core.gpu_catalog import find_gpu
    return (objective, find_gpu(p.gpu).name, str(p.n_gpus), ", ".join(setup), gib(e.device_used_bytes),
            count(e.tokens_per_second), hours(e.hours), usd(e.cost_usd), "; ".join(e.changes) or "none")
