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
from .model_state import ModelState

# DeepSpeed ZeRO-2 default reduce_bucket_size = 5e8 elements; FSDP reduce-scatters one
# layer's gradients at a time (counted from the layer sizes instead).
ZERO2_REDUCE_BUCKET_ELEMENTS = 500_000_000
# gathered units alive at once: the current one and the prefetched next one
FSDP_GATHERED_UNITS = 2


@dataclass(frozen=True, slots=True)
class GpuState:
    """Model state one GPU holds, after sharding and offload."""

    weights_bytes: int
    adapter_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    optimizer_temp_bytes: int
    gather_bytes: int         # all-gathered layer weights (FSDP / ZeRO-3)
    grad_bucket_bytes: int    # unsharded gradients awaiting reduce-scatter
    host_bytes: int           # CPU RAM for offloaded state
    managed_bytes: int        # paged optimizer states (CUDA managed memory)
    per_layer_gradient_bytes: tuple[int, ...]
    head_gradient_bytes: int


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
    biggest_layer = max(state.per_layer_weight_bytes, default=0)
    # Units are brought onto the card one at a time whenever the card does not hold them whole:
    # sharded over n > 1 GPUs, or parked on the host (CPU offload) even on one GPU. With one
    # rank FSDP1 clamps FULL_SHARD to NO_SHARD (torch/distributed/fsdp/_init_utils.py
    # _init_core_state: "FSDP is switching to use NO_SHARD ... since the world size
    # is 1"), yet FlatParamHandle.pre_unshard still copies each offloaded flat parameter to the
    # device (_flat_param.py: "elif self._offload_params and self.flat_param.device !=
    # self.device: self.flat_param_to(self.device, non_blocking=True)") for the unit's forward
    # and again for its backward: the gathered layers live on the card whatever the GPU count.
    streamed = shard_params and (n > 1 or plan.offload == "optimizer+params")
    gather = FSDP_GATHERED_UNITS * biggest_layer if streamed else 0
    if plan.sharding == "fsdp" and streamed:
        # the root unit (embeddings, final norm, lm_head) stays gathered from its forward to its
        # backward: torch/distributed/fsdp/_runtime_utils.py _post_forward_reshard, "Do not free
        # the root's parameters in the post-forward for FULL_SHARD"; under NO_SHARD + offload
        # the root's device copy is what autograd saved for lm_head's input gradient.
        gather += max(0, state.weights_bytes - sum(state.per_layer_weight_bytes))
    bucket = 0
    # a unit's unsharded gradients wait on the card for their reduce-scatter (n > 1) or, on one
    # GPU under offload, for their copy to the host (FSDP1 _post_backward_hook -> _offload_grad)
    if shard_grads and (n > 1 or plan.offload != "none"):
        biggest_grads = max(state.per_layer_gradient_bytes, default=0)
        if plan.sharding == "zero2":
            bytes_per_grad = state.gradient_bytes / max(state.trainable_params, 1)
            biggest_grads = min(state.gradient_bytes, int(ZERO2_REDUCE_BUCKET_ELEMENTS * bytes_per_grad))
        bucket = biggest_grads
    host = 0
    if plan.offload in ("optimizer", "optimizer+params"):
        host += states + grads
        states, temp, grads = 0, 0, 0
    if plan.offload == "optimizer+params":
        # FSDP CPUOffload(offload_params=True) / ZeRO offload_param park every sharded
        # parameter on the host, the trainable adapters included
        host += weights + adapters
        weights = adapters = 0
    managed = 0
    if state.optimizer_states_paged:
        managed, states = states, 0
    per_layer = tuple(_split(g, n) if shard_grads else g for g in state.per_layer_gradient_bytes)
    if plan.offload != "none":
        per_layer = tuple(0 for _ in per_layer)
    head = _split(state.head_gradient_bytes, n) if shard_grads else state.head_gradient_bytes
    return GpuState(weights, adapters, grads, states, temp, gather, bucket, host, managed,
                    per_layer, 0 if plan.offload != "none" else head)
