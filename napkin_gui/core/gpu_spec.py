"""One GPU model of the catalog (resources/gpus.json), as the memory and time models see it."""
from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """A card: capacity, peak throughputs, links and price. Units in the names.

    memory_bytes is what NVML/torch report as total (e.g. H100 80GB HBM3: 81,559 MiB
    on the board, 81,079 MiB visible to CUDA); throughputs are dense (no sparsity) peaks
    from the vendor's datasheet unless a calibration profile replaced them.
    """

    id: str
    name: str
    vendor: str
    architecture: str
    memory_bytes: int
    bf16_tflops: float
    fp16_tflops: float
    fp32_tflops: float
    tf32_tflops: float
    int8_tops: float
    memory_bandwidth_gbps: float
    host_link: str
    host_bandwidth_gbps: float
    interconnect: str
    interconnect_gbps: float
    price_usd_per_hour: float
    price_source: str = ""
    price_date: str = ""
    nvml_names: tuple[str, ...] = ()
    # CUDA context + library modules that NVML shows on top of torch's reserved memory
    cuda_context_bytes: int = 1251 * MIB
    # cuBLAS workspaces torch allocates through its caching allocator (counted in
    # memory_allocated): one per (handle, stream); forward and autograd threads use two.
    cublas_workspace_bytes: int = 64 * MIB
    form_factor: str = ""
    notes: str = ""
    # True when a probe calibration replaced the datasheet throughputs with measured ones
    # (then they are achievable rates, not peaks: the time model skips its datasheet derate)
    calibrated: bool = False
    # Appended for the catalog (resources/gpus.json) and the probe; defaults keep old callers working.
    # "9.0" for NVIDIA (torch major.minor), the gfx target ("gfx942") for AMD; "" unknown
    compute_capability: str = ""
    # streaming multiprocessors (NVIDIA) or compute units (AMD); 0 unknown
    sms: int = 0
    # dense fp8 tensor TFLOP/s (fp32 accumulate on GeForce); 0.0: no fp8 tensor cores
    fp8_tflops: float = 0.0
    memory_type: str = ""  # "HBM3", "GDDR6X", ...
    # board total NVML reports (H100 SXM: 81,559 MiB vs 81,079 MiB CUDA-visible); 0 unknown.
    # cuda_context_bytes follows the groundtruth definition (NVML used - torch reserved), which
    # includes the driver reserve outside CUDA's total: reserved + context <= this is the fit.
    nvml_memory_bytes: int = 0
