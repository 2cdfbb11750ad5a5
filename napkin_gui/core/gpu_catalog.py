"""The GPU catalog: resources/gpus.json read, checked and turned into GpuSpecs; name lookup.

The JSON is data (one object per card, units in the field names: memory_mib, bf16_tflops,
price_usd_per_hour, ...); this module validates it once when it is first read and converts
MiB to bytes. Look a card up by catalog id, by the display name, or by the exact string
NVML's nvmlDeviceGetName returns ("NVIDIA H100 80GB HBM3"), case-insensitively.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import json
import os
import re
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import PlanError
from .text import shown
from .gpu_spec import MIB, GpuSpec

SCHEMA = 1
ARCHITECTURES = ("volta", "turing", "ampere", "ada", "hopper", "blackwell", "cdna2", "cdna3")
INTERCONNECTS = ("none", "pcie", "nvlink2", "nvlink3", "nvlink4", "nvlink4-bridge", "nvlink5",
                 "infinity-fabric")
_HOST_LINK = re.compile(r"^(pcie[3-6]x(1|2|4|8|16)|nvlink-c2c)$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
# Prefixes NVML names carry on some drivers and not on others ("GeForce RTX 3090" on 460.x).
_PREFIXES = ("nvidia ", "tesla ", "amd ")
# Brand words people leave out ("RTX 4090" for "NVIDIA GeForce RTX 4090"), dropped after a vendor prefix.
_BRANDS = ("geforce ",)
# The closest-match search looks at this many typed characters at most.
MATCH_CHARS = 64

# field -> (kind, must be > 0); "num" accepts int or float, never bool.
_REQUIRED: dict[str, tuple[str, bool]] = {
    "id": ("str", True), "name": ("str", True), "vendor": ("str", True),
    "architecture": ("str", True), "memory_mib": ("num", True),
    "bf16_tflops": ("num", True), "fp16_tflops": ("num", True), "fp32_tflops": ("num", True),
    "tf32_tflops": ("num", True), "int8_tops": ("num", True),
    "memory_bandwidth_gbps": ("num", True), "host_link": ("str", True),
    "host_bandwidth_gbps": ("num", True), "interconnect": ("str", True),
    "interconnect_gbps": ("num", True), "price_usd_per_hour": ("num", True),
    "price_source": ("str", True), "price_date": ("str", True), "nvml_names": ("list", True),
    "cuda_context_mib": ("num", True), "cublas_workspace_mib": ("num", True),
}
_OPTIONAL: dict[str, tuple[str, bool]] = {
    "compute_capability": ("str", False), "sms": ("int", False), "form_factor": ("str", False),
    "memory_type": ("str", False), "nvml_total_mib": ("num", True), "memory_source": ("str", False),
    "fp8_tflops": ("num", False), "notes": ("str", False),
}


def _catalog_text() -> str:
    """gpus.json from the installed package napkin_gui.resources, else from the checkout."""
    try:
        return importlib.resources.files("napkin_gui.resources").joinpath("gpus.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).parents[2] / "resources" / "gpus.json").read_text("utf-8")


def gpu_catalog() -> tuple[GpuSpec, ...]:
    """Every card of resources/gpus.json, in file order, validated; priced from the user's price
    file where it has a price for the card (core/user_prices.py), else as shipped."""
    return _priced_catalog(_prices_key())


def _prices_key() -> tuple[str, str, str]:
    """What the user price file's path depends on (core.calibration.config_dir): a cheap key,
    read on every lookup, so that a test's or a user's own config folder is followed."""
    env = os.environ
    return env.get("NAPKIN_CONFIG_DIR", ""), env.get("XDG_CONFIG_HOME", ""), env.get("HOME", "")


@lru_cache(maxsize=8)
def _priced_catalog(_key: tuple[str, str, str]) -> tuple[GpuSpec, ...]:
    from .user_prices import catalog_with_user_prices, prices_path
    return catalog_with_user_prices(shipped_gpu_catalog(), prices_path())


def reload_prices() -> None:
    """Read the user price file again at the next lookup (after napkin catalog import)."""
    _priced_catalog.cache_clear()
    _index_for.cache_clear()


@lru_cache(maxsize=1)
def shipped_gpu_catalog() -> tuple[GpuSpec, ...]:
    """Every card of resources/gpus.json, in file order, validated, with the shipped prices."""
    try:
        data = json.loads(_catalog_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PlanError(f"gpus.json: cannot read the GPU catalog: {err}") from None
    return parse_gpu_catalog(data)


def parse_gpu_catalog(data: Any, source: str = "gpus.json") -> tuple[GpuSpec, ...]:
    """GpuSpecs from the decoded catalog JSON; a bad entry raises PlanError naming entry and field."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise PlanError(f"{source}: must be an object with \"schema\": {SCHEMA}")
    extra = sorted(set(data) - {"schema", "units", "gpus"})
    if extra:
        raise PlanError(f"{source}: unknown top-level field {extra[0]!r}")
    entries = data.get("gpus")
    if not isinstance(entries, list) or not entries:
        raise PlanError(f"{source}: \"gpus\" must be a non-empty list")
    specs = tuple(_entry_spec(entry, f"{source}: gpus[{i}]") for i, entry in enumerate(entries))
    ids = [spec.id for spec in specs]
    for i, gpu_id in enumerate(ids):
        if gpu_id in ids[:i]:
            raise PlanError(f"{source}: gpus[{i}] ({gpu_id}): id: already used by gpus[{ids.index(gpu_id)}]")
    _lookup_index(specs, source)  # raises when two cards share a name
    return specs


