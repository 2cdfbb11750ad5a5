"""What NVML (nvidia-ml-py's `pynvml`) says about every NVIDIA GPU, as frozen records.

`read_devices()` never raises: no library, no driver, or a driver that vanishes mid-read
becomes `NvmlSnapshot.status`, one line the app shows while it goes on with catalog
figures. pynvml is imported lazily; tests pass a fake module object to `NvmlBackend`.
Behaviour without a driver: shared/TOOLCHAIN.md section 5.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

NO_DRIVER_SUFFIX = "estimates use the catalog"

# NVML error codes that mean "this query does not exist on this board", not "driver gone"
# (nvidia-ml-py pynvml.py: NVML_ERROR_INVALID_ARGUMENT 2, NOT_SUPPORTED 3,
# NO_PERMISSION 4, NOT_FOUND 6, FUNCTION_NOT_FOUND 13).
_UNSUPPORTED_CODES = {2, 3, 4, 6, 13}


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process on a GPU; used_bytes None when the driver does not say."""

    pid: int
    used_bytes: int | None
    is_self: bool


@dataclass(frozen=True, slots=True)
class NvmlGpu:
    """One GPU as NVML reports it. None: the board does not support that query."""

    index: int
    name: str
    uuid: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    power_limit_w: float | None = None
    power_draw_w: float | None = None
    temperature_c: int | None = None
    pcie_gen: int | None = None
    pcie_width: int | None = None
    pcie_max_gen: int | None = None
    pcie_max_width: int | None = None
    nvlink_active_links: int | None = None
    processes: tuple[GpuProcess, ...] = ()

    @property
    def self_used_bytes(self) -> int | None:
        """Memory NVML attributes to this process (None when it is not listed or not told)."""
        used = [p.used_bytes for p in self.processes if p.is_self and p.used_bytes is not None]
        return sum(used) if used else None

    @property
    def others_used_bytes(self) -> int:
        """Memory NVML lists for processes other than this one."""
        return sum(p.used_bytes or 0 for p in self.processes if not p.is_self)


@dataclass(frozen=True, slots=True)
class NvmlSnapshot:
    """Every GPU at one moment, or why there are none (`status`)."""

    ok: bool
    status: str
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[NvmlGpu, ...] = ()
    taken_at: float = 0.0


