"""The efficiency factors of the step-time model, read from resources/time_efficiency.json.

Data, not code: bench/fit_time.py fits the 'fitted' block to measured runs and prints it;
'derate' holds measured achievable/datasheet ratios; 'fixed' holds sourced constants.
"""
from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from .errors import PlanError


@dataclass(frozen=True, slots=True)
class TimeEfficiency:
    """Every constant the time model prices work with (units in the names)."""

    # achievable / datasheet (used only for cards without a calibration profile)
    matmul_16bit: float
    matmul_fp32: float
    memory_bandwidth: float
    host_link: float
    # fitted to measured steps
    matmul_efficiency: float          # training-shaped GEMMs vs the 8192^3 benchmark
    matmul_launch_seconds: float      # device time a GEMM costs beyond its roofline
    attention_efficiency: float       # flash/memory-efficient attention vs the GEMM rate
    elementwise_efficiency: float     # elementwise kernels vs the device-copy bandwidth
    host_launch_seconds: float        # one op dispatched from Python (forward, optimizer)
    host_autograd_launch_seconds: float  # one op run by the autograd engine (backward)
    host_module_seconds: float        # one nn.Module __call__ (hooks, peft/bnb wrappers)
    host_quant_call_seconds: float    # Python of one bitsandbytes 4-bit matmul call
    host_checkpoint_seconds: float    # torch.utils.checkpoint bookkeeping per block
    overlap_exponent: float           # soft max of host and device time (inf = hard max)
    # fixed, with sources in the JSON
    device_kernel_seconds: float
    collective_efficiency_nvlink: float
    collective_efficiency_pcie: float
    collective_latency_seconds: float
    comm_overlap: float
    cpu_adam_params_per_second: float
    # share of a phase's device time that OffloadActivations' PCIe copies hide behind (0..1)
    activation_offload_forward_overlap: float
    activation_offload_backward_overlap: float
    unsloth_offload_forward_overlap: float      # UnslothCheckpointFunction's copies, likewise
    unsloth_offload_backward_overlap: float


def _resource_text() -> str:
    try:
        return importlib.resources.files("napkin_gui.resources").joinpath("time_efficiency.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).parents[2] / "resources" / "time_efficiency.json").read_text("utf-8")


def parse_time_efficiency(data: dict) -> TimeEfficiency:
    """TimeEfficiency from the decoded JSON; PlanError naming a missing or bad field."""
    merged: dict[str, float] = {}
    for block in ("derate", "fitted", "fixed"):
        merged.update(data.get(block, {}))
    values = {}
    for f in fields(TimeEfficiency):
        value = merged.get(f.name)
        if f.name.endswith(("_forward_overlap", "_backward_overlap")):   # a share: 0 (exposed) to 1 (hidden)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise PlanError(f"time_efficiency.json: {f.name}: must be a number from 0 to 1, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise PlanError(f"time_efficiency.json: {f.name}: must be a positive number, got {value!r}")
        values[f.name] = float(value)
    return TimeEfficiency(**values)


@lru_cache(maxsize=1)
def time_efficiency() -> TimeEfficiency:
    """The shipped constants (read once)."""
    try:
        data = json.loads(_resource_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PlanError(f"time_efficiency.json: cannot read: {err}") from None
    return parse_time_efficiency(data)