def _entry_spec(entry: Any, where: str) -> GpuSpec:
    """One validated catalog entry as a GpuSpec (MiB -> bytes)."""
    if not isinstance(entry, dict):
        raise PlanError(f"{where}: must be an object")
    if isinstance(entry.get("id"), str):
        where = f"{where} ({entry['id']})"
    for field in sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL)):
        raise PlanError(f"{where}: unknown field {field!r}")
    for field, (kind, positive) in _REQUIRED.items():
        if field not in entry:
            raise PlanError(f"{where}: {field}: missing")
        _check_value(entry[field], kind, positive, f"{where}: {field}")
    for field, (kind, positive) in _OPTIONAL.items():
        if field in entry:
            _check_value(entry[field], kind, positive, f"{where}: {field}")
    _check_entry_rules(entry, where)
    mib = lambda field: int(round(entry[field] * MIB))  # noqa: E731
    return GpuSpec(
        id=entry["id"], name=entry["name"], vendor=entry["vendor"],
        architecture=entry["architecture"], memory_bytes=mib("memory_mib"),
        bf16_tflops=float(entry["bf16_tflops"]), fp16_tflops=float(entry["fp16_tflops"]),
        fp32_tflops=float(entry["fp32_tflops"]), tf32_tflops=float(entry["tf32_tflops"]),
        int8_tops=float(entry["int8_tops"]),
        memory_bandwidth_gbps=float(entry["memory_bandwidth_gbps"]),
        host_link=entry["host_link"], host_bandwidth_gbps=float(entry["host_bandwidth_gbps"]),
        interconnect=entry["interconnect"], interconnect_gbps=float(entry["interconnect_gbps"]),
        price_usd_per_hour=float(entry["price_usd_per_hour"]),
        price_source=entry["price_source"], price_date=entry["price_date"],
        nvml_names=tuple(entry["nvml_names"]),
        cuda_context_bytes=mib("cuda_context_mib"), cublas_workspace_bytes=mib("cublas_workspace_mib"),
        form_factor=entry.get("form_factor", ""), notes=entry.get("notes", ""),
        compute_capability=entry.get("compute_capability", ""), sms=entry.get("sms", 0),
        fp8_tflops=float(entry.get("fp8_tflops", 0.0)), memory_type=entry.get("memory_type", ""),
        nvml_memory_bytes=mib("nvml_total_mib") if "nvml_total_mib" in entry else 0,
    )


