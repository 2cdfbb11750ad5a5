"""`napkin compare` and `napkin advise`: format what core.compare / core.advise return."""
from __future__ import annotations

import argparse
import dataclasses
import json

from .core.plan import load_plan, plan_to_dict
from .core.names import gpu_name, short_gpu_name, tokens_text, value_name
from .units import count, hours, seconds, to_gib, usd


def format_compare(rows, plan) -> str:
    """The comparison as a text table; rows that fit first, the cheapest / fastest marked."""
    head = (f"{'GPU':<34}{'n':>2} {'sharding':<8} {'fits':<4} {'GiB used':>9} {'of GiB':>7} "
            f"{'step':>8} {'tokens/s':>10} {'$/M tok':>8} {'time':>9} {'cost':>9} {'$/h':>7}  bound")
    lines = [head, "-" * len(head)]
    for r in rows:
        mark = " ".join(m for m, on in (("<- cheapest", r.cheapest), ("<- fastest", r.fastest)) if on)
        lines.append(
            f"{r.gpu_name[:34]:<34}{r.n_gpus:>2} {r.sharding:<8} {'yes' if r.fits else 'no':<4} "
            f"{to_gib(r.device_used_bytes):>9.1f} {to_gib(r.capacity_bytes):>7.1f} "
            f"{seconds(r.step_seconds):>8} {count(r.tokens_per_second):>10} {usd(r.usd_per_million_tokens):>8} "
            f"{hours(r.hours):>9} {usd(r.cost_usd):>9} {usd(r.price_usd_per_hour_total):>7}  {r.bound} {mark}".rstrip())
    fitting = sum(r.fits for r in rows)
    lines.append(f"{fitting} of {len(rows)} (card, count) fit · "
                 + ("time and cost for " + f"{count(plan.dataset_tokens * plan.epochs)} tokens"
                    if plan.dataset_tokens > 0 else "set dataset_tokens for hours and cost"))
    return "\n".join(lines + price_sources(rows))


def price_sources(rows) -> list[str]:
    """'prices: <source>, <date>: card, card, ...' for every source the rows' prices come from."""
    from .core.user_prices import price_citation
    cards: dict[str, list[str]] = {}
    for r in rows:
        names = cards.setdefault(price_citation(r.price_source, r.price_date), [])
        if r.gpu_id not in names:
            names.append(r.gpu_id)
    return [f"prices: {citation}: {', '.join(names)}" for citation, names in cards.items()]


def compare_command(args: argparse.Namespace) -> int:
    """napkin compare PLAN.json [--json] [--sort cost|time] [--calibrated]."""
    from .cli_common import calibration_for
    from .core.compare import compare_hardware, sorted_rows
    plan = load_plan(args.plan)
    rows = sorted_rows(compare_hardware(plan, calibration=calibration_for(args, plan)),
                       getattr(args, "sort", "cost") or "cost")
    if args.json:
        out = [{**dataclasses.asdict(r), "price_usd_per_hour_total": r.price_usd_per_hour_total} for r in rows]
        print(json.dumps(out, indent=2))
    else:
        print(format_compare(rows, plan))
    return 0


def _advice_dict(advice) -> dict:
    return {"title": advice.title, "reason": advice.reason, "fits_after": advice.fits_after,
            "memory_delta_bytes": advice.memory_delta_bytes,
            "time_delta_fraction": advice.time_delta_fraction,
            "cost_delta_fraction": advice.cost_delta_fraction, "changes": list(advice.changes),
            "plan": plan_to_dict(advice.plan)}


def format_advice(items, plan, fits: bool, summary: str) -> str:
    """The plan in one line with what fits its card (core.advise.fit_summary), then the items.
    When nothing fits the card, the header points at the items that would."""
    state = "fits" if fits else "does NOT fit"
    header = (f"{plan.model} {value_name('method', plan.method)} bs {plan.batch_size} × {tokens_text(plan)} on "
              f"{short_gpu_name(gpu_name(plan.gpu))} × {plan.n_gpus}: {state}; {summary}")
    if not fits:
        fixing = [str(i) for i, a in enumerate(items, start=1) if a.fits_after]
        header += (f"; what would fit: {'item' if len(fixing) == 1 else 'items'} {', '.join(fixing)}" if fixing else
                   "; nothing napkin tried fits (more GPUs with sharding, or a larger card)")
    lines = [header]
    if not items:
        lines.append("  nothing found that helps")
    for i, advice in enumerate(items, start=1):
        lines.append(f"{i:>2}. {advice.reason}")
    return "\n".join(lines)


def advise_command(args: argparse.Namespace) -> int:
    """napkin advise PLAN.json [--json] [--calibrated]."""
    from .cli_common import calibration_for
    from .core.advise import advise, fit_summary, largest_batch_that_fits
    from .core.estimate import estimate
    plan = load_plan(args.plan)
    calibration = calibration_for(args, plan)
    items = advise(plan, calibration=calibration)
    fits = estimate(plan, calibration=calibration).memory.fits
    summary = fit_summary(plan, calibration)
    if args.json:
        largest = largest_batch_that_fits(plan, calibration=calibration)
        print(json.dumps({"fits": fits, "largest_batch_that_fits": largest, "summary": summary,
                          "advice": [_advice_dict(a) for a in items]}, indent=2))
    else:
        print(format_advice(items, plan, fits, summary))
    return 0
