"""The user's price file: per-GPU prices imported from a provider's catalog, used over the shipped ones.

Stored as prices.json in napkin's config folder (core.calibration.config_dir:
$NAPKIN_CONFIG_DIR, else $XDG_CONFIG_HOME/napkin, else ~/.config/napkin), written atomically
by `napkin catalog import` (cli_catalog.py). One entry per (provider, region, card): on-demand
and spot USD per GPU-hour, the instance it is from, the date of the prices and their source.

core.gpu_catalog.gpu_catalog() gives every card the cheapest on-demand price the file holds for
it (any provider, any region), with price_source naming provider, region and instance and
price_date the prices' date; cards the file does not price keep the shipped price and source.
Without a file the shipped catalog is used as it is (the same objects). A file that cannot be
read leaves the shipped prices in use; `napkin catalog show` says why.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import PlanError
from .files import read_json_file, shown_path
from .gpu_spec import GpuSpec
from .text import shown

SCHEMA = "napkin-prices-v1"
MAX_PRICE_FILE_BYTES = 32_000_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class UserPrice:
    gpu: str                      # napkin catalog id
    provider: str                 # "aws", "gcp", ... (SkyPilot's cloud folder name)
    region: str
    usd_per_gpu_hour: float       # on demand
    spot_usd_per_gpu_hour: float | None
    instance_type: str
    gpus_per_instance: int
    date: str                     # YYYY-MM-DD of the prices
    source: str                   # what was imported, e.g. "SkyPilot catalog vms.csv"


def price_citation(source: str, date: str) -> str:
    """'aws us-east-1 on-demand, p5.48xlarge / 8 GPUs (SkyPilot catalog vms.csv), 2026-12-01': where a
    price is from and when, as every price shown cites it."""
    return ", ".join(t for t in (source or "source unknown", date) if t)


def prices_path() -> Path:
    from .calibration import config_dir
    return config_dir() / "prices.json"


def price_label(price: UserPrice) -> str:
    """'aws us-east-1 on-demand, p5.48xlarge / 8 GPUs (SkyPilot catalog vms.csv)': the card's price_source."""
    per = f" / {price.gpus_per_instance} GPUs" if price.gpus_per_instance > 1 else ""
    return f"{price.provider} {price.region} on-demand, {price.instance_type}{per} ({price.source})"


def check_provider(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlanError(f"provider: must be letters, digits, '.', '_' or '-' (at most 64), got {shown(name, 40)}")
    return name.lower()


def check_date(text: str) -> str:
    if not isinstance(text, str) or not _DATE.match(text):
        raise PlanError(f"date: must be YYYY-MM-DD, got {shown(text, 40)}")
    return text


def _entry(d: object, where: str) -> UserPrice:
    if not isinstance(d, dict):
        raise PlanError(f"{where}: must be an object")
    fields = {f.name for f in dataclasses.fields(UserPrice)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise PlanError(f"{where}: unknown field {shown(unknown[0], 40)}")
    missing = sorted(fields - set(d) - {"spot_usd_per_gpu_hour"})
    if missing:
        raise PlanError(f"{where}: {missing[0]}: missing")
    for name in ("gpu", "provider", "region", "instance_type", "date", "source"):
        if not isinstance(d[name], str) or not d[name] or len(d[name]) > 200:
            raise PlanError(f"{where}: {name}: must be a non-empty string of at most 200 characters")
    check_date(d["date"])
    for name in ("usd_per_gpu_hour", "spot_usd_per_gpu_hour"):
        value = d.get(name)
        if value is None and name == "spot_usd_per_gpu_hour":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise PlanError(f"{where}: {name}: must be a positive number, got {shown(value, 40)}")
    n = d["gpus_per_instance"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
        raise PlanError(f"{where}: gpus_per_instance: must be an integer from 1 to 1024, got {shown(n, 40)}")
    return UserPrice(**{**d, "spot_usd_per_gpu_hour": d.get("spot_usd_per_gpu_hour")})


def read_user_prices(path: Path | None = None) -> tuple[UserPrice, ...]:
    """The file's entries; () when there is no file; PlanError naming what is wrong."""
    path = prices_path() if path is None else path
    if not path.exists():
        return ()
    data = read_json_file(path, "prices", MAX_PRICE_FILE_BYTES)
    where = shown_path(path)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("prices"), list):
        raise PlanError(f"{where}: not a {SCHEMA} price file (re-run napkin catalog import)")
    return tuple(_entry(d, f"{where}: prices[{i}]") for i, d in enumerate(data["prices"]))


def save_user_prices(prices: tuple[UserPrice, ...], path: Path | None = None) -> Path:
    """Write the file atomically and make gpu_catalog() use it from now on."""
    from .atomic import write_text_atomic
    from .gpu_catalog import reload_prices
    path = prices_path() if path is None else path
    body = {"schema": SCHEMA, "prices": [dataclasses.asdict(p) for p in prices]}
    write_text_atomic(path, json.dumps(body, indent=1) + "\n")
    reload_prices()
    return path


def merged(existing: tuple[UserPrice, ...], new: tuple[UserPrice, ...], provider: str) -> tuple[UserPrice, ...]:
    """The new provider's entries in place of its old ones; other providers' kept."""
    kept = tuple(p for p in existing if p.provider != provider)
    return tuple(sorted(kept + new, key=lambda p: (p.gpu, p.provider, p.region)))


def cheapest_by_gpu(prices: tuple[UserPrice, ...]) -> dict[str, UserPrice]:
    """Each card's cheapest on-demand entry (ties: provider, region order)."""
    out: dict[str, UserPrice] = {}
    for p in sorted(prices, key=lambda p: (p.usd_per_gpu_hour, p.provider, p.region)):
        out.setdefault(p.gpu, p)
    return out


def with_user_prices(cards: tuple[GpuSpec, ...], prices: tuple[UserPrice, ...]) -> tuple[GpuSpec, ...]:
    """cards with the file's cheapest on-demand price, its source and date, where it has one."""
    best = cheapest_by_gpu(prices)
    if not any(g.id in best for g in cards):
        return cards
    return tuple(dataclasses.replace(g, price_usd_per_hour=best[g.id].usd_per_gpu_hour,
                                     price_source=price_label(best[g.id]), price_date=best[g.id].date)
                 if g.id in best else g for g in cards)


# why the file at a path could not be used (napkin catalog show prints it)
problems: dict[str, str] = {}


def catalog_with_user_prices(cards: tuple[GpuSpec, ...], path: Path) -> tuple[GpuSpec, ...]:
    """gpu_catalog()'s cards: with the file's prices, or as shipped when it is absent or unusable."""
    try:
        prices = read_user_prices(path)
    except (PlanError, OSError) as err:
        problems[str(path)] = str(err)
        return cards
    problems.pop(str(path), None)
    return with_user_prices(cards, prices)
