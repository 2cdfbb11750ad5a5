"""NVML layer through a fake pynvml module: devices, no driver, a driver vanishing mid-read."""
import os

import pynvml
import pytest

from napkin_gui.probe.fake_nvml import MIB, FakeGpu, FakeNvml
from napkin_gui.probe.nvml import NvmlBackend, device_memory, find_gpu, read_devices

NO_DRIVER = "No NVIDIA driver found (NVML Shared Library Not Found) — estimates use the catalog"


def two_gpus() -> FakeNvml:
    me = os.getpid()
    return FakeNvml([
        FakeGpu(used_bytes=20 * 1024 * MIB, processes=[(me, 12 * 1024 * MIB), (me + 7, 7 * 1024 * MIB)]),
        FakeGpu(name="NVIDIA RTX 4090", uuid="GPU-4090", total_bytes=24564 * MIB, used_bytes=300 * MIB,
                power_limit_mw=450_000, pcie=(4, 16), nvlink_links=None),
    ])


def test_fake_errors_are_the_real_pynvml_classes():
    err = FakeNvml().error("LibraryNotFound")
    assert isinstance(err, pynvml.NVMLError_LibraryNotFound)
    assert type(err).__mro__[1] is pynvml.NVMLError
    assert err.value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND == 12
    assert str(err) == "NVML Shared Library Not Found"


def test_devices_are_read_field_by_field():
    fake = two_gpus()
    snap = read_devices(NvmlBackend(fake))
    assert snap.ok and snap.driver_version == "580.95.05" and snap.cuda_version == "13.0"
    h100, rtx = snap.gpus
    assert (h100.index, h100.name, h100.total_bytes) == (0, "NVIDIA H100 80GB HBM3", 81559 * MIB)
    assert h100.used_bytes + h100.free_bytes == h100.total_bytes
    assert (h100.sm_clock_mhz, h100.mem_clock_mhz, h100.temperature_c) == (1980, 2619, 31)
    assert h100.power_limit_w == 700.0 and h100.power_draw_w == 70.0
    assert (h100.pcie_gen, h100.pcie_width) == (5, 16)
    assert h100.nvlink_active_links == 18
    assert h100.self_used_bytes == 12 * 1024 * MIB
    assert h100.others_used_bytes == 7 * 1024 * MIB
    assert rtx.nvlink_active_links is None  # NotSupported is "no NVLink", not an error
    assert rtx.self_used_bytes is None and rtx.processes == ()
    assert snap.status.startswith("2 GPUs: NVIDIA H100 80GB HBM3")


def test_own_backend_is_shut_down_and_a_passed_one_stays_open():
    fake = two_gpus()
    backend = NvmlBackend(fake)
    read_devices(backend)
    read_devices(backend)
    assert fake.init_calls == 1 and fake.initialized
    backend.shutdown()
    assert fake.shutdown_calls == 1 and not fake.initialized
    backend.shutdown()  # idempotent: never nvmlShutdown without init
    assert fake.shutdown_calls == 1


def test_library_not_found_at_init_is_a_status_line_and_no_shutdown():
    fake = FakeNvml(init_error="LibraryNotFound")
    snap = read_devices(NvmlBackend(fake))
    assert not snap.ok and snap.gpus == ()
    assert snap.status == NO_DRIVER
    assert fake.shutdown_calls == 0


def test_driver_not_loaded_and_other_init_errors():
    assert read_devices(NvmlBackend(FakeNvml(init_error="DriverNotLoaded"))).status.startswith(
        "No NVIDIA driver found (Driver Not Loaded)")
    snap = read_devices(NvmlBackend(FakeNvml(init_error="NoPermission")))
    assert snap.status.startswith("NVML could not start (Insufficient Permissions)")


@pytest.mark.parametrize("after_calls", [0, 3, 12, 30])
def test_driver_vanishing_mid_read_is_a_status_line(after_calls):
    fake = two_gpus()
    backend = NvmlBackend(fake)
    assert read_devices(backend).ok
    fake.lose_gpu(after_calls=after_calls)
    snap = read_devices(backend)  # must not raise
    assert not snap.ok
    assert snap.status == "NVIDIA driver stopped answering (GPU is lost) — estimates use the catalog"
    assert not backend.initialized  # the next read starts over


def test_no_gpus_behind_a_driver():
    snap = read_devices(NvmlBackend(FakeNvml([])))
    assert not snap.ok and "no GPU" in snap.status


def test_device_memory_finds_the_gpu_by_uuid_and_counts_other_processes():
    backend = NvmlBackend(two_gpus())
    # this process is listed on GPU 0: others are the rest of the list
    assert device_memory(backend, None, 0) == (20 * 1024 * MIB, 7 * 1024 * MIB)
    # nothing listed on the 4090: nobody else is using it
    assert device_memory(backend, "GPU-4090") == (300 * MIB, 0)
    assert device_memory(NvmlBackend(FakeNvml(init_error="LibraryNotFound"))) == (None, None)
    assert find_gpu(read_devices(backend), "GPU-missing", 5) is None


def test_device_memory_in_a_container():
    # NVML lists host PIDs: one process it must be this one; two make "others" unknown
    one = FakeNvml([FakeGpu(used_bytes=5000 * MIB, processes=[(999_999, 4000 * MIB)])])
    assert device_memory(NvmlBackend(one)) == (5000 * MIB, 0)
    two = FakeNvml([FakeGpu(used_bytes=5000 * MIB, processes=[(999_998, 4000 * MIB), (999_999, 10 * MIB)])])
    assert device_memory(NvmlBackend(two)) == (5000 * MIB, None)


def test_real_pynvml_without_a_driver():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present")
    snap = read_devices()
    assert snap.status == NO_DRIVER and not snap.ok


def test_probe_modules_import_no_torch_pynvml_or_qt():
    import subprocess
    import sys
    modules = ("runner", "command", "fake_nvml", "nvml", "benchmarks", "trial", "trial_model", "extrapolate",
               "isolated")
    code = ("import sys, napkin_gui.core.calibration\n"
            + "".join(f"import napkin_gui.probe.{m}\n" for m in modules) +
            "bad = [m for m in ('torch', 'pynvml', 'PySide6', 'transformers', 'peft') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
