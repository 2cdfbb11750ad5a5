"""Short micro-benchmarks of the local device: what the time model's rooflines really are.

Matmul TFLOP/s per dtype at training shapes, device copy bandwidth, pinned host<->device
bandwidth, kernel launch overhead, and the memory the CUDA context and cuBLAS workspaces
take. The approach follows shared/groundtruth/measure.py (microbench, environment). Each
measurement has a time budget; the whole run takes seconds. torch is imported inside the
functions. With device="cpu" the same code runs as a labelled self-test (tests, no GPU).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

Progress = Callable[[float, str], None]
StopCheck = Callable[[], bool]
# () -> (bytes used on the device, bytes other processes use); Nones if unknown (nvml.device_memory)
NvmlUsed = Callable[[], tuple[int | None, int | None]]

MIB = 2**20


@dataclass(frozen=True, slots=True)
class BenchSizes:
    """Problem sizes and per-measurement time budget.

    Matmul shapes (tokens m, k, n): an 8B-class decoder at batch 4 x 2048 tokens
    (hidden 4096, MLP 14336): MLP up/gate, MLP down, attention projection.
    """

    matmul_shapes: tuple[tuple[int, int, int], ...] = ((8192, 4096, 14336), (8192, 14336, 4096),
                                                       (8192, 4096, 4096))
    dtypes: tuple[str, ...] = ("bf16", "fp16", "tf32", "fp32")
    copy_bytes: int = 1024 * MIB
    host_bytes: int = 512 * MIB
    launch_kernels: int = 2000
    budget_seconds: float = 0.4


# A CPU self-test: the same code paths at sizes a 2-core machine runs in well under a second.
CPU_SIZES = BenchSizes(matmul_shapes=((128, 128, 256),), dtypes=("bf16", "fp32"),
                       copy_bytes=8 * MIB, host_bytes=0, launch_kernels=200, budget_seconds=0.03)


@dataclass(frozen=True, slots=True)
class BenchmarkResult:
    """Measured figures; None where a measurement was skipped (see notes)."""

    device: str                      # "cuda:0" or "cpu"
    device_name: str
    matmul_tflops: tuple[tuple[str, float], ...]
    memory_bandwidth_gbps: float | None  # device copy, read + write counted
    h2d_gbps: float | None
    d2h_gbps: float | None
    kernel_launch_us: float | None
    cuda_context_bytes: int | None
    cublas_workspace_bytes: int | None
    total_memory_bytes: int | None
    seconds: float
    compute_capability: str | None = None
    sms: int | None = None
    uuid: str | None = None  # "GPU-..." as NVML spells it
    cancelled: bool = False
    notes: tuple[str, ...] = ()

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def run_benchmarks(device: str = "cuda", sizes: BenchSizes | None = None,
                   progress: Progress | None = None, should_stop: StopCheck | None = None,
                   nvml_used: NvmlUsed | None = None) -> BenchmarkResult:
    """Run every micro-benchmark on `device` ("cuda", "cuda:1", "cpu"); torch must import."""
    import torch

    t_start = time.perf_counter()
    progress = progress or (lambda f, t: None)
    should_stop = should_stop or (lambda: False)
    dev = torch.device(device)
    is_cuda = dev.type == "cuda"
    if is_cuda and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    sizes = sizes or (BenchSizes() if is_cuda else CPU_SIZES)
    notes: list[str] = [] if is_cuda else ["CPU self-test: these are CPU figures, not a GPU's"]
    used_before = nvml_used()[0] if (is_cuda and nvml_used and not torch.cuda.is_initialized()) else None
    if is_cuda:
        torch.cuda.set_device(dev)
        torch.zeros(1, device=dev)  # create the context
    props = torch.cuda.get_device_properties(dev) if is_cuda else None
    name = props.name if props is not None else "CPU"
    out: dict[str, Any] = {}
    steps = [("cuBLAS workspace", _cublas_workspace_bytes), ("matmul", _matmul_tflops),
             ("device copy", _copy_gbps), ("host copies", _host_gbps), ("kernel launch", _launch_us)]
    cancelled = False
    for i, (label, fn) in enumerate(steps):
        if should_stop():
            cancelled = True
            break
        progress(i / len(steps), f"benchmark: {label}")
        try:
            out.update(fn(torch, dev, sizes, should_stop))
        except torch.OutOfMemoryError:
            notes.append(f"{label}: out of memory, skipped")
        except RuntimeError as err:
            notes.append(f"{label}: {str(err).strip().splitlines()[0] if str(err).strip() else 'failed'}")
        _free(torch, is_cuda)
    context = _context_bytes(torch, dev, nvml_used, used_before, notes) if is_cuda else None
    progress(1.0, "benchmarks done")
    return BenchmarkResult(
        device=str(dev), device_name=name, matmul_tflops=tuple(out.get("matmul", ())),
        memory_bandwidth_gbps=out.get("copy"), h2d_gbps=out.get("h2d"), d2h_gbps=out.get("d2h"),
        kernel_launch_us=out.get("launch"), cuda_context_bytes=context,
        cublas_workspace_bytes=out.get("cublas"),
        total_memory_bytes=int(props.total_memory) if props is not None else None,
        seconds=time.perf_counter() - t_start, cancelled=cancelled, notes=tuple(notes),
        compute_capability=f"{props.major}.{props.minor}" if props is not None else None,
        sms=int(props.multi_processor_count) if props is not None else None,
        uuid=cuda_uuid(torch, dev) if is_cuda else None)


def cuda_uuid(torch: Any, dev: Any) -> str | None:
    """The device's UUID as NVML writes it ("GPU-xxxxxxxx-..."), to find its NVML entry."""
    uuid = getattr(torch.cuda.get_device_properties(dev), "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith("GPU-") else f"GPU-{text}"


def _sync(torch: Any, dev: Any) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _free(torch: Any, is_cuda: bool) -> None:
    """Hand freed blocks back to the driver between benchmarks (CUDA; on CPU nothing to do)."""
    if is_cuda:
        import gc
        gc.collect()
        torch.cuda.empty_cache()


def _timed(torch: Any, dev: Any, fn: Callable[[], Any], budget: float, should_stop: StopCheck,
           warmup: int = 2, min_iters: int = 3) -> tuple[int, float]:
    """Run fn until `budget` seconds pass (at least min_iters); (iterations, seconds)."""
    for _ in range(warmup):
        fn()
    _sync(torch, dev)
    iters, t0 = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        if iters >= min_iters and (iters % 4 == 0 or iters == min_iters):
            _sync(torch, dev)
            elapsed = time.perf_counter() - t0
            if elapsed >= budget or should_stop():
                return iters, elapsed


_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "tf32": "float32"}


