"""ProbeWorker in a QThread and the NVML poller: signals only, fake NVML, no sleeps."""
import pytest

pytest.importorskip("pytestqt")

from napkin_gui.probe.benchmarks import BenchSizes  # noqa: E402
from napkin_gui.probe.fake_nvml import MIB, FakeGpu, FakeNvml  # noqa: E402
from napkin_gui.probe.nvml import NvmlBackend  # noqa: E402
from napkin_gui.ui.probe_worker import NvmlPoller, ProbeWorker, start_in_thread  # noqa: E402

NO_DRIVER = "No NVIDIA driver found (NVML Shared Library Not Found) — estimates use the catalog"
TINY = BenchSizes(matmul_shapes=((32, 32, 32),), dtypes=("fp32",), copy_bytes=2**16, host_bytes=0,
                  launch_kernels=10, budget_seconds=0.005)


def no_driver() -> NvmlBackend:
    return NvmlBackend(FakeNvml(init_error="LibraryNotFound"))


def run_worker(qtbot, worker: ProbeWorker, signal: str):
    progress, nvml = [], []
    worker.progress.connect(lambda f, t: progress.append((f, t)))
    worker.nvml_updated.connect(nvml.append)
    with qtbot.waitSignal(getattr(worker, signal), timeout=60_000) as blocker:
        thread = start_in_thread(worker)
    qtbot.waitUntil(thread.isFinished, timeout=10_000)
    assert thread.wait(10_000)  # the native thread has exited: now the QThread may be dropped
    return blocker.args[0], progress, nvml


def test_no_driver_fails_with_the_status_line(qtbot):
    worker = ProbeWorker(nvml_backend=no_driver())
    failed = []
    worker.finished.connect(failed.append)  # must not fire
    message, progress, nvml = run_worker(qtbot, worker, "failed")
    assert message == NO_DRIVER and failed == []
    assert len(nvml) == 1 and nvml[0].status == NO_DRIVER
    assert progress[0] == (0.0, "reading NVML")


def test_cpu_probe_finishes_with_a_profile(qtbot):
    pytest.importorskip("torch")
    worker = ProbeWorker(device="cpu", nvml_backend=no_driver(), bench_sizes=TINY)
    result, progress, _ = run_worker(qtbot, worker, "finished")
    assert result.ok and result.profile.device == "cpu"
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_cancel_fails_with_cancelled(qtbot):
    pytest.importorskip("torch")
    worker = ProbeWorker(device="cpu", nvml_backend=no_driver(), bench_sizes=TINY)
    worker.cancel()
    message, _, _ = run_worker(qtbot, worker, "failed")
    assert message == "probe cancelled" and worker.is_cancelled()


def test_an_exception_in_the_probe_is_a_failed_line(qtbot):
    def broken(plan, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access\nmore detail")
    message, _, _ = run_worker(qtbot, ProbeWorker(probe=broken), "failed")
    assert message == "probe failed: RuntimeError: CUDA error: an illegal memory access"


def test_nvml_poller_refreshes_and_keeps_history(qtbot):
    fake = FakeNvml([FakeGpu(used_bytes=1024 * MIB)])
    poller = NvmlPoller(NvmlBackend(fake), interval_ms=10)
    with qtbot.waitSignal(poller.updated, timeout=1000) as first:
        poller.start()
    assert first.args[0].gpus[0].used_bytes == 1024 * MIB
    fake.gpus[0].used_bytes = 2048 * MIB
    with qtbot.waitSignal(poller.updated, timeout=5000) as second:
        pass
    assert second.args[0].gpus[0].used_bytes == 2048 * MIB
    uuid = fake.gpus[0].uuid
    assert poller.history(uuid)[:1] == (1024 * MIB,) and poller.history(uuid)[-1] == 2048 * MIB
    fake.lose_gpu()
    with qtbot.waitSignal(poller.updated, timeout=5000) as lost:
        pass
    assert not lost.args[0].ok and "stopped answering" in lost.args[0].status
    poller.stop()
    assert not poller.is_active() and not fake.initialized


def test_worker_runs_the_probe_in_a_child_process(qtbot):
    pytest.importorskip("torch")
    from napkin_gui.probe.isolated import run_probe_isolated
    worker = ProbeWorker(probe=run_probe_isolated, device="cpu", bench_sizes=TINY)
    result, progress, nvml = run_worker(qtbot, worker, "finished")
    assert result.ok and result.profile.device == "cpu" and len(nvml) == 1
    assert progress[-1][0] == 1.0
