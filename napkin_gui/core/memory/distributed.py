"""Multi-GPU device memory beyond each rank's own shard of the model state.

One place for what data parallelism adds on every card (sharding.py splits the state itself):
- FSDP gathered units: the parameters of the units brought onto the card at once, by FSDP
  version (FSDP1 FullyShardedDataParallel, FSDP2 fully_shard), and the root unit;
- gradient reduce buffers: a unit's unsharded gradients awaiting their reduce-scatter (or
  their copy to the host under CPU offload), the next unit's as it is produced, the shard out;
- the host-to-device staging copy of an offloaded shard before its all-gather;
- DDP's all-reduce buckets (a second copy of every gradient);
- NCCL's communicator buffers (outside torch's caching allocator, beside the CUDA context).

Cross-stream allocation (c10/cuda/CUDACachingAllocator.cpp): FSDP allocates gathered units on
its unshard / all-gather stream and gradient buffers on its post-backward / reduce-scatter
stream, and frees them with record_stream (FSDP1 _no_dispatch_record_stream) or an event
(FSDP2 AllGatherState / ReduceScatterState) while the compute stream still reads them. A block
so freed is not reusable until that stream's work is done: that is why a unit counts as in
flight until the next one is gathered, and why gradients of two units coexist. Blocks merely
cached by a side stream after use are released (release_cached_blocks) and the malloc retried
before an out-of-memory error is raised, so they do not decide whether a step fits and are not
counted here.

Sources (torch 2.13): torch/distributed/fsdp/_flat_param.py, _runtime_utils.py,
_limiter_utils.py, _init_utils.py (FSDP1); torch/distributed/fsdp/_fully_shard/
_fsdp_param_group.py, _fsdp_collectives.py, _fsdp_state.py (FSDP2); torch/nn/parallel/
distributed.py (DDP); NCCL src/init.cc (buffer sizes).
"""
from __future__ import annotations

from typing import NamedTuple

from ..gpu_spec import GpuSpec
from ..plan import Plan

MIB = 2**20

# FSDP1: FullyShardedDataParallel's rate limiter lets at most two all-gathers be in flight
# (_limiter_utils._FreeEventQueue, _max_num_inflight_all_gathers = 2, limit_all_gathers=True
# by default), and backward_prefetch=BACKWARD_PRE gathers the next unit before the current
# one's gradient is computed: two padded unsharded flat parameters at once.
FSDP1_UNITS_IN_FLIGHT = 2
# FSDP2: in the forward the all-gather output of the unit just copied out is kept until the
# next unit's copy-out (FSDPParamGroup._wait_all_gather_streams_on_event / AllGatherState,
# "Defer free to allow for overlap of this copy-out with next all-gather collective") while
# the next unit's all-gather output is already being filled: the current unit's unsharded
# parameters + its retained all-gather output + the next one's (foreach_all_gather_copy_out
# copies the flat output into per-parameter tensors, so both exist).
FSDP2_UNITS_IN_FLIGHT = 3
# Gradients of two units coexist in the backward: the finished unit's unsharded gradients
# wait for their reduce-scatter on the side stream (FSDP1 _reduce_grad records the padded
# unsharded grad on the post-backward stream; FSDP2 keeps one reduce_scatter_input alive,
# reduce_scatter_max_input_buffers = 1, ReduceScatterState) while the next unit's gradients
# are produced on the compute stream.
GRAD_UNITS_IN_FLIGHT = 2
# ... and at the end of a unit's backward its per-parameter gradients are copied into one
# flat gradient while both exist: FSDP1's original parameters are views of the flat
# parameter (_flat_param.py FlatParamHandle._use_unsharded_views, flat_param.split(...)
# then .view(shape)), so autograd's SplitWithSizesBackward waits for every view's gradient
# and cats them (torch/csrc/autograd/FunctionsManual.cpp split_with_sizes_backward) into
# the unsharded flat gradient that AccumulateGrad hands to _post_backward_hook; FSDP2's
# foreach_reduce copies the unsharded .grad tensors into its reduce_scatter_input
# (_fsdp_collectives.py foreach_reduce_scatter_copy_in) before it drops them. One more
# unit-sized buffer beside the two above.
FLAT_GRAD_COPY_UNITS = 1

