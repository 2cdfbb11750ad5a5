"""run_probe in a spawned child process: results, progress and failures cross back."""
import pytest

pytest.importorskip("torch")

from napkin_gui.probe.benchmarks import BenchSizes  # noqa: E402
from napkin_gui.probe.isolated import run_probe_isolated  # noqa: E402

TINY = BenchSizes(matmul_shapes=((32, 32, 32),), dtypes=("fp32",), copy_bytes=2**16, host_bytes=0,
                  launch_kernels=10, budget_seconds=0.005)


def test_cpu_self_test_in_a_child_process():
    seen, snaps = [], []
    result = run_probe_isolated(device="cpu", bench_sizes=TINY, progress=lambda f, t: seen.append(f),
                                nvml_snapshot=snaps.append)
    assert result.ok and result.profile.device == "cpu"
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(snaps) == 1 and snaps[0] == result.nvml


def test_cancel_and_a_dying_child_are_status_lines():
    result = run_probe_isolated(device="cpu", bench_sizes=TINY, should_stop=lambda: True)
    assert result.cancelled and result.status == "probe cancelled"
    result = run_probe_isolated(device="cpu", no_such_argument=1)  # TypeError in the child
    assert not result.ok and result.status == "probe process ended unexpectedly (exit code 1)"