def _matmul_tflops(torch: Any, dev: Any, sizes: BenchSizes, should_stop: StopCheck) -> dict[str, Any]:
    """TFLOP/s = 2*m*k*n per matmul, summed over the shapes, over the time they took."""
    rates = []
    for dtype in sizes.dtypes:
        if dtype == "tf32" and dev.type != "cuda":
            continue  # TF32 is a tensor-core mode of NVIDIA GPUs
        if should_stop():
            break
        with _tf32(torch, dtype == "tf32"):
            flops = seconds = 0.0
            for m, k, n in sizes.matmul_shapes:
                td = getattr(torch, _TORCH_DTYPES[dtype])
                a = torch.randn(m, k, device=dev, dtype=td)
                b = torch.randn(k, n, device=dev, dtype=td)
                c = torch.empty(m, n, device=dev, dtype=td)
                iters, elapsed = _timed(torch, dev, lambda: torch.matmul(a, b, out=c),
                                        sizes.budget_seconds / len(sizes.matmul_shapes), should_stop)
                flops += 2.0 * m * k * n * iters
                seconds += elapsed
                del a, b, c
        rates.append((dtype, flops / seconds / 1e12))
    return {"matmul": rates}


class _tf32:
    """Context manager: TF32 tensor cores for fp32 matmuls on or off, restored on exit."""

    def __init__(self, torch: Any, enabled: bool) -> None:
        self.m = torch.backends.cuda.matmul
        self.enabled = enabled

    def __enter__(self) -> None:
        if hasattr(self.m, "fp32_precision"):  # torch >= 2.9
            self.saved = self.m.fp32_precision
            self.m.fp32_precision = "tf32" if self.enabled else "ieee"
        else:
            self.saved = self.m.allow_tf32
            self.m.allow_tf32 = self.enabled

    def __exit__(self, *exc: Any) -> None:
        if hasattr(self.m, "fp32_precision"):
            self.m.fp32_precision = self.saved
        else:
            self.m.allow_tf32 = self.saved