# NCCL buffers per channel and connection (NCCL src/init.cc): DEFAULT_BUFFSIZE 4 MiB (Simple
# protocol, NCCL_BUFFSIZE), DEFAULT_LL128_BUFFSIZE = 120 elems x 640 threads x 8 steps x 8 B
# (4,800 KiB), DEFAULT_LL_BUFFSIZE = 8 lines x 512 threads x 8 steps x 16 B (512 KiB), mapped
# in 2 MiB granules of cuMem (10 MiB a channel: the 10,485,760-byte allocations of
# NVIDIA/nccl issue #1685 under NCCL_DEBUG_SUBSYS=ALLOC).
NCCL_SIMPLE_BUFFER_BYTES = 4 * MIB
NCCL_LL128_BUFFER_BYTES = 120 * 640 * 8 * 8
NCCL_LL_BUFFER_BYTES = 8 * 512 * 8 * 16
NCCL_GRANULE_BYTES = 2 * MIB
# Ring channels NCCL opens intra-node (its NCCL_DEBUG=INFO "N coll channels" line): 16 on
# 8x H100/H800 NVLink boards (NVIDIA/nccl issue #892), 2 over PCIe without NVLink. Each rank
# receives on one ring connection per channel (the send side's buffers live on the peer);
# FSDP's all-gather / reduce-scatter and DDP's all-reduce all run on the ring (runtime
# connect, NCCL >= 2.22, opens only the algorithms used).
NCCL_CHANNELS_NVLINK = 16
NCCL_CHANNELS_PCIE = 2


def fsdp_version(plan: Plan) -> int:
    """Which FSDP runs the plan's sharding 'fsdp': torchtune shards with FSDP2 fully_shard
    (torchtune/training/_distributed.py shard_model); accelerate's FullyShardedDataParallelPlugin
    defaults to fsdp_version 1 (accelerate/utils/dataclasses.py, under the HF Trainer, TRL and
    axolotl) and litgpt runs Fabric's FSDPStrategy, which wraps FullyShardedDataParallel
    (lightning/fabric/strategies/fsdp.py): FSDP1."""
    return 2 if getattr(plan, "framework", "transformers") == "torchtune" else 1


def streams_units(plan: Plan) -> bool:
    """Whether units are brought onto the card one at a time: parameters sharded over n > 1
    GPUs, or parked on the host, even on one GPU. There FSDP1 clamps FULL_SHARD to NO_SHARD
    (_init_utils._init_core_state, 'FSDP is switching to use NO_SHARD ... since the world size
    is 1') yet FlatParamHandle.pre_unshard still copies each offloaded flat parameter to the
    device (flat_param_to(self.device, non_blocking=True)) for its forward and its backward."""
    return plan.sharding in ("fsdp", "zero3") and (plan.n_gpus > 1 or plan.offload == "optimizer+params")


def units_in_flight(plan: Plan) -> int:
    """Decoder units gathered on the card at once (FSDP1 / FSDP2 / ZeRO-3)."""
    if plan.sharding == "fsdp" and fsdp_version(plan) == 2 and plan.n_gpus > 1:
        return FSDP2_UNITS_IN_FLIGHT
    # ZeRO-3 prefetches within stage3_prefetch_bucket_size; one rank of FSDP2 keeps no
    # all-gather output beside the parameters (AllGatherState only when world_size > 1)
    return FSDP1_UNITS_IN_FLIGHT