def _check_value(value: Any, kind: str, positive: bool, where: str) -> None:
    """Type (and sign) of one field; raises a one-line PlanError."""
    if kind == "str":
        if not isinstance(value, str) or (positive and not value.strip()):
            raise PlanError(f"{where}: must be a non-empty string, got {value!r}")
        return
    if kind == "list":
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v.strip() for v in value)):
            raise PlanError(f"{where}: must be a non-empty list of strings, got {value!r}")
        return
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        is_num = is_num and isinstance(value, int)
    if not is_num or value != value or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise PlanError(f"{where}: must be {need} {'integer' if kind == 'int' else 'number'}, got {value!r}")


def _check_entry_rules(entry: dict[str, Any], where: str) -> None:
    """Allowed words, formats and plausible ranges of one entry."""
    if not _ID.match(entry["id"]):
        raise PlanError(f"{where}: id: must be lowercase letters, digits and '-', got {entry['id']!r}")
    if entry["architecture"] not in ARCHITECTURES:
        raise PlanError(f"{where}: architecture: must be one of {', '.join(ARCHITECTURES)}, "
                        f"got {entry['architecture']!r}")
    if entry["interconnect"] not in INTERCONNECTS:
        raise PlanError(f"{where}: interconnect: must be one of {', '.join(INTERCONNECTS)}, "
                        f"got {entry['interconnect']!r}")
    if not _HOST_LINK.match(entry["host_link"]):
        raise PlanError(f"{where}: host_link: must look like 'pcie4x16' or 'nvlink-c2c', got {entry['host_link']!r}")
    if not _DATE.match(entry["price_date"]):
        raise PlanError(f"{where}: price_date: must be YYYY-MM or YYYY-MM-DD, got {entry['price_date']!r}")
    if not 1024 <= entry["memory_mib"] <= 2**20:
        raise PlanError(f"{where}: memory_mib: must be between 1024 (1 GiB) and 1048576 (1 TiB), "
                        f"got {entry['memory_mib']!r}")
    if entry.get("nvml_total_mib", entry["memory_mib"]) < entry["memory_mib"]:
        raise PlanError(f"{where}: nvml_total_mib: must be >= memory_mib (NVML counts the driver "
                        f"reserve on top of the CUDA-visible total)")


def _normal(text: str) -> str:
    """Lower case, single spaces."""
    return " ".join(text.lower().split())


def _aliases(text: str) -> set[str]:
    """The normalized text, and the same without a vendor prefix ("nvidia ", "tesla ", "amd ")."""
    key = _normal(text)
    keys = {key}
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            keys.add(key[len(prefix):])
    for brand in _BRANDS:
        keys |= {k[len(brand):] for k in keys if k.startswith(brand)}
    return keys


def _lookup_index(specs: tuple[GpuSpec, ...], source: str = "gpus.json") -> dict[str, GpuSpec]:
    """Every accepted spelling -> its card; two cards sharing a spelling is a catalog error."""
    index: dict[str, GpuSpec] = {}
    for spec in specs:
        for text in (spec.id, spec.name, *spec.nvml_names):
            for key in _aliases(text):
                other = index.setdefault(key, spec)
                if other.id != spec.id:
                    raise PlanError(f"{source}: {spec.id} and {other.id} share the name {key!r}")
    return index


def _catalog_index() -> dict[str, GpuSpec]:
    return _index_for(_prices_key())


@lru_cache(maxsize=8)
def _index_for(key: tuple[str, str, str]) -> dict[str, GpuSpec]:
    return _lookup_index(_priced_catalog(key))


def lookup_gpu(name: str) -> GpuSpec | None:
    """The catalog card for an id, display name or NVML name (any case); None if unknown."""
    index = _catalog_index()
    for key in sorted(_aliases(name), key=len, reverse=True):
        if key in index:
            return index[key]
    return None


