"""Traffic between GPUs (data parallel, FSDP / ZeRO) and over the host link (CPU offload).

Ring collectives move (n-1)/n of the tensor per GPU for all-gather and reduce-scatter and
twice that for all-reduce (Patarasuk & Yuan 2009; NCCL's bus-bandwidth convention,
nccl-tests doc/PERFORMANCE.md). What moves per step, by strategy:
- DDP (sharding none, n > 1): all-reduce of the gradients in buckets during the backward of
  the last micro-batch of a step (accelerate/DDP skip the sync on the others with no_sync()).
- ZeRO-2: reduce-scatter of the gradients each micro-batch, all-gather of the updated
  trainable parameters after the step (DeepSpeed stage_1_and_2.py).
- FSDP FULL_SHARD / ZeRO-3: all-gather of each unit's weights in forward and again in
  backward, reduce-scatter of the gradients (torch.distributed.fsdp; Zhao et al. 2023).
- CPU offload of the optimizer: gradients to the host, the update on the CPU, updated
  parameters back (ZeRO-Offload, Ren et al. 2021); of the parameters too: each unit's
  weights come over the host link for forward and backward (FSDP CPUOffload).
"""
from __future__ import annotations

from typing import NamedTuple

from .gpu_spec import GpuSpec
from .plan import Plan
from .time_efficiency import TimeEfficiency

NVLINK_LIKE = ("nvlink", "infinity-fabric")


class LinkTraffic(NamedTuple):
    """What one GPU moves under a plan's GPU count, sharding and offload, before a card's link
    rates price it: floats for one plan, or float64 arrays with one element per row
    (compare_hardware: rows differ in GPU count and sharding)."""

    forward_bytes: float           # GPU-GPU per micro-batch, overlapping the forward
    backward_bytes: float          # GPU-GPU per micro-batch, overlapping the backward
    step_bytes: float              # GPU-GPU per optimizer step
    collective_calls: float        # per micro-batch, each paying the ring latency
    offload_step_bytes: float      # host link per optimizer step: gradients down, parameters up
    offload_update_params: float   # parameters the CPU updates per optimizer step
    offload_phase_bytes: float     # host link per forward and per backward: offloaded weights
    shards: float                  # GPUs that split the optimizer state and its update (1 unsharded)


class CommSeconds(NamedTuple):
    """Seconds of link traffic per GPU, by where it can hide behind compute (floats, or arrays
    like LinkTraffic's; a NamedTuple like time_model.PhaseSeconds: made on every step_time)."""

    forward: float        # per micro-batch, overlaps the forward
    backward: float       # per micro-batch, overlaps the backward
    step: float           # per optimizer step, exposed (after the backward, around the update)


def interconnect_bytes_per_second(gpu: GpuSpec, eff: TimeEfficiency) -> float:
    """Achievable per-direction GPU-GPU bandwidth: half the catalog's bidirectional figure."""
    fast = gpu.interconnect.startswith(NVLINK_LIKE)
    link = gpu.interconnect_gbps if gpu.interconnect != "none" else 2 * gpu.host_bandwidth_gbps
    factor = eff.collective_efficiency_nvlink if fast else eff.collective_efficiency_pcie
    return link / 2 * 1e9 * factor


def host_bytes_per_second(gpu: GpuSpec, eff: TimeEfficiency) -> float:
    """Achievable pinned host<->device bandwidth per direction."""
    bw = gpu.host_bandwidth_gbps * 1e9
    return bw if gpu.calibrated else bw * eff.host_link


def _collectives(plan: Plan, weights_bytes: int, grad_bytes: int, trainable_bytes: int,
                 layers: int) -> tuple[float, float, float, int]:
    """(forward, backward, per-step) bytes per GPU over the interconnect, and collective calls."""
    n = plan.n_gpus
    if n <= 1:
        return 0.0, 0.0, 0.0, 0
    f = (n - 1) / n
    if plan.sharding in ("fsdp", "zero3"):
        return f * weights_bytes, f * (weights_bytes + grad_bytes), 0.0, 3 * layers
    if plan.sharding == "zero2":
        return 0.0, f * grad_bytes, f * trainable_bytes, layers + 1
    # DDP: bucketed all-reduce during the last micro-batch's backward (averaged per micro-batch)
    return 0.0, 2 * f * grad_bytes / plan.grad_accum, 0.0, layers


def link_traffic(plan: Plan, weights_bytes: int, grad_bytes: int, trainable_params: int,
                 layers: int, collective_weights_bytes: float | None = None,
                 collective_grad_bytes: float | None = None) -> LinkTraffic:
    """Bytes per GPU over the interconnect and the host link for one micro-batch and one step.

    weights_bytes: the whole model's weights as stored (NF4 for QLoRA) + adapters;
    grad_bytes: all trainable gradients; trainable_params: for the offloaded update;
    collective_*: what the all-gathers / reduce-scatters move when that differs from the
    stored bytes (FSDP mixed precision gathers and reduces bf16 over fp32 shards).
    """
    gathered = weights_bytes if collective_weights_bytes is None else collective_weights_bytes
    reduced = grad_bytes if collective_grad_bytes is None else collective_grad_bytes
    fwd, bwd, step, calls = _collectives(plan, gathered, reduced, reduced, layers)
    n = plan.n_gpus if plan.sharding != "none" else 1
    step_bytes = update_params = phase_bytes = 0.0
    if plan.offload != "none":
        update_params = trainable_params / n
        per_param = grad_bytes / max(trainable_params, 1)
        # grads down, updated params up (16-bit copies of fp32 masters), CPU Adam in between
        step_bytes = update_params * per_param + update_params * min(per_param, 2)
    if plan.offload == "optimizer+params":
        phase_bytes = weights_bytes / n
    return LinkTraffic(fwd, bwd, step, calls, step_bytes, update_params, phase_bytes, n)


def comm_seconds(traffic: LinkTraffic, link_bytes_per_second: float, host_bytes_per_second: float,
                 eff: TimeEfficiency) -> CommSeconds:
    """Link seconds per GPU for one micro-batch (forward, backward) and per optimizer step.

    Plain arithmetic, no branch: floats price one plan on one card, arrays every row of
    compare_hardware at once (rates from interconnect_bytes_per_second / host_bytes_per_second).
    """
    link, host = link_bytes_per_second, host_bytes_per_second
    latency = traffic.collective_calls * eff.collective_latency_seconds
    fwd, bwd = traffic.forward_bytes / link, traffic.backward_bytes / link + latency
    step = traffic.step_bytes / link
    step_host = traffic.offload_step_bytes / host + traffic.offload_update_params / eff.cpu_adam_params_per_second
    phase_host = traffic.offload_phase_bytes / host
    return CommSeconds(forward=fwd + phase_host, backward=bwd + phase_host, step=step + step_host)