class NvmlBackend:
    """A thin session over a pynvml-like module: init once, query, shut down only after init.

    module: the `pynvml` module (imported on first use when None) or a test fake with the
    same functions and an `NVMLError` class hierarchy.
    """

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._initialized = False

    @property
    def module(self) -> Any:
        if self._module is None:
            import pynvml  # nvidia-ml-py
            self._module = pynvml
        return self._module

    @property
    def initialized(self) -> bool:
        return self._initialized

    def init(self) -> None:
        """nvmlInit once; raises the module's NVMLError (or ImportError) when that fails."""
        if not self._initialized:
            self.module.nvmlInit()
            self._initialized = True

    def shutdown(self) -> None:
        """nvmlShutdown, only after a successful init; errors ignored (driver may be gone)."""
        if self._initialized:
            self._initialized = False
            try:
                self.module.nvmlShutdown()
            except Exception:  # noqa: BLE001 - a vanished driver cannot be shut down either
                pass

    def optional(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), or None when NVML says the board does not support it.

        Any other NVMLError (GPU lost, driver unloaded, uninitialized) propagates.
        """
        try:
            return fn(*args)
        except self.module.NVMLError as err:
            if getattr(err, "value", None) in _UNSUPPORTED_CODES:
                return None
            raise


def read_devices(backend: NvmlBackend | None = None) -> NvmlSnapshot:
    """Snapshot every GPU; never raises. A backend passed in stays initialized for reuse."""
    own = backend is None
    backend = backend or NvmlBackend()
    try:
        try:
            nv = backend.module
        except ImportError:
            return _unavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
        try:
            backend.init()
        except nv.NVMLError as err:
            return _unavailable(_init_failure_text(err))
        try:
            return _snapshot(backend, nv)
        except nv.NVMLError as err:
            backend.shutdown()  # re-init on the next read: the driver may have been reloaded
            return _unavailable(f"NVIDIA driver stopped answering ({_err_text(err)})")
    except Exception as err:  # noqa: BLE001 - NVML must never take the app down
        return _unavailable(f"NVML query failed ({type(err).__name__}: {_first_line(err)})")
    finally:
        if own:
            backend.shutdown()


def _snapshot(backend: NvmlBackend, nv: Any) -> NvmlSnapshot:
    driver = _text(backend.optional(nv.nvmlSystemGetDriverVersion))
    cuda = backend.optional(nv.nvmlSystemGetCudaDriverVersion)
    cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None
    count = nv.nvmlDeviceGetCount()
    gpus = tuple(_gpu(backend, nv, i) for i in range(count))
    if not gpus:
        status = f"NVIDIA driver {driver} found, but no GPU — {NO_DRIVER_SUFFIX}"
    else:
        status = f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: {gpus[0].name} (driver {driver}, CUDA {cuda_version})"
    return NvmlSnapshot(ok=bool(gpus), status=status, driver_version=driver, cuda_version=cuda_version,
                        gpus=gpus, taken_at=time.time())


def _gpu(backend: NvmlBackend, nv: Any, index: int) -> NvmlGpu:
    h = nv.nvmlDeviceGetHandleByIndex(index)
    mem = nv.nvmlDeviceGetMemoryInfo(h)
    opt = backend.optional
    power_limit = opt(nv.nvmlDeviceGetEnforcedPowerLimit, h)
    power_draw = opt(nv.nvmlDeviceGetPowerUsage, h)
    return NvmlGpu(
        index=index, name=_text(nv.nvmlDeviceGetName(h)), uuid=_text(opt(nv.nvmlDeviceGetUUID, h)) or "",
        total_bytes=int(mem.total), used_bytes=int(mem.used), free_bytes=int(mem.free),
        sm_clock_mhz=opt(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
        mem_clock_mhz=opt(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM),
        max_sm_clock_mhz=opt(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM),
        power_limit_w=None if power_limit is None else power_limit / 1000.0,  # NVML: milliwatts
        power_draw_w=None if power_draw is None else power_draw / 1000.0,
        temperature_c=opt(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
        pcie_gen=opt(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
        pcie_width=opt(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
        pcie_max_gen=opt(nv.nvmlDeviceGetMaxPcieLinkGeneration, h),
        pcie_max_width=opt(nv.nvmlDeviceGetMaxPcieLinkWidth, h),
        nvlink_active_links=_nvlink_links(backend, nv, h),
        processes=_processes(backend, nv, h),
    )


def _nvlink_links(backend: NvmlBackend, nv: Any, handle: Any) -> int | None:
    """Links in state NVML_FEATURE_ENABLED; None when the board has no NVLink."""
    active, seen = 0, False
    for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
        state = backend.optional(nv.nvmlDeviceGetNvLinkState, handle, link)
        if state is None:
            break
        seen = True
        active += int(state == getattr(nv, "NVML_FEATURE_ENABLED", 1))
    return active if seen else None


def _processes(backend: NvmlBackend, nv: Any, handle: Any) -> tuple[GpuProcess, ...]:
    procs = backend.optional(nv.nvmlDeviceGetComputeRunningProcesses, handle) or ()
    me = os.getpid()
    out = []
    for p in procs:
        used = getattr(p, "usedGpuMemory", None)
        out.append(GpuProcess(pid=int(p.pid), used_bytes=None if used is None else int(used), is_self=p.pid == me))
    return tuple(out)


def _unavailable(reason: str) -> NvmlSnapshot:
    return NvmlSnapshot(ok=False, status=f"{reason} — {NO_DRIVER_SUFFIX}", taken_at=time.time())


def _init_failure_text(err: BaseException) -> str:
    name = type(err).__name__
    if name in ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"):
        return f"No NVIDIA driver found ({_err_text(err)})"
    return f"NVML could not start ({_err_text(err)})"


def _err_text(err: BaseException) -> str:
    try:
        return _first_line(err) or type(err).__name__
    except Exception:  # noqa: BLE001 - pynvml's __str__ may itself call into a dead library
        return type(err).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def device_memory(backend: NvmlBackend | None, uuid: str | None = None,
                  index: int = 0) -> tuple[int | None, int | None]:
    """(bytes used on the device, bytes other processes use) now; Nones when NVML cannot say.

    The GPU is found by UUID (CUDA and NVML may number GPUs differently), else by index.
    Other processes: the listed ones that are not this one. In a container NVML lists host
    PIDs, so this process is not recognised: one (or no) listed process is then taken to
    be this one, several make the figure unknown.
    """
    snap = read_devices(backend)
    gpu = find_gpu(snap, uuid, index)
    if gpu is None:
        return None, None
    if any(p.is_self for p in gpu.processes):
        return gpu.used_bytes, gpu.others_used_bytes
    return gpu.used_bytes, (0 if len(gpu.processes) <= 1 else None)


def find_gpu(snapshot: NvmlSnapshot, uuid: str | None = None, index: int = 0) -> NvmlGpu | None:
    """The snapshot's GPU with this UUID, else the one at `index`, else None."""
    for gpu in snapshot.gpus:
        if uuid and gpu.uuid == uuid:
            return gpu
    return snapshot.gpus[index] if 0 <= index < len(snapshot.gpus) else None
