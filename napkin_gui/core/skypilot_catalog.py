"""SkyPilot's vms.csv (catalog schema v5) read into per-GPU prices by region.

Format: skypilot-org/skypilot-catalog README.md, "Schema V5 / vms.csv": one row per instance
type and zone, columns InstanceType, AcceleratorName, AcceleratorCount, vCPUs, MemoryGiB,
GPUInfo, Region, AvailabilityZone, Price, SpotPrice (USD per hour of the whole instance). The
user downloads the file (no network here); columns are found by header name, in any order.

Per (accelerator, region) the cheapest instance's price divided by its GPU count is kept, on
demand and spot (each its own minimum). Rows skipped, never guessed: no accelerator (CPU
instances), an accelerator SKYPILOT_GPU_IDS does not map, a fractional GPU share
(AcceleratorCount < 1 or not whole: a slice of one card), no instance type (GCP lists attachable
GPUs alone, priced without the host VM) or no on-demand price. A value that is there but
wrong (negative, NaN, not a number) is an error naming its row and column.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

from .errors import PlanError
from .files import UnreadableFileError, read_regular_bytes, shown_path
from .text import bare, shown

COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "SpotPrice",
           "Region", "AvailabilityZone")
# SkyPilot's AWS catalog is ~10 MB; no provider's is near this
MAX_CSV_BYTES = 256_000_000
MAX_FIELD_CHARS = 4096

# SkyPilot accelerator name -> napkin catalog id (resources/gpus.json). Names: SkyPilot
# sky/utils/gpu_names.py CANONICAL_GPU_NAMES and its cloud catalogs; the card behind a name
# is the one the clouds' instances carry. Anything else is skipped and listed.
SKYPILOT_GPU_IDS: dict[str, str] = {
    "A100": "a100-40gb-sxm",          # AWS p4d, GCP a2-highgpu, Azure ND A100 v4: SXM4 40 GB
    "A100-80GB": "a100-80gb-sxm",     # AWS p4de, GCP a2-ultragpu, Azure NDm A100 v4: SXM4 80 GB
    "H100": "h100-80gb-sxm",          # AWS p5, GCP a3-highgpu, Azure ND H100 v5: SXM5 80 GB
    "H100-80GB": "h100-80gb-sxm",
    "H100-MEGA": "h100-80gb-sxm",     # GCP a3-megagpu-8g: the same SXM5 card, more NICs
    "H200": "h200-141gb-sxm",
    "GH200": "gh200-96gb",
    "B200": "b200-180gb",
    "L4": "l4",
    "L40": "l40",
    "L40S": "l40s",
    "A10": "a10",
    "A10G": "a10g",
    "T4": "t4",
    "V100": "v100-16gb-sxm2",         # AWS p3, GCP n1 + V100: SXM2 16 GB
    "V100-32GB": "v100-32gb-sxm2",    # AWS p3dn: SXM2 32 GB
    "A4000": "rtx-a4000",
    "A5000": "rtx-a5000",
    "A6000": "rtx-a6000",
    "RTX6000-Ada": "rtx-6000-ada",
    "RTXPRO6000": "rtx-pro-6000-blackwell",
    "RTX3090": "rtx-3090",
    "RTX4090": "rtx-4090",
    "RTX5090": "rtx-5090",
    "MI250X": "mi250x",
    "MI300X": "mi300x",
    "MI325X": "mi325x",
}
_BY_LOWER = {name.lower(): gpu_id for name, gpu_id in SKYPILOT_GPU_IDS.items()}


@dataclass(frozen=True, slots=True)
class RegionPrice:
    """The cheapest per-GPU price of one card in one region of the file."""

    gpu: str                      # napkin catalog id
    accelerator: str              # as SkyPilot names it
    region: str
    usd_per_gpu_hour: float       # on demand
    instance_type: str            # the instance that price is from
    gpus_per_instance: int
    spot_usd_per_gpu_hour: float | None = None


@dataclass(frozen=True, slots=True)
class CatalogRead:
    prices: tuple[RegionPrice, ...]
    rows: int
    skipped: tuple[tuple[str, int], ...]            # (reason, rows)
    unknown_accelerators: tuple[tuple[str, int], ...]   # (SkyPilot name, rows)


def _number(row: dict[str, str], column: str, line: int, where: str, required: bool) -> float | None:
    """The cell as a finite number >= 0 (> 0 for prices); None when empty and allowed."""
    text = (row.get(column) or "").strip()
    if not text:
        if required:
            raise PlanError(f"{where}: row {line}: {column}: missing")
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    price = column in ("Price", "SpotPrice")
    if not math.isfinite(value) or value < 0 or (price and value == 0):
        need = "a positive number of USD per hour" if price else "a finite number >= 0"
        raise PlanError(f"{where}: row {line}: {column}: must be {need}, got {shown(text, 40)}")
    return value


def _decoded(path: str | os.PathLike[str], where: str) -> str:
    try:
        data = read_regular_bytes(path, MAX_CSV_BYTES)
    except UnreadableFileError as err:
        raise PlanError(f"{where}: cannot read: {err.strerror or err}") from None
    except OSError as err:
        raise PlanError(f"{where}: cannot read: {err.strerror or err}") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise PlanError(f"{where}: binary data (a NUL byte at offset {nul:,}), not a CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PlanError(f"{where}: not UTF-8 text (bad byte at offset {err.start:,})") from None


def read_vms_csv(path: str | os.PathLike[str]) -> CatalogRead:
    """Per-GPU prices by card and region from a SkyPilot vms.csv; PlanError naming row and column."""
    where = shown_path(path)
    text = _decoded(path, where)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as err:
        raise PlanError(f"{where}: row 1: not a CSV header ({err})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        have = ", ".join(bare(h, 30) for h in header[:12]) or "nothing"
        raise PlanError(f"{where}: missing column {missing[0]!r} (SkyPilot vms.csv has {', '.join(COLUMNS)}; "
                        f"this header has {have})")
    best: dict[tuple[str, str], RegionPrice] = {}
    spot: dict[tuple[str, str], float] = {}
    skipped: dict[str, int] = {}
    unknown: dict[str, int] = {}
    rows = 0
    try:
        for row in reader:
            rows += 1
            _take_row(row, reader.line_num, where, best, spot, skipped, unknown)
    except csv.Error as err:
        raise PlanError(f"{where}: row {reader.line_num}: not valid CSV ({err})") from None
    prices = tuple(RegionPrice(p.gpu, p.accelerator, p.region, p.usd_per_gpu_hour, p.instance_type,
                               p.gpus_per_instance, spot.get(key)) for key, p in sorted(best.items()))
    return CatalogRead(prices, rows, tuple(sorted(skipped.items())), tuple(sorted(unknown.items())))


def _take_row(row: dict, line: int, where: str, best: dict, spot: dict, skipped: dict, unknown: dict) -> None:
    """Check one row and keep its per-GPU prices if they are the region's cheapest."""
    if None in row or any(v is None for v in row.values()):
        raise PlanError(f"{where}: row {line}: has {'more' if None in row else 'fewer'} cells than the header")
    for column in COLUMNS:
        if len(row[column]) > MAX_FIELD_CHARS:
            raise PlanError(f"{where}: row {line}: {column}: longer than {MAX_FIELD_CHARS} characters")
    name = row["AcceleratorName"].strip()
    count = _number(row, "AcceleratorCount", line, where, required=bool(name))
    for column in ("vCPUs", "MemoryGiB"):
        _number(row, column, line, where, required=False)
    price = _number(row, "Price", line, where, required=False)
    spot_price = _number(row, "SpotPrice", line, where, required=False)
    region = row["Region"].strip()
    reason = None
    if not name:
        reason = "no accelerator (CPU instance)"
    elif name.lower() not in _BY_LOWER:
        unknown[name] = unknown.get(name, 0) + 1
        return
    elif count is None or count < 1 or count != int(count):
        reason = "fractional GPU share"
    elif not row["InstanceType"].strip():
        reason = "no instance type (GPU priced without its host VM)"
    elif price is None:
        reason = "no on-demand price"
    elif not region:
        raise PlanError(f"{where}: row {line}: Region: missing")
    if reason:
        skipped[reason] = skipped.get(reason, 0) + 1
        return
    n = int(count)
    key = (_BY_LOWER[name.lower()], region)
    per_gpu = price / n
    if key not in best or per_gpu < best[key].usd_per_gpu_hour:
        best[key] = RegionPrice(key[0], name, region, per_gpu, row["InstanceType"].strip(), n)
    if spot_price is not None and (key not in spot or spot_price / n < spot[key]):
        spot[key] = spot_price / n
