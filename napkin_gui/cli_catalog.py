"""`napkin catalog import|show|reset`: the user's GPU prices, imported from SkyPilot's catalog.

import reads a SkyPilot vms.csv the user downloaded (core/skypilot_catalog.py; no network),
keeps per card and region the cheapest on-demand and spot price per GPU, and stores them in the
user price file (core/user_prices.py), replacing that provider's earlier import; compare,
search, the app and the report then use them. show lists the price each card uses, with its
source and date; reset deletes the file (the shipped prices again).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

# SkyPilot keeps one catalog folder per cloud (~/.sky/catalogs/v5/<cloud>/vms.csv): a file in
# one of these folders names its provider
SKYPILOT_CLOUDS = ("aws", "azure", "cudo", "do", "fluidstack", "gcp", "hyperbolic", "ibm", "lambda", "nebius",
                   "oci", "paperspace", "runpod", "scp", "vast", "vsphere")


def add_catalog_parser(sub: argparse._SubParsersAction) -> None:
    """Register `napkin catalog ...` on cli.py's subcommands."""
    cat = sub.add_parser("catalog", help="import GPU prices from a SkyPilot catalog (vms.csv); show or reset them")
    actions = cat.add_subparsers(dest="catalog_action", parser_class=type(cat))
    imp = actions.add_parser("import", help="read a SkyPilot vms.csv into your price file")
    imp.add_argument("csv", metavar="vms.csv")
    imp.add_argument("--provider", help="the cloud the file is for (default: its folder name, e.g. aws)")
    imp.add_argument("--date", help="date of the prices, YYYY-MM-DD (default: the file's modification date)")
    imp.set_defaults(func=import_command)
    show = actions.add_parser("show", help="the price each card uses, with its source and date")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_command)
    reset = actions.add_parser("reset", help="delete your price file (use the shipped prices)")
    reset.set_defaults(func=reset_command)
    cat.set_defaults(func=lambda args: (cat.print_help(), 2)[1])


def _provider(args: argparse.Namespace) -> str:
    from .core.errors import PlanError
    from .core.user_prices import check_provider
    if args.provider:
        return check_provider(args.provider)
    folder = Path(args.csv).resolve().parent.name.lower()
    if folder in SKYPILOT_CLOUDS:
        return folder
    raise PlanError(f"provider: name the cloud with --provider (the file's folder {folder[:40]!r} is not one of "
                    f"SkyPilot's cloud folders: {', '.join(SKYPILOT_CLOUDS)})")


def _date(args: argparse.Namespace) -> str:
    from .core.user_prices import check_date
    if args.date:
        return check_date(args.date)
    try:
        stamp = os.stat(args.csv).st_mtime
    except OSError:
        stamp = datetime.datetime.now(datetime.timezone.utc).timestamp()
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d")


def import_command(args: argparse.Namespace) -> int:
    from .core.errors import PlanError
    from .core.files import shown_path
    from .core.skypilot_catalog import read_vms_csv
    from .core.user_prices import UserPrice, merged, read_user_prices, save_user_prices
    from .units import plural
    provider, date = _provider(args), _date(args)
    found = read_vms_csv(args.csv)
    source = f"SkyPilot catalog {Path(args.csv).name[:60]}"
    new = tuple(UserPrice(p.gpu, provider, p.region, p.usd_per_gpu_hour, p.spot_usd_per_gpu_hour, p.instance_type,
                          p.gpus_per_instance, date, source) for p in found.prices)
    unknown = ", ".join(f"{name[:40]} ({plural(n, 'row')})" for name, n in found.unknown_accelerators)
    if not new:
        raise PlanError(f"{shown_path(args.csv)}: no row prices a GPU napkin knows ({found.rows:,} rows"
                        + (f"; not in napkin's catalog: {unknown}" if unknown else "") + "); nothing imported")
    try:
        existing = read_user_prices()
        replaced = ""
    except PlanError as err:
        existing, replaced = (), f" (the old file could not be read and was replaced: {err})"
    path = save_user_prices(merged(existing, new, provider))
    cards = sorted({p.gpu for p in new})
    print(f"imported {len(new)} prices ({len(cards)} cards, {len({p.region for p in new})} regions) "
          f"from {provider}, dated {date}, into {path}{replaced}")
    if found.skipped:
        print("skipped rows: " + "; ".join(f"{reason} {n:,}" for reason, n in found.skipped))
    if unknown:
        print(f"skipped, not in napkin's catalog (not guessed): {unknown}")
    return 0


def price_rows() -> list[dict]:
    """Every catalog card's price in use, its source and date, and whether the user file set it."""
    from .core.gpu_catalog import gpu_catalog, shipped_gpu_catalog
    shipped = {g.id: g for g in shipped_gpu_catalog()}
    return [{"gpu": g.id, "usd_per_gpu_hour": g.price_usd_per_hour, "source": g.price_source, "date": g.price_date,
             "from": "shipped" if g is shipped[g.id] else "user"} for g in gpu_catalog()]


def show_command(args: argparse.Namespace) -> int:
    from .core.user_prices import prices_path, problems
    rows = price_rows()
    path = prices_path()
    problem = problems.get(str(path), "")
    if args.json:
        print(json.dumps({"price_file": str(path), "problem": problem or None, "prices": rows}, indent=2))
        return 0
    used = sum(r["from"] == "user" for r in rows)
    print(f"price file: {path} ({'not there' if not path.exists() else f'{used} cards priced from it'})")
    if problem:
        print(f"not used: {problem}")
    for r in rows:
        print(f"{r['gpu']:<24} ${r['usd_per_gpu_hour']:>7.2f}/GPU-h  {r['date']:<10} {r['from']:<7} {r['source']}")
    return 0


def reset_command(args: argparse.Namespace) -> int:
    from .core.gpu_catalog import reload_prices
    from .core.user_prices import prices_path
    path = prices_path()
    try:
        path.unlink()
    except FileNotFoundError:
        print(f"no price file at {path}: the shipped prices are in use")
        return 0
    reload_prices()
    print(f"deleted {path}: the shipped prices are in use")
    return 0
