"""Micro-benchmarks on the CPU with tiny sizes, and the CUDA-only arithmetic with a fake torch."""
from types import SimpleNamespace

import pytest

from napkin_gui.probe import benchmarks
from napkin_gui.probe.benchmarks import BenchSizes, run_benchmarks

TINY = BenchSizes(matmul_shapes=((32, 64, 48), (16, 16, 16)), dtypes=("bf16", "tf32", "fp32"),
                  copy_bytes=2**16, host_bytes=2**16, launch_kernels=20, budget_seconds=0.01)


def test_cpu_run_measures_and_labels_cpu_figures():
    pytest.importorskip("torch")
    seen = []
    r = run_benchmarks("cpu", TINY, progress=lambda f, t: seen.append((f, t)))
    assert r.device == "cpu" and r.device_name == "CPU" and not r.is_cuda and not r.cancelled
    rates = dict(r.matmul_tflops)
    assert set(rates) == {"bf16", "fp32"}  # TF32 is an NVIDIA tensor-core mode: skipped on CPU
    assert all(v > 0 for v in rates.values())
    assert r.memory_bandwidth_gbps > 0 and r.kernel_launch_us > 0
    # CUDA-only measurements are absent, not zero
    assert (r.h2d_gbps, r.d2h_gbps, r.cuda_context_bytes, r.cublas_workspace_bytes, r.total_memory_bytes) == (
        None, None, None, None, None)
    assert r.notes == ("CPU self-test: these are CPU figures, not a GPU's",)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1] == (1.0, "benchmarks done")
    assert r.seconds < 10


def test_cancel_stops_between_benchmarks():
    pytest.importorskip("torch")
    calls = iter(range(1000))
    r = run_benchmarks("cpu", TINY, should_stop=lambda: next(calls) >= 1)
    assert r.cancelled
    assert r.kernel_launch_us is None


def fake_torch(reserved: int):
    cuda = SimpleNamespace(synchronize=lambda dev=None: None, memory_reserved=lambda dev=None: reserved,
                           get_device_properties=lambda dev: SimpleNamespace(uuid="1234-abcd"))
    return SimpleNamespace(cuda=cuda)


def test_context_bytes_is_nvml_used_minus_others_minus_torch_reserved():
    notes = []
    torch = fake_torch(reserved=2 * 2**20)
    # env-h100.json: NVML 1100.8 MiB used right after init, torch reserved 2 MiB
    ctx = benchmarks._context_bytes(torch, "cuda:0", lambda: (5102 * 2**20, 4000 * 2**20), None, notes)
    assert ctx == 1100 * 2**20 and notes == []
    # other processes cannot be told apart: the device delta since before CUDA init
    ctx = benchmarks._context_bytes(torch, "cuda:0", lambda: (1600 * 2**20, None), 500 * 2**20, notes)
    assert ctx == 1098 * 2**20 and "before/after CUDA init" in notes[-1]
    assert benchmarks._context_bytes(torch, "cuda:0", lambda: (None, None), None, notes) is None
    assert benchmarks._context_bytes(torch, "cuda:0", None, None, notes) is None


def test_cuda_uuid_is_spelled_as_nvml_does():
    assert benchmarks.cuda_uuid(fake_torch(0), "cuda:0") == "GPU-1234-abcd"


def test_tf32_switch_restores_the_setting():
    matmul = SimpleNamespace(fp32_precision="ieee")
    torch = SimpleNamespace(backends=SimpleNamespace(cuda=SimpleNamespace(matmul=matmul)))
    with benchmarks._tf32(torch, True):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == "ieee"
    legacy = SimpleNamespace(allow_tf32=False)
    torch = SimpleNamespace(backends=SimpleNamespace(cuda=SimpleNamespace(matmul=legacy)))
    with benchmarks._tf32(torch, True):
        assert legacy.allow_tf32 is True
    assert legacy.allow_tf32 is False
