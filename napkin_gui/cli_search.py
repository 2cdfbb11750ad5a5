"""`napkin search`: the best plans that train what a plan trains (core.search), as a table or
the plan-v1 JSON (shared/contracts/plan-v1.md, section `napkin search`).

Every figure printed is core.estimate's of the plan printed beside it (SearchEntry comes
from core.search.plan_entry), so `napkin estimate` of that plan shows the same numbers.
"""
from __future__ import annotations

import argparse
import json

from . import units
from .core.errors import PlanError

DEFAULT_TOP = 5


def add_search_parser(sub) -> None:
    """Register `napkin search` on the CLI's subparsers (called from cli.build_parser)."""
    from .core.search import DEFAULT_MAX_GPUS, OBJECTIVES
    p = sub.add_parser("search", help="the fastest / cheapest plans that train the same thing and fit")
    p.add_argument("plan", help="a *.napkin.json plan file")
    p.add_argument("--objective", default="fastest", help=f"{' or '.join(OBJECTIVES)} (default fastest)")
    p.add_argument("--gpus", default="all", metavar="all|ID[,ID...]", help="catalog cards to try (default all)")
    p.add_argument("--max-gpus", default=str(DEFAULT_MAX_GPUS), metavar="N",
                   help=f"at most N GPUs per plan (default {DEFAULT_MAX_GPUS})")
    p.add_argument("--top", default=str(DEFAULT_TOP), metavar="K", help=f"how many plans (default {DEFAULT_TOP})")
    p.add_argument("--allow", default="", metavar="method,seq_len",
                   help="also change the method (full / LoRA / QLoRA) and / or the sequence length "
                        "(keeping the tokens per optimizer step)")
    from .cli_common import add_calibrated_flag
    add_calibrated_flag(p)
    p.add_argument("--json", action="store_true", help="the plan-v1 search JSON")
    p.set_defaults(func=search_command)