def find_gpu(name: str) -> GpuSpec:
    """The catalog card for an id, display name or NVML name; PlanError naming the closest ids."""
    spec = lookup_gpu(name) if isinstance(name, str) else None
    if spec is not None:
        return spec
    return _raise_unknown(name)


def _raise_unknown(name: Any) -> GpuSpec:
    """Raise the one-line 'unknown GPU' error with the three closest ids (difflib ratio)."""
    index = _catalog_index()
    query = _normal(name[:MATCH_CHARS]) if isinstance(name, str) else ""  # difflib is quadratic in length
    ranked = difflib.get_close_matches(query, list(index), n=len(index), cutoff=0.0)
    ranked.sort(key=lambda key: query not in key)  # stable: spellings containing the query first
    closest: list[str] = []
    for key in ranked:
        if index[key].id not in closest:
            closest.append(index[key].id)
    raise PlanError(f"gpu: unknown GPU {shown(name)}; closest: {', '.join(closest[:3])}")


def cublas_workspace_bytes_for(compute_capability: str) -> int:
    """cuBLAS workspaces of a training step (2 handles: forward + autograd thread) by architecture.

    torch aten/src/ATen/cuda/CublasHandlePool.cpp, parseChosenWorkspaceSize: 32 MiB per handle
    on compute capability 9.x/10.x/12.x (Hopper, Blackwell), else 4096 KiB x 2 + 16 KiB x 8;
    on ROCm 128 MiB (gfx94x/gfx95x) or 32 MiB hipBLAS plus a separate 76 MiB hipBLASLt workspace.
    Measured: 64 MiB on H100 (shared/groundtruth, torch 2.11).
    """
    cc = compute_capability.strip().lower()
    if cc.startswith("gfx"):
        per_handle = (128 if cc.startswith(("gfx94", "gfx95")) else 32) * MIB + 76 * MIB
    elif cc.split(".")[0] in ("9", "10", "12"):
        per_handle = 32 * MIB
    else:
        per_handle = 4096 * 1024 * 2 + 16 * 1024 * 8
    return 2 * per_handle


def architecture_for(compute_capability: str) -> str:
    """'hopper' for '9.0', 'cdna3' for 'gfx942', ...; 'unknown' when not recognised."""
    cc = compute_capability.strip().lower()
    if cc.startswith("gfx"):
        return {"gfx90a": "cdna2", "gfx940": "cdna3", "gfx941": "cdna3", "gfx942": "cdna3"}.get(cc[:6], "unknown")
    table = {"7.0": "volta", "7.2": "volta", "7.5": "turing", "8.0": "ampere", "8.6": "ampere",
             "8.7": "ampere", "8.9": "ada", "9.0": "hopper"}
    if cc in table:
        return table[cc]
    return "blackwell" if cc.split(".")[0] in ("10", "11", "12") else "unknown"


def _context_bytes_for(architecture: str) -> int:
    """Median catalog CUDA context of the architecture; the GpuSpec default (H100) otherwise."""
    same = [g.cuda_context_bytes for g in gpu_catalog() if g.architecture == architecture]
    return int(statistics.median(same)) if same else GpuSpec.__dataclass_fields__["cuda_context_bytes"].default