def _copy_gbps(torch: Any, dev: Any, sizes: BenchSizes, should_stop: StopCheck) -> dict[str, Any]:
    """y.copy_(x): every byte read once and written once, both counted (2 * bytes)."""
    x = torch.empty(sizes.copy_bytes, dtype=torch.uint8, device=dev)
    y = torch.empty_like(x)
    iters, elapsed = _timed(torch, dev, lambda: y.copy_(x), sizes.budget_seconds, should_stop)
    return {"copy": 2.0 * x.numel() * iters / elapsed / 1e9}


def _host_gbps(torch: Any, dev: Any, sizes: BenchSizes, should_stop: StopCheck) -> dict[str, Any]:
    """Pinned host memory <-> device, each direction alone (non_blocking copies)."""
    if dev.type != "cuda" or sizes.host_bytes <= 0:
        return {}
    x = torch.empty(sizes.host_bytes, dtype=torch.uint8, device=dev)
    h = torch.empty(sizes.host_bytes, dtype=torch.uint8, pin_memory=True)
    budget = sizes.budget_seconds / 2
    n, t = _timed(torch, dev, lambda: x.copy_(h, non_blocking=True), budget, should_stop, warmup=1)
    h2d = x.numel() * n / t / 1e9
    n, t = _timed(torch, dev, lambda: h.copy_(x, non_blocking=True), budget, should_stop, warmup=1)
    return {"h2d": h2d, "d2h": x.numel() * n / t / 1e9}


def _launch_us(torch: Any, dev: Any, sizes: BenchSizes, should_stop: StopCheck) -> dict[str, Any]:
    """Wall time per tiny kernel (x.add_ on one element), launched back to back."""
    x = torch.zeros(1, device=dev)

    def burst() -> None:
        for _ in range(sizes.launch_kernels):
            x.add_(1.0)

    iters, elapsed = _timed(torch, dev, burst, sizes.budget_seconds, should_stop, warmup=1, min_iters=1)
    return {"launch": elapsed / (iters * sizes.launch_kernels) * 1e6}


def _cublas_workspace_bytes(torch: Any, dev: Any, sizes: BenchSizes, should_stop: StopCheck) -> dict[str, Any]:
    """memory_allocated growth over a forward matmul (into a preallocated output) plus its
    backward on autograd's device thread, minus the tensors that step creates: the cuBLAS
    workspaces torch's caching allocator holds for a training step (one per handle+stream).
    """
    if dev.type != "cuda":
        return {}
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()  # else a second probe in this process would see them already allocated
    torch.cuda.empty_cache()
    n = 512  # [512, 512] bf16 = 512 KiB: a multiple of the allocator's 512-byte rounding
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    w = torch.randn(n, n, device=dev, dtype=torch.bfloat16, requires_grad=True)
    c = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
    g = torch.ones(n, n, device=dev, dtype=torch.bfloat16)
    torch.cuda.synchronize(dev)
    base = torch.cuda.memory_allocated(dev)
    with torch.no_grad():
        torch.matmul(a, w, out=c)
    torch.cuda.synchronize(dev)
    forward = torch.cuda.memory_allocated(dev) - base
    y = a @ w
    y.backward(g)  # dW = a^T @ g on the autograd engine's CUDA thread (its own cuBLAS handle)
    del y
    torch.cuda.synchronize(dev)
    grad_bytes = w.grad.numel() * w.grad.element_size()
    total = torch.cuda.memory_allocated(dev) - base - grad_bytes
    del a, w, c, g
    return {"cublas": max(total, forward, 0)}


def _context_bytes(torch: Any, dev: Any, nvml_used: NvmlUsed | None, used_before: int | None,
                   notes: list[str]) -> int | None:
    """NVML's used memory of the device, minus other processes' and torch's reserved memory:
    the CUDA context, loaded kernels, library handles and the driver's reserve, as
    shared/groundtruth/measure.py measured it (ctx_nvml_used_mib_after_init - torch reserved)."""
    if nvml_used is None:
        notes.append("CUDA context size: NVML unavailable, not measured")
        return None
    torch.cuda.synchronize(dev)
    device_used, others = nvml_used()
    reserved = torch.cuda.memory_reserved(dev)
    if device_used is not None and others is not None:
        return max(0, device_used - others - reserved)
    if device_used is not None and used_before is not None:
        notes.append("CUDA context size from the device's used memory before/after CUDA init "
                     "(other processes share the GPU; the driver's own reserve is not included)")
        return max(0, device_used - used_before - reserved)
    notes.append("CUDA context size: other processes share this GPU, not measured")
    return None