def _positive_int(field: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise PlanError(f"{field}: must be an integer >= 1, got {text!r}")
    return value


def parse_gpus(text: str) -> tuple[str, ...] | None:
    """'all' -> None (every catalog card); 'a,b' -> the catalog ids; PlanError naming a bad one."""
    from .core.gpu_catalog import find_gpu
    if text.strip().lower() == "all":
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise PlanError("gpus: give 'all' or catalog ids separated by commas (napkin compare lists them)")
    out = []
    for name in names:
        try:
            out.append(find_gpu(name).id)
        except PlanError as err:
            raise PlanError(f"gpus: {err}") from None
    return tuple(dict.fromkeys(out))


def entry_dict(entry) -> dict:
    """The contract's ENTRY (plus usd_per_hour: all GPUs together)."""
    from .core.plan import plan_to_dict
    return {"plan": plan_to_dict(entry.plan), "fits": entry.fits, "step_seconds": entry.step_seconds,
            "tokens_per_second": entry.tokens_per_second, "hours": entry.hours, "cost_usd": entry.cost_usd,
            "device_used_bytes": entry.device_used_bytes, "capacity_bytes": entry.capacity_bytes,
            "changes": list(entry.changes), "usd_per_hour": entry.usd_per_hour}


def _setup(p) -> str:
    """The plan's free fields in one short cell: micro-batch x accumulation, checkpointing, ..."""
    parts = [f"{p.batch_size}×{p.grad_accum}", "ckpt" if p.grad_ckpt else "no ckpt", p.optimizer]
    if p.sharding != "none":
        parts.append(p.sharding)
    if p.offload != "none":
        parts.append(f"cpu-{p.offload.replace('optimizer', 'opt')}")
    if p.loss != "standard":
        parts.append(p.loss)
    if p.activation_offload:
        parts.append("act offload")
    if p.optimizer_in_backward:
        parts.append("opt in bwd")
    return " ".join(parts)


def format_search(result, plan, gpu_names: dict[str, str]) -> str:
    """The baseline and the results as a text table, each result's changes under it."""
    head = (f"{'#':>2} {'GPU':<28}{'n':>2} {'setup':<40} {'fits':<4} {'used/GPU':>9} {'of':>6} "
            f"{'tokens/s':>10} {'hours':>8} {'cost':>9}")
    from .core.names import algorithm_label, tokens_text   # the estimate's header words
    lines = [f"{plan.model} {plan.method}{algorithm_label(plan)} · global batch "
             f"{plan.batch_size * plan.grad_accum * plan.n_gpus} × {tokens_text(plan)} · objective "
             f"{result.objective} · {units.count(result.searched)} plans searched, "
             f"{units.count(result.priced)} fit", head, "-" * len(head)]

    def row(mark: str, e) -> str:
        p = e.plan
        return (f"{mark:>2} {gpu_names.get(p.gpu, p.gpu)[:28]:<28}{p.n_gpus:>2} {_setup(p)[:40]:<40} "
                f"{'yes' if e.fits else 'no':<4} {units.gib(e.device_used_bytes, 1):>10} {units.gib(e.capacity_bytes, 0):>7} "
                f"{units.count(e.tokens_per_second):>10} {units.hours(e.hours):>8} {units.usd(e.cost_usd):>9}")

    lines.append(row("=", result.baseline) + "   (your plan)")
    if not result.results:
        lines.append("   nothing in the space fits; try more GPUs (--max-gpus), other cards (--gpus) "
                     "or --allow method,seq_len")
    base = result.baseline
    for i, e in enumerate(result.results, start=1):
        lines.append(row(str(i), e))
        effect = []
        if base.tokens_per_second > 0:
            effect.append(f"{units.percent(e.tokens_per_second / base.tokens_per_second - 1, signed=True)} tokens/s")
        if e.cost_usd is not None and base.cost_usd:
            effect.append(f"{units.percent(e.cost_usd / base.cost_usd - 1, signed=True)} cost")
        changes = ", ".join(e.changes) if e.changes else "no change"
        lines.append(f"     {changes}" + (f"  ({', '.join(effect)})" if effect else ""))
    if plan.dataset_tokens <= 0:
        lines.append("set dataset_tokens in the plan for hours and cost (cheapest ranks by cost per token)")
    return "\n".join(lines + price_lines(result))


def price_lines(result) -> list[str]:
    """'price h100-80gb-sxm: $2.99/h per GPU, <source>, <date>' for each card shown."""
    from .core.gpu_catalog import find_gpu
    from .core.user_prices import price_citation
    cards = [find_gpu(g) for g in dict.fromkeys(e.plan.gpu for e in (result.baseline, *result.results))]
    return [f"price {g.id}: {units.usd_per_hour(g.price_usd_per_hour)} per GPU, "
            f"{price_citation(g.price_source, g.price_date)}" for g in cards]


def search_command(args: argparse.Namespace) -> int:
    """napkin search PLAN.json [--objective ...] [--gpus ...] [--max-gpus N] [--top K] [--allow ...] [--json]."""
    from .core.gpu_catalog import find_gpu, gpu_catalog
    from .core.plan import load_plan
    from .core.search import OBJECTIVES, search
    from .core.search_space import parse_allow
    objective = args.objective.strip().lower()
    if objective not in OBJECTIVES:
        raise PlanError(f"objective: {args.objective!r} is not allowed; use one of {', '.join(OBJECTIVES)}")
    gpus = parse_gpus(args.gpus)
    max_gpus = _positive_int("max-gpus", args.max_gpus)
    top = _positive_int("top", args.top)
    allow = parse_allow(args.allow)
    plan = load_plan(args.plan)
    from .cli_common import calibration_for
    calibration = calibration_for(args, plan)
    result = search(plan, objective, gpus=gpus, max_gpus=max_gpus, top=top, allow=allow, calibration=calibration)
    if args.json:
        print(json.dumps({"objective": result.objective, "baseline": entry_dict(result.baseline),
                          "results": [entry_dict(e) for e in result.results]}, indent=2))
    else:
        names = {g.id: g.name.removeprefix("NVIDIA ") for g in gpu_catalog()}
        names.setdefault(plan.gpu, find_gpu(plan.gpu).name.removeprefix("NVIDIA "))
        print(format_search(result, plan, names))
    return 0
