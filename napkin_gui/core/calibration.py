"""Calibration profiles: what the probe measured on one GPU, saved as JSON and applied to estimates.

A profile replaces the catalog's datasheet throughputs (matmul TFLOP/s, memory and host
bandwidth) and the CUDA context / cuBLAS workspace sizes with the figures the probe
measured on the user's card (napkin_gui/probe/benchmarks.py), and keeps the short real
training trials it ran (napkin_gui/probe/trial.py). Standard library only.

Store: one `<id>.json` per profile in `$NAPKIN_CONFIG_DIR/calibration/`, else
`$XDG_CONFIG_HOME/napkin/calibration/`, else `~/.config/napkin/calibration/`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PlanError
from .files import read_json_file
from .text import bare, shown
from .gpu_spec import GpuSpec
from .plan import write_text_atomic

PROFILE_SCHEMA = "napkin-calibration-v1"
MATMUL_DTYPES = ("bf16", "fp16", "fp32", "tf32")


@dataclass(frozen=True, slots=True)
class TrialPoint:
    """One reduced-depth trial run as measured (before extrapolation). None: not measured."""

    layers: int
    total_params: int
    trainable_params: int
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    weights_bytes: int | None
    step_seconds: float | None
    phases: tuple[str, ...] = ()  # step phases in the order the hooks saw them


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """A short real training run of a plan, extrapolated per decoder layer to the full model.

    Extrapolation: value(L) = value(k2) + (L - k2) * (value(k2) - value(k1)) / (k2 - k1)
    from runs at k1 < k2 decoder layers (napkin_gui/probe/extrapolate.py).
    Memory fields are None when the trial ran where torch cannot count memory (CPU).
    timeline: (phase, bytes) of one steady step of the full model, where bytes is the
    peak allocated during that phase (so its maximum is peak_allocated_bytes);
    raw_timeline: the same for the largest reduced run, as measured.
    """

    plan_json: str
    device: str
    full_layers: int
    layers_run: tuple[int, ...]
    total_params: int
    trainable_params: int
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    device_used_bytes: int | None
    step_seconds: float | None
    optimizer_step_seconds: float | None
    tokens_per_second: float | None
    memory_measured: bool
    points: tuple[TrialPoint, ...]
    timeline: tuple[tuple[str, int], ...] = ()
    raw_timeline: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def plan(self) -> dict[str, Any]:
        return json.loads(self.plan_json)


@dataclass(frozen=True, slots=True)
class CalibrationProfile:
    """What the probe measured on one GPU. Throughputs are achieved rates, not datasheet peaks.

    matmul_tflops: (dtype, TFLOP/s) for bf16/fp16/fp32 (TF32 off)/tf32 at training shapes.
    memory_bandwidth_gbps: device-to-device copy, read + write counted (as
    shared/groundtruth/env-h100.json's d2d_copy_GBps_rw). h2d/d2h: pinned host copies.
    cuda_context_bytes: NVML used by this process minus torch's reserved memory.
    cublas_workspace_bytes: cuBLAS workspaces of a training step (forward + autograd thread).
    device: "cuda" profiles calibrate estimates; "cpu" ones are a labelled self-test only.
    """

    id: str
    gpu_name: str
    gpu_id: str | None
    created: str  # ISO 8601, UTC, seconds
    device: str = "cuda"
    driver_version: str | None = None
    cuda_version: str | None = None
    torch_version: str | None = None
    transformers_version: str | None = None
    peft_version: str | None = None
    bitsandbytes_version: str | None = None
    matmul_tflops: tuple[tuple[str, float], ...] = ()
    memory_bandwidth_gbps: float | None = None
    h2d_gbps: float | None = None
    d2h_gbps: float | None = None
    kernel_launch_us: float | None = None
    cuda_context_bytes: int | None = None
    cublas_workspace_bytes: int | None = None
    total_memory_bytes: int | None = None   # CUDA-visible (torch total_memory)
    nvml_memory_bytes: int | None = None    # board total as NVML reports it
    compute_capability: str | None = None   # "9.0"
    sms: int | None = None
    trials: tuple[TrialRecord, ...] = ()
    notes: tuple[str, ...] = ()

    def tflops(self, dtype: str) -> float | None:
        """Measured matmul TFLOP/s for bf16/fp16/fp32/tf32, None when not measured."""
        return dict(self.matmul_tflops).get(dtype)

    @property
    def host_bandwidth_gbps(self) -> float | None:
        """The slower pinned direction: an offload round trip waits for both."""
        rates = [r for r in (self.h2d_gbps, self.d2h_gbps) if r]
        return min(rates) if rates else None


def profile_applies(gpu: GpuSpec, profile: CalibrationProfile | None) -> bool:
    """Whether the profile was measured on this kind of card (catalog id, else NVML name)."""
    if profile is None or profile.device != "cuda":
        return False
    if profile.gpu_id and profile.gpu_id == gpu.id:
        return True
    names = {gpu.name.lower(), *(n.lower() for n in gpu.nvml_names)}
    return profile.gpu_name.lower() in names


def apply_calibration(gpu: GpuSpec, profile: CalibrationProfile | None) -> GpuSpec:
    """The GpuSpec with every measured figure of the profile in place of the catalog's.

    Only values the profile holds are replaced. Returns `gpu` itself (same object) when
    the profile does not apply: a CPU self-test, another card (profile_applies), or
    nothing measured; so `apply_calibration(gpu, p) is not gpu` tells that it applied.
    """
    if not profile_applies(gpu, profile):
        return gpu
    changes: dict[str, Any] = {}
    for dtype in MATMUL_DTYPES:
        rate = profile.tflops(dtype)
        if rate and rate > 0:
            changes[f"{dtype}_tflops"] = float(rate)
    if profile.memory_bandwidth_gbps:
        changes["memory_bandwidth_gbps"] = float(profile.memory_bandwidth_gbps)
    if profile.host_bandwidth_gbps:
        changes["host_bandwidth_gbps"] = float(profile.host_bandwidth_gbps)
    if profile.cuda_context_bytes is not None and profile.cuda_context_bytes > 0:
        changes["cuda_context_bytes"] = int(profile.cuda_context_bytes)
    if profile.cublas_workspace_bytes is not None and profile.cublas_workspace_bytes >= 0:
        changes["cublas_workspace_bytes"] = int(profile.cublas_workspace_bytes)
    if not changes:
        return gpu
    return dataclasses.replace(gpu, calibrated=True, **changes)


def gpu_from_profile(profile: CalibrationProfile) -> GpuSpec:
    """The probed card as a GpuSpec: its catalog entry with the measured figures in place,
    or, for a card the catalog lacks, one built from the measurements alone (PlanError when
    too little was measured). core/gpu_catalog.py gpu_from_measurements."""
    from .gpu_catalog import gpu_from_measurements

    if not profile.total_memory_bytes:
        raise PlanError(f"calibration: profile {profile.id} has no measured memory size")
    return gpu_from_measurements(
        profile.gpu_name, profile.total_memory_bytes,
        bf16_tflops=profile.tflops("bf16"), fp16_tflops=profile.tflops("fp16"),
        fp32_tflops=profile.tflops("fp32"), tf32_tflops=profile.tflops("tf32"),
        memory_bandwidth_gbps=profile.memory_bandwidth_gbps,
        host_bandwidth_gbps=profile.host_bandwidth_gbps,
        cuda_context_bytes=profile.cuda_context_bytes,
        cublas_workspace_bytes=profile.cublas_workspace_bytes,
        compute_capability=profile.compute_capability or "", sms=profile.sms or 0,
        nvml_memory_bytes=profile.nvml_memory_bytes or 0)


def profile_label(profile: CalibrationProfile) -> str:
    """'NVIDIA H100 80GB HBM3, 2026-11-25': the estimate's `calibration` field."""
    label = f"{profile.gpu_name}, {profile.created[:10]}"
    return label if profile.device == "cuda" else f"{label} (CPU self-test)"


def new_profile_id(gpu_name: str, created: str) -> str:
    """A file-safe id: slug of the GPU name + the creation time, e.g. nvidia-h100-80gb-hbm3-20261125t034501."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    stamp = re.sub(r"[^0-9tT]", "", created).lower()
    return f"{slug}-{stamp}"


# ---------------------------------------------------------------- JSON (validated here)

def profile_to_dict(profile: CalibrationProfile) -> dict[str, Any]:
    """The profile as a JSON object (schema napkin-calibration-v1)."""
    out = dataclasses.asdict(profile)
    out["matmul_tflops"] = dict(profile.matmul_tflops)
    out["trials"] = [_trial_to_dict(t) for t in profile.trials]
    out["notes"] = list(profile.notes)
    return {"schema": PROFILE_SCHEMA, **out}


def _trial_to_dict(trial: TrialRecord) -> dict[str, Any]:
    out = dataclasses.asdict(trial)
    out["plan"] = json.loads(trial.plan_json)
    del out["plan_json"]
    out["timeline"] = [{"phase": p, "allocated_bytes": b} for p, b in trial.timeline]
    out["raw_timeline"] = [{"phase": p, "allocated_bytes": b} for p, b in trial.raw_timeline]
    return out


def profile_from_dict(data: Any) -> CalibrationProfile:
    """Validate a profile JSON object; PlanError (one line) on anything malformed."""
    if not isinstance(data, dict) or data.get("schema") != PROFILE_SCHEMA:
        raise PlanError(f"calibration: not a {PROFILE_SCHEMA} profile")
    try:
        tflops = data.get("matmul_tflops") or {}
        if not isinstance(tflops, dict):
            raise TypeError("matmul_tflops must be an object")
        profile = CalibrationProfile(
            id=_str(data, "id"), gpu_name=_str(data, "gpu_name"), gpu_id=_opt_str(data, "gpu_id"),
            created=_str(data, "created"), device=_str(data, "device"),
            driver_version=_opt_str(data, "driver_version"), cuda_version=_opt_str(data, "cuda_version"),
            torch_version=_opt_str(data, "torch_version"),
            transformers_version=_opt_str(data, "transformers_version"),
            peft_version=_opt_str(data, "peft_version"),
            bitsandbytes_version=_opt_str(data, "bitsandbytes_version"),
            matmul_tflops=tuple((str(k), _num(tflops, k)) for k in tflops),
            memory_bandwidth_gbps=_opt_num(data, "memory_bandwidth_gbps"),
            h2d_gbps=_opt_num(data, "h2d_gbps"), d2h_gbps=_opt_num(data, "d2h_gbps"),
            kernel_launch_us=_opt_num(data, "kernel_launch_us"),
            cuda_context_bytes=_opt_int(data, "cuda_context_bytes"),
            cublas_workspace_bytes=_opt_int(data, "cublas_workspace_bytes"),
            total_memory_bytes=_opt_int(data, "total_memory_bytes"),
            nvml_memory_bytes=_opt_int(data, "nvml_memory_bytes"),
            compute_capability=_opt_str(data, "compute_capability"), sms=_opt_int(data, "sms"),
            trials=tuple(_trial_from_dict(t) for t in data.get("trials") or ()),
            notes=tuple(str(n) for n in data.get("notes") or ()),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise PlanError(f"calibration: malformed profile ({err})") from None
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", profile.id):
        raise PlanError(f"calibration: bad profile id {profile.id!r}")
    return profile


def _trial_from_dict(d: Any) -> TrialRecord:
    if not isinstance(d, dict):
        raise TypeError("a trial must be an object")
    return TrialRecord(
        plan_json=json.dumps(d["plan"]), device=_str(d, "device"),
        full_layers=_int(d, "full_layers"), layers_run=tuple(_count(k, "layers_run") for k in d["layers_run"]),
        total_params=_int(d, "total_params"), trainable_params=_int(d, "trainable_params"),
        peak_allocated_bytes=_opt_int(d, "peak_allocated_bytes"),
        peak_reserved_bytes=_opt_int(d, "peak_reserved_bytes"),
        device_used_bytes=_opt_int(d, "device_used_bytes"),
        step_seconds=_opt_num(d, "step_seconds"),
        optimizer_step_seconds=_opt_num(d, "optimizer_step_seconds"),
        tokens_per_second=_opt_num(d, "tokens_per_second"),
        memory_measured=bool(d["memory_measured"]),
        points=tuple(_point_from_dict(p) for p in d["points"]),
        timeline=_phases(d, "timeline"), raw_timeline=_phases(d, "raw_timeline"),
        notes=tuple(str(n) for n in d.get("notes") or ()),
    )


def _point_from_dict(d: Any) -> TrialPoint:
    if not isinstance(d, dict):
        raise TypeError("a trial point must be an object")
    return TrialPoint(
        layers=_int(d, "layers"), total_params=_int(d, "total_params"),
        trainable_params=_int(d, "trainable_params"),
        peak_allocated_bytes=_opt_int(d, "peak_allocated_bytes"),
        peak_reserved_bytes=_opt_int(d, "peak_reserved_bytes"),
        weights_bytes=_opt_int(d, "weights_bytes"), step_seconds=_opt_num(d, "step_seconds"),
        phases=tuple(str(p) for p in d.get("phases") or ()),
    )


def _str(d: dict, key: str) -> str:
    value = d[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _opt_str(d: dict, key: str) -> str | None:
    return None if d.get(key) is None else _str(d, key)


# No measured figure comes near these: rates in TFLOP/s or GB/s, durations in µs or seconds
# (a B200 does 2,250 bf16 TFLOP/s and 8,000 GB/s); byte sizes and counts (a card has < 2**40 B).
MAX_MEASURED = 1e9
MAX_COUNT = 2**60


def _num(d: dict, key: str) -> float:
    """A measured rate or duration: finite, > 0 and at most MAX_MEASURED (NaN would print invalid
    JSON, -1 break the time model, 1e308 overflow it)."""
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{bare(key, 40)} must be a number")
    if isinstance(value, int) and value.bit_length() > 1000 or not math.isfinite(value) or not 0 < value <= MAX_MEASURED:
        raise ValueError(f"{bare(key, 40)} must be a finite number above 0 and at most {MAX_MEASURED:g}, "
                         f"got {shown(value)}")
    return float(value)


def _opt_num(d: dict, key: str) -> float | None:
    return None if d.get(key) is None else _num(d, key)


def _int(d: dict, key: str) -> int:
    """A count or a byte size: an integer from 0 to MAX_COUNT."""
    return _count(d[key], key)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{bare(what, 40)} must be an integer")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{bare(what, 40)} must be an integer from 0 to 2**60, got {shown(value)}")
    return value


def _phases(d: dict, key: str) -> tuple[tuple[str, int], ...]:
    """A timeline: [{"phase": str, "allocated_bytes": int}, ...]."""
    return tuple((_str(t, "phase"), _int(t, "allocated_bytes")) for t in d.get(key) or ())


def _opt_int(d: dict, key: str) -> int | None:
    return None if d.get(key) is None else _int(d, key)


# ---------------------------------------------------------------- the store

def config_dir() -> Path:
    """napkin's config folder: $NAPKIN_CONFIG_DIR, else $XDG_CONFIG_HOME/napkin, else ~/.config/napkin."""
    if os.environ.get("NAPKIN_CONFIG_DIR"):
        return Path(os.environ["NAPKIN_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "napkin"


def profiles_dir() -> Path:
    return config_dir() / "calibration"


# A profile with a few hundred trials is ~1 MB.
MAX_PROFILE_BYTES = 16_000_000


def read_profile(path: str | os.PathLike[str]) -> CalibrationProfile:
    """Read one profile file; PlanError naming the file when it is missing or corrupt."""
    p = Path(path)
    # a regular file under the cap only (a FIFO or /dev/zero in the folder must not hang --list);
    # deep nesting, huge integers and duplicate keys are PlanErrors (core/files.py)
    data = read_json_file(p, "calibration", MAX_PROFILE_BYTES)
    try:
        return profile_from_dict(data)
    except PlanError as err:
        raise PlanError(f"{err} in {p}") from None


def save_profile(profile: CalibrationProfile) -> Path:
    """Write the profile to the store atomically; never overwrites a file that does not parse."""
    path = profiles_dir() / f"{profile.id}.json"
    if path.exists():
        read_profile(path)  # raises PlanError for a corrupt file: leave it for the user to inspect
    write_text_atomic(path, json.dumps(profile_to_dict(profile), indent=1) + "\n")
    return path


def load_profiles() -> tuple[tuple[CalibrationProfile, ...], tuple[str, ...]]:
    """Every stored profile, oldest first, and one warning line per file that could not be read."""
    folder = profiles_dir()
    if not folder.is_dir():
        return (), ()
    profiles, warnings = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            profiles.append(read_profile(path))
        except PlanError as err:
            warnings.append(f"skipped {err}")
    profiles.sort(key=lambda p: (p.created, p.id))
    return tuple(profiles), tuple(warnings)


def delete_profile(profile_id: str) -> None:
    """Remove a stored profile by id; PlanError when there is none."""
    path = profiles_dir() / f"{profile_id}.json"
    if "/" in profile_id or "\\" in profile_id or not path.is_file():
        raise PlanError(f"calibration: no profile with id {profile_id!r} (see napkin probe --list)")
    path.unlink()


def find_profile(profile_id: str) -> CalibrationProfile:
    """The stored profile with this id; PlanError when there is none."""
    for profile in load_profiles()[0]:
        if profile.id == profile_id:
            return profile
    raise PlanError(f"calibration: no profile with id {profile_id!r} (see napkin probe --list)")


def export_profile(profile: CalibrationProfile, path: str | os.PathLike[str]) -> None:
    """Write the profile to any path (to share with a team), atomically; PlanError when it cannot."""
    try:
        write_text_atomic(Path(path), json.dumps(profile_to_dict(profile), indent=1) + "\n")
    except OSError as err:
        raise PlanError(f"export: cannot write {bare(str(path), 200)}: {err.strerror or err}") from None


def import_profile(path: str | os.PathLike[str]) -> CalibrationProfile:
    """Validate a shared profile file and add it to the store; PlanError when it is bad."""
    profile = read_profile(path)
    save_profile(profile)
    return profile


def profile_for_gpu(name: str) -> CalibrationProfile | None:
    """The newest CUDA profile whose NVML name or catalog id equals name (case-insensitive)."""
    return profile_for_gpu_and_warnings(name)[0]


def profile_for_gpu_and_warnings(name: str) -> tuple[CalibrationProfile | None, tuple[str, ...]]:
    """profile_for_gpu, and load_profiles' line for each store file it skipped."""
    keys = {name.strip().lower()}
    try:
        from .gpu_catalog import lookup_gpu
        card = lookup_gpu(name)
    except Exception:  # noqa: BLE001 - a broken catalog must not hide the profiles
        card = None
    if card is not None:
        keys.add(card.id.lower())
    profiles, warnings = load_profiles()
    matches = [p for p in profiles
               if p.device == "cuda" and keys & {p.gpu_name.lower(), (p.gpu_id or "").lower()}]
    return (matches[-1] if matches else None), warnings
