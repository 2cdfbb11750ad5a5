"""A stand-in for the `pynvml` module: scripted GPUs, no driver needed.

For tests and for showing the app's GPU strip on a machine without an NVIDIA GPU. Errors
are the real pynvml classes (NVMLError_LibraryNotFound, NVMLError_GpuIsLost, ...: each
subclasses pynvml.NVMLError and carries .value), so code under test catches exactly what
it would catch with a real driver (shared/TOOLCHAIN.md section 5).

    fake = FakeNvml([FakeGpu("NVIDIA H100 80GB HBM3", total_bytes=81559 * 2**20)])
    read_devices(NvmlBackend(fake))
    FakeNvml(init_error="LibraryNotFound")     # no driver
    fake.lose_gpu(after_calls=3)                # the driver vanishes mid-read
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

MIB = 2**20


@dataclass
class FakeGpu:
    """One scripted GPU. nvlink_links None: the board has no NVLink (NotSupported)."""

    name: str = "NVIDIA H100 80GB HBM3"
    total_bytes: int = 81559 * MIB
    used_bytes: int = 0
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    power_limit_mw: int = 700_000
    power_draw_mw: int = 70_000
    temperature_c: int = 31
    pcie: tuple[int, int] = (5, 16)
    nvlink_links: int | None = 18
    nvlink_active: int = 18
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, used bytes)


class FakeNvml:
    """Module-like object with the pynvml functions napkin_gui.probe.nvml calls."""

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: str | None = None,
                 driver_version: str = "580.95.05", cuda_version: int = 13000) -> None:
        import pynvml  # error classes and constants come from the real module

        self._real = pynvml
        self.NVMLError = pynvml.NVMLError
        for name in ("NVML_CLOCK_SM", "NVML_CLOCK_MEM", "NVML_TEMPERATURE_GPU",
                     "NVML_NVLINK_MAX_LINKS", "NVML_FEATURE_ENABLED"):
            setattr(self, name, getattr(pynvml, name))
        self.gpus = list(gpus or [])
        self.init_error = init_error
        self.driver_version = driver_version
        self.cuda_version = cuda_version
        self.initialized = False
        self.init_calls = self.shutdown_calls = 0
        self._calls_left: int | None = None

    def error(self, name: str) -> BaseException:
        """The real pynvml exception NVMLError_<name>, e.g. 'LibraryNotFound', 'GpuIsLost'."""
        return getattr(self._real, f"NVMLError_{name}")()

    def lose_gpu(self, after_calls: int = 0) -> None:
        """After `after_calls` more device queries, every query raises NVMLError_GpuIsLost."""
        self._calls_left = after_calls

    def _device_call(self) -> None:
        if not self.initialized:
            raise self.error("Uninitialized")
        if self._calls_left is not None:
            if self._calls_left <= 0:
                raise self.error("GpuIsLost")
            self._calls_left -= 1

    # -- library
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error:
            raise self.error(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        if not self.initialized:
            raise self.error("Uninitialized")
        self.initialized = False
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._device_call()
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._device_call()
        return self.cuda_version

    def nvmlDeviceGetCount(self) -> int:
        self._device_call()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._device_call()
        if not 0 <= index < len(self.gpus):
            raise self.error("InvalidArgument")
        return self.gpus[index]

    # -- per device
    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        self._device_call()
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        self._device_call()
        return h.uuid

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> Any:
        self._device_call()
        return SimpleNamespace(total=h.total_bytes, used=h.used_bytes, free=h.total_bytes - h.used_bytes)

    def nvmlDeviceGetClockInfo(self, h: FakeGpu, kind: int) -> int:
        self._device_call()
        return h.sm_clock_mhz if kind == self.NVML_CLOCK_SM else h.mem_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, h: FakeGpu, kind: int) -> int:
        return self.nvmlDeviceGetClockInfo(h, kind)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        self._device_call()
        return h.power_limit_mw

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        self._device_call()
        return h.power_draw_mw

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        self._device_call()
        return h.temperature_c

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: FakeGpu) -> int:
        self._device_call()
        return h.pcie[0]

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: FakeGpu) -> int:
        self._device_call()
        return h.pcie[1]

    nvmlDeviceGetMaxPcieLinkGeneration = nvmlDeviceGetCurrPcieLinkGeneration
    nvmlDeviceGetMaxPcieLinkWidth = nvmlDeviceGetCurrPcieLinkWidth

    def nvmlDeviceGetNvLinkState(self, h: FakeGpu, link: int) -> int:
        self._device_call()
        if h.nvlink_links is None:
            raise self.error("NotSupported")
        if link >= h.nvlink_links:
            raise self.error("InvalidArgument")
        return self.NVML_FEATURE_ENABLED if link < h.nvlink_active else 0

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu) -> list[Any]:
        self._device_call()
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in h.processes]


def demo_nvml() -> FakeNvml:
    """Two H100s, this process holding 30 GiB on the first: for screenshots and demos."""
    me = os.getpid()
    return FakeNvml([
        FakeGpu(used_bytes=31 * 1024 * MIB, processes=[(me, 30 * 1024 * MIB), (me + 1, 1024 * MIB)]),
        FakeGpu(uuid="GPU-11111111-1111-1111-1111-111111111111", used_bytes=600 * MIB),
    ])
