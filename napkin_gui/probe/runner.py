"""The probe end to end: NVML -> micro-benchmarks -> optional trial -> calibration profile.

`run_probe()` never raises and never touches Qt (the app runs it in a child process through
probe/isolated.py and ui/probe_worker.py); `napkin probe` is probe/command.py.
"""
from __future__ import annotations

import datetime
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Callable

from ..core.calibration import CalibrationProfile, new_profile_id
from ..core.errors import PlanError
from ..core.gpu_catalog import lookup_gpu
from ..core.plan import Plan
from .benchmarks import BenchmarkResult, BenchSizes, cuda_uuid, run_benchmarks
from .nvml import NvmlBackend, NvmlSnapshot, device_memory, find_gpu, read_devices
from .trial import TrialOutcome, run_trial

Progress = Callable[[float, str], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Everything one probe run learned; `status` is the one line to show."""

    status: str
    nvml: NvmlSnapshot
    benchmarks: BenchmarkResult | None = None
    trial: TrialOutcome | None = None
    profile: CalibrationProfile | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """A profile was built (possibly a CPU self-test one: see profile.device)."""
        return self.profile is not None


def run_probe(trial_plan: Plan | None = None, progress: Progress | None = None,
              should_stop: StopCheck | None = None, *, device: str = "cuda",
              nvml_backend: NvmlBackend | None = None, bench_sizes: BenchSizes | None = None,
              trial_layers: tuple[int, ...] | None = None, model_spec: Any = None,
              nvml_snapshot: Callable[[NvmlSnapshot], None] | None = None,
              memory_snapshot: str | None = None) -> ProbeResult:
    """Probe `device` ("cuda", "cuda:1", or "cpu" for a labelled self-test); never raises.

    nvml_snapshot: called with the NVML snapshot as soon as it is read (the app's strip).
    memory_snapshot: path for torch's allocator snapshot of the trial's recorded step (CUDA).
    """
    progress = progress or (lambda f, t: None)
    should_stop = should_stop or (lambda: False)
    own = nvml_backend is None
    backend = nvml_backend or NvmlBackend()
    progress(0.0, "reading NVML")
    nvml = read_devices(backend)
    if nvml_snapshot is not None:
        nvml_snapshot(nvml)
    try:
        return _probe(trial_plan, progress, should_stop, device, backend, nvml, bench_sizes,
                      trial_layers, model_spec, memory_snapshot)
    except Exception as err:  # noqa: BLE001 - the app goes on with uncalibrated estimates
        text = str(err).strip().splitlines()
        return ProbeResult(f"probe failed: {type(err).__name__}: {text[0] if text else ''}", nvml)
    finally:
        if own:
            backend.shutdown()


def _probe(plan: Plan | None, progress: Progress, should_stop: StopCheck, device: str,
           backend: NvmlBackend, nvml: NvmlSnapshot, sizes: BenchSizes | None,
           layers: tuple[int, ...] | None, spec: Any, snapshot: str | None = None) -> ProbeResult:
    cuda = device.startswith("cuda")
    if cuda and not nvml.ok:
        return ProbeResult(nvml.status, nvml)
    try:
        import torch
    except ImportError:
        return ProbeResult("torch is not installed (pip install 'napkin[probe]') — estimates use the catalog", nvml)
    if cuda and not torch.cuda.is_available():
        return ProbeResult(f"torch {torch.__version__} sees no CUDA GPU — estimates use the catalog", nvml)
    if should_stop():
        return ProbeResult("probe cancelled", nvml, cancelled=True)
    end_bench = 0.45 if plan is not None else 0.95

    def nvml_used() -> tuple[int | None, int | None]:
        # the CUDA UUID once CUDA is up (benchmarks read NVML once before, to see the baseline)
        uuid = cuda_uuid(torch, torch.device(device)) if torch.cuda.is_initialized() else None
        return device_memory(backend, uuid, torch.device(device).index or 0)

    bench = run_benchmarks(device, sizes, _span(progress, 0.05, end_bench), should_stop,
                           nvml_used if cuda else None)
    if bench.cancelled or should_stop():
        return ProbeResult("probe cancelled", nvml, bench, cancelled=True)
    trial = None
    if plan is not None:
        trial = run_trial(plan, spec, bench.device, layers, _span(progress, end_bench, 0.98),
                          should_stop, nvml_used if cuda else None, memory_snapshot=snapshot)
        if trial.status == "trial cancelled":
            return ProbeResult("probe cancelled", nvml, bench, trial, cancelled=True)
    profile = build_profile(nvml, bench, trial)
    progress(1.0, "probe done")
    status = f"calibrated {profile.gpu_name}" if bench.is_cuda else "CPU self-test done (not a GPU calibration)"
    if trial is not None:
        status += f"; {trial.status}"
    return ProbeResult(status, nvml, bench, trial, profile)


def _span(progress: Progress, start: float, end: float) -> Progress:
    return lambda f, text: progress(start + (end - start) * max(0.0, min(1.0, f)), text)


def build_profile(nvml: NvmlSnapshot, bench: BenchmarkResult, trial: TrialOutcome | None) -> CalibrationProfile:
    """A CalibrationProfile from what was measured (catalog id matched from the GPU's name)."""
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    created = created.replace("+00:00", "Z")
    index = int(bench.device.partition(":")[2] or 0) if bench.is_cuda else 0
    gpu = find_gpu(nvml, bench.uuid, index) if bench.is_cuda else None
    name = gpu.name if gpu is not None else bench.device_name
    return CalibrationProfile(
        id=new_profile_id(name if bench.is_cuda else "cpu", created), gpu_name=name,
        gpu_id=_catalog_id(name) if bench.is_cuda else None, created=created,
        device="cuda" if bench.is_cuda else "cpu",
        driver_version=nvml.driver_version, cuda_version=nvml.cuda_version,
        torch_version=_version("torch"), transformers_version=_version("transformers"),
        peft_version=_version("peft"), bitsandbytes_version=_version("bitsandbytes"),
        matmul_tflops=bench.matmul_tflops, memory_bandwidth_gbps=bench.memory_bandwidth_gbps,
        h2d_gbps=bench.h2d_gbps, d2h_gbps=bench.d2h_gbps, kernel_launch_us=bench.kernel_launch_us,
        cuda_context_bytes=bench.cuda_context_bytes, cublas_workspace_bytes=bench.cublas_workspace_bytes,
        total_memory_bytes=bench.total_memory_bytes,
        nvml_memory_bytes=gpu.total_bytes if gpu is not None else None,
        compute_capability=bench.compute_capability, sms=bench.sms,
        trials=(trial.record,) if trial is not None and trial.record is not None else (),
        notes=bench.notes + ((trial.status,) if trial is not None and trial.record is None else ()),
    )


def _catalog_id(name: str) -> str | None:
    try:
        card = lookup_gpu(name)
    except PlanError:
        return None
    return card.id if card is not None else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None