def gathered_bytes(plan: Plan, layer_bytes: int, root_bytes: int) -> int:
    """Gathered parameters on the card: units in flight x the largest unit, the root unit
    (embeddings, final norm, lm_head) from its forward to its backward, and with offloaded
    parameters over n > 1 GPUs the staging copy of the next unit's shard.

    The root: FSDP1 _post_forward_reshard, 'Do not free the root's parameters in the
    post-forward for FULL_SHARD'; FSDP2 sets the root's post_forward_mesh_info = None
    (_fsdp_state._lazy_init) so it does not reshard after forward; under NO_SHARD + offload
    the root's device copy is what autograd saved for lm_head's input gradient. ZeRO-3
    releases embeddings and lm_head after each use like any other submodule."""
    if not streams_units(plan):
        return 0
    gathered = units_in_flight(plan) * layer_bytes
    if plan.sharding == "fsdp":
        gathered += root_bytes
    if plan.offload == "optimizer+params" and plan.n_gpus > 1:
        # FSDP1 pre_unshard / FSDP2 FSDPParam.all_gather_inputs copy the CPU shard to the
        # device (non_blocking) as the all-gather's input: one shard of the unit in flight
        gathered += -(-layer_bytes // plan.n_gpus)
    return gathered


def reduce_buffer_bytes(plan: Plan, unit_grad_bytes: int, zero2_bucket_bytes: int) -> int:
    """Unsharded gradients waiting on the card for their reduce (or their copy to the host):
    GRAD_UNITS_IN_FLIGHT units + the current unit's flat copy (FLAT_GRAD_COPY_UNITS) for FSDP,
    + the reduce-scatter output shard over n > 1 GPUs
    (FSDP1 new_sharded_grad = empty_like(chunks[0]); FSDP2 reduce_output); DeepSpeed's
    reduce bucket for ZeRO-2 (reduce_bucket_size) and one layer's for ZeRO-3. ZeRO-2's bucket
    exists on one GPU too: DeepSpeedZeroOptimizer.backward (deepspeed/runtime/zero/stage_1_and_2.py)
    allocates ipg_buffer whenever contiguous_gradients is set, with no world-size check."""
    n = plan.n_gpus
    if plan.sharding == "zero2":
        return zero2_bucket_bytes
    if plan.sharding == "none" or (n == 1 and plan.offload == "none"):
        return 0
    if plan.sharding == "zero3":
        return unit_grad_bytes
    out = -(-unit_grad_bytes // n) if n > 1 else 0
    return (GRAD_UNITS_IN_FLIGHT + FLAT_GRAD_COPY_UNITS) * unit_grad_bytes + out


class RootGradients(NamedTuple):
    """The FSDP root unit's (embedding, final norm, lm_head) unsharded gradients on one GPU."""

    through_backward_bytes: int   # lm_head's weight gradient, from the loss's backward to the root's
    at_root_bytes: int            # at the root's own backward, after the first block's
    root_temp_bytes: int          # beside them then: the root's gathered parameters + one unit's
    #                               gradients still awaiting their reduce-scatter


def root_gradients(plan: Plan, root_grad_bytes: int, lm_head_grad_bytes: int, root_param_bytes: int,
                   unit_grad_bytes: int) -> RootGradients:
    """The root unit is reduced last, so its gradients stay unsharded through the backward.

    lm_head runs first in the backward, embed_tokens last, and both are in the root unit.
    FSDP1: lm_head.weight is a view of the root's flat parameter, and its gradient waits in
    the input buffer of the flat parameter's SplitWithSizesBackward until embed_tokens'
    gradient arrives (torch/csrc/autograd/input_buffer.cpp; FunctionsManual.cpp
    split_with_sizes_backward cats them): lm_head's [V, h] gradient is alive the whole
    backward, and at the end the pieces (embedding + lm_head + norm) and their flat copy
    coexist, then the reduce-scatter's output shard (_runtime_utils._reduce_grad,
    new_sharded_grad = torch.empty_like(chunks[0])). FSDP2: each parameter's .grad accumulates
    unsharded and the root's post-backward runs in the final callback
    (_fsdp_state._root_post_backward_final_callback), where foreach_reduce copies them into
    one reduce_scatter_input. The root's parameters are still gathered (never resharded after
    forward: gathered_bytes). Only FSDP units stream parameters: 0 otherwise, and 0 for LoRA
    (nothing of the root trains)."""
    if plan.sharding != "fsdp" or not streams_units(plan) or root_grad_bytes == 0:
        return RootGradients(0, 0, 0)
    out = -(-root_grad_bytes // plan.n_gpus) if plan.n_gpus > 1 else 0
    return RootGradients(lm_head_grad_bytes, 2 * root_grad_bytes + out, root_param_bytes + unit_grad_bytes)


def ddp_bucket_bytes(plan: Plan, gradient_bytes: int) -> int:
    """DistributedDataParallel's all-reduce buckets: with gradient_as_bucket_view=False (the
    default in torch and in accelerate's DistributedDataParallelKwargs) the Reducer keeps flat
    bucket tensors beside the .grad tensors, 'the saved memory size will be equal to the total
    gradients size' (torch/nn/parallel/distributed.py, gradient_as_bucket_view). Allocated at
    wrap time and alive for the whole run."""
    return gradient_bytes if plan.sharding == "none" and plan.n_gpus > 1 else 0


def nccl_channels(gpu: GpuSpec) -> int:
    """Ring channels NCCL opens between the plan's cards (NVLink-class links or PCIe)."""
    fast = gpu.interconnect.startswith(("nvlink", "infinity-fabric"))
    return NCCL_CHANNELS_NVLINK if fast else NCCL_CHANNELS_PCIE


def nccl_channel_bytes() -> int:
    """One channel's receive buffers for the three protocols, in cuMem granules."""
    raw = NCCL_SIMPLE_BUFFER_BYTES + NCCL_LL128_BUFFER_BYTES + NCCL_LL_BUFFER_BYTES
    return -(-raw // NCCL_GRANULE_BYTES) * NCCL_GRANULE_BYTES


def nccl_buffer_bytes(gpu: GpuSpec, n_gpus: int) -> int:
    """Device memory of the one NCCL communicator torch's ProcessGroupNCCL creates for the
    default group (FSDP, ZeRO and DDP run all their collectives on it), outside torch's
    caching allocator: NVML shows it beside the CUDA context. None with one GPU (no peers)."""
    return nccl_channels(gpu) * nccl_channel_bytes() if n_gpus > 1 else 0