def gpu_from_measurements(
    name: str, memory_bytes: int, *, bf16_tflops: float | None = None,
    fp16_tflops: float | None = None, fp32_tflops: float | None = None,
    tf32_tflops: float | None = None, int8_tops: float | None = None,
    memory_bandwidth_gbps: float | None = None, host_bandwidth_gbps: float | None = None,
    cuda_context_bytes: int | None = None, cublas_workspace_bytes: int | None = None,
    compute_capability: str = "", sms: int = 0, nvml_memory_bytes: int = 0,
) -> GpuSpec:
    """The card the probe sees: its catalog entry with the measured figures in place, or,
    for a card the catalog lacks, a GpuSpec built from the measurements alone.

    NVML name + CUDA total memory, matmul TFLOP/s (TF32 off for fp32), device copy and pinned
    host bandwidth (GB/s), context and cuBLAS workspace bytes; None/0 = not measured.
    An unknown card needs bf16 (or fp16), fp32 and memory bandwidth; the rest is filled in
    (fp16 = bf16, tf32 = fp32, int8 = bf16, host link PCIe 4.0 x16, context = catalog median
    of its architecture, cuBLAS workspace from torch's defaults) and listed in `notes`.
    Its price is 0.0: unknown.
    """
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes <= 0:
        raise PlanError(f"gpu: memory_bytes of {name!r} must be a positive integer, got {memory_bytes!r}")
    rates = {"bf16_tflops": bf16_tflops, "fp16_tflops": fp16_tflops, "fp32_tflops": fp32_tflops,
             "tf32_tflops": tf32_tflops, "int8_tops": int8_tops,
             "memory_bandwidth_gbps": memory_bandwidth_gbps, "host_bandwidth_gbps": host_bandwidth_gbps}
    measured: dict[str, Any] = {k: float(v) for k, v in rates.items() if v is not None and v > 0}
    if cuda_context_bytes is not None and cuda_context_bytes > 0:
        measured["cuda_context_bytes"] = int(cuda_context_bytes)
    if cublas_workspace_bytes is not None and cublas_workspace_bytes >= 0:
        measured["cublas_workspace_bytes"] = int(cublas_workspace_bytes)
    for field, value in (("compute_capability", compute_capability), ("sms", sms),
                         ("nvml_memory_bytes", nvml_memory_bytes)):
        if value:
            measured[field] = value
    calibrated = any(k.endswith(("_tflops", "_tops")) for k in measured)
    base = lookup_gpu(name)
    if base is not None:
        return dataclasses.replace(base, memory_bytes=memory_bytes, calibrated=calibrated or base.calibrated,
                                   **measured)
    return _unknown_gpu(name, memory_bytes, measured)


def _unknown_gpu(name: str, memory_bytes: int, measured: dict[str, Any]) -> GpuSpec:
    """A GpuSpec for a card the catalog lacks, from measurements plus listed assumptions."""
    if "bf16_tflops" not in measured and "fp16_tflops" in measured:
        measured["bf16_tflops"] = measured["fp16_tflops"]
    for field in ("bf16_tflops", "fp32_tflops", "memory_bandwidth_gbps"):
        if field not in measured:
            raise PlanError(f"gpu: unknown GPU {name!r} needs a measured {field} (not in the catalog)")
    cc = str(measured.get("compute_capability", ""))
    arch = architecture_for(cc)
    defaults: dict[str, Any] = {
        "fp16_tflops": measured["bf16_tflops"], "tf32_tflops": measured["fp32_tflops"],
        "int8_tops": measured["bf16_tflops"], "host_bandwidth_gbps": 31.5,
        "cuda_context_bytes": _context_bytes_for(arch),
        "cublas_workspace_bytes": cublas_workspace_bytes_for(cc) if cc else 64 * MIB,
    }
    assumed = sorted(k for k in defaults if k not in measured)
    values = {**defaults, **measured}
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"
    vendor = "AMD" if cc.startswith("gfx") or "amd" in name.lower() else "NVIDIA"
    return GpuSpec(
        id=f"measured-{slug}", name=name, vendor=vendor, architecture=arch,
        memory_bytes=memory_bytes, host_link="pcie", interconnect="pcie",
        interconnect_gbps=2 * values["host_bandwidth_gbps"], price_usd_per_hour=0.0,
        price_source="unknown: card not in the catalog", nvml_names=(name,), calibrated=True,
        notes="Built from probe measurements" + (f"; assumed: {', '.join(assumed)}" if assumed else ""),
        **values,
    )
