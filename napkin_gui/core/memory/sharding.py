"""How FSDP / ZeRO split model state over GPUs, and what CPU offload moves to the host.

ZeRO stages (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models"): stage 2 partitions gradients and optimizer states, stage 3 (and FSDP
FULL_SHARD, torch.distributed.fsdp) also the parameters, which are all-gathered one unit
(decoder layer) at a time, with the next unit prefetched (FSDP forward/backward_prefetch).
ZeRO-Offload (Ren et al. 2021) keeps optimizer states (and fp32 masters) in host memory and
runs the update there; ZeRO-Infinity / FSDP CPUOffload also park the parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..plan import Plan
from . import distributed, fsdp_mixed_precision
from .model_state import ModelState

# DeepSpeed ZeRO-2 default reduce_bucket_size = 5e8 elements; FSDP reduce-scatters one
# layer's gradients at a time (counted from the layer sizes instead, distributed.py).
ZERO2_REDUCE_BUCKET_ELEMENTS = 500_000_000


@dataclass(frozen=True, slots=True)
class GpuState:
    """Model state one GPU holds, after sharding and offload."""

    weights_bytes: int
    adapter_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    optimizer_temp_bytes: int
    gather_bytes: int         # all-gathered layer weights (FSDP / ZeRO-3), distributed.gathered_bytes
    grad_bucket_bytes: int    # unsharded gradients awaiting reduce-scatter, distributed.reduce_buffer_bytes
    host_bytes: int           # CPU RAM for offloaded state
    managed_bytes: int        # paged optimizer states (CUDA managed memory)
    per_layer_gradient_bytes: tuple[int, ...]
    head_gradient_bytes: int
    ddp_bucket_bytes: int = 0  # DDP all-reduce buckets, alive all run (distributed.ddp_bucket_bytes)
    # the FSDP root unit's unsharded gradients (distributed.root_gradients)
    root_gradients: distributed.RootGradients = distributed.RootGradients(0, 0, 0)
    paged_tensor_bytes: int = 0   # of managed_bytes, what one tensor's update needs on the card


def _split(nbytes: int, n: int) -> int:
    return -(-nbytes // n)


def gpu_state(state: ModelState, plan: Plan) -> GpuState:
    """Divide the plan's model state over plan.n_gpus per plan.sharding and plan.offload."""
    n = plan.n_gpus
    shard_params = plan.sharding in ("fsdp", "zero3")
    shard_grads = plan.sharding != "none"
    weights = _split(state.weights_bytes, n) if shard_params else state.weights_bytes
    adapters = _split(state.adapter_bytes, n) if shard_params else state.adapter_bytes
    grads = _split(state.gradient_bytes, n) if shard_grads else state.gradient_bytes
    states = _split(state.optimizer_state_bytes, n) if shard_grads else state.optimizer_state_bytes
    temp = _split(state.optimizer_temp_bytes, n) if shard_grads else state.optimizer_temp_bytes
    # what data parallelism adds beyond the shard: gathered units, reduce buffers, DDP buckets
    # (distributed.py, one place for each mechanism)
    biggest_layer = max(state.per_layer_weight_bytes, default=0)
    root = max(0, state.weights_bytes - sum(state.per_layer_weight_bytes))
    unit_grads = max(state.per_layer_gradient_bytes, default=0)
    head_grads, lm_head_grads = state.head_gradient_bytes, state.lm_head_gradient_bytes
    low_precision_shard = 0
    if fsdp_mixed_precision.uses_fsdp_mixed(plan):
        # FSDP MixedPrecision(param_dtype=bf16): units are gathered and their gradients
        # produced and reduced in bf16 over fp32 shards (fsdp_mixed_precision.py)
        low_precision_shard = fsdp_mixed_precision.low_precision_shard_bytes(plan, _split(biggest_layer, n))
        gathered, reduced = fsdp_mixed_precision.gathered_fraction(plan), fsdp_mixed_precision.reduce_fraction(plan)
        biggest_layer, root = int(biggest_layer * gathered), int(root * gathered)
        unit_grads, head_grads, lm_head_grads = (int(unit_grads * reduced), int(head_grads * reduced),
                                                 int(lm_head_grads * reduced))
    gather = distributed.gathered_bytes(plan, biggest_layer, root)
    gather += low_precision_shard if distributed.streams_units(plan) else 0
    bytes_per_grad = state.gradient_bytes / max(state.trainable_params, 1)
    zero2_bucket = min(state.gradient_bytes, int(ZERO2_REDUCE_BUCKET_ELEMENTS * bytes_per_grad))
    bucket = distributed.reduce_buffer_bytes(plan, unit_grads, zero2_bucket)
    ddp = distributed.ddp_bucket_bytes(plan, state.gradient_bytes)
    root_grads = distributed.root_gradients(plan, head_grads, lm_head_grads, root, unit_grads)
    host = 0
    if plan.offload in ("optimizer", "optimizer+params"):
        host += states + grads
        states, temp, grads = 0, 0, 0
    if plan.offload == "optimizer+params":
        # FSDP CPUOffload(offload_params=True) / ZeRO offload_param park every sharded
        # parameter on the host, the trainable adapters included
        host += weights + adapters
        weights = adapters = 0
    managed = paged_tensor = 0
    if state.optimizer_states_paged:
        managed, states = states, 0
        # the largest tensor's states, split like the states (0 when offloaded: managed is 0)
        paged_tensor = min(managed, _split(state.paged_tensor_bytes, n) if shard_grads else state.paged_tensor_bytes)
    per_layer = tuple(_split(g, n) if shard_grads else g for g in state.per_layer_gradient_bytes)
    if plan.offload != "none":
        per_layer = tuple(0 for _ in per_layer)
    head = _split(state.head_gradient_bytes, n) if shard_grads else state.head_gradient_bytes
    return GpuState(weights, adapters, grads, states, temp, gather, bucket, host, managed,
                    per_layer, 0 if plan.offload != "none" else head, ddp, root_grads, paged_tensor)
