"""Wire the memory mechanisms into one MemoryEstimate: peak, reserved, NVML view, fits."""
from __future__ import annotations

from typing import NamedTuple

from ..gpu_spec import GpuSpec
from ..model_spec import ModelSpec
from ..plan import Plan
from ...units import gib
from ..result import ALLOCATED_COMPONENTS, COMPONENTS, AlgorithmMemory, MemoryComponent, MemoryEstimate
from .allocator import allocator_slack_bytes
from .distributed import nccl_buffer_bytes, nccl_channels
from .fsdp_mixed_precision import uses_fsdp_mixed
from .liger import VERSION as liger_version
from .lora import adapter_dtype
from .liger import liger_patch
from .torch_compile import VERSION as compile_version
from .torch_compile import compiles
from .logits import logits_loss_peak_bytes
from .loss_kernels import loss_memory
from .model_state import ModelState
from .precision import logits_element_bytes
from .sharding import GpuState, gpu_state
from .algorithm_timeline import AlgorithmPhases, algorithm_timeline
from .preference import FUSED_HEAD_ALGORITHMS, fused_head_largest_bytes, policy_forward_plan
from .timeline import BlockMemory, activation_offload, block_memories, phase_names, step_timeline, unsloth_offload


def _formulas(plan: Plan, spec: ModelSpec, state: ModelState, gpu: GpuSpec,
              blocks: tuple[BlockMemory, ...]) -> dict[str, str]:
    tokens = policy_forward_plan(plan).tokens_per_micro_batch
    shard = f" / {plan.n_gpus} GPUs ({plan.sharding})" if plan.sharding != "none" and plan.n_gpus > 1 else ""
    ckpt = "checkpointed block inputs" if plan.grad_ckpt else "saved tensors of every block"
    offload = unsloth_offload(spec, plan)
    if offload:
        ckpt = (f"unsloth offloaded checkpointing (UnslothCheckpointFunction): {offload.offloaded_layers} block inputs"
                f" in pinned host RAM, the last on the card")
    moved = activation_offload(spec, plan)
    if moved:
        ckpt = moved.formula(len(blocks))
    saved = blocks[0].saved_bytes / max(tokens, 1) if blocks else 0
    out = {
        "weights": state.weights_formula + (shard if plan.sharding in ("fsdp", "zero3") else ""),
        "adapters": (f"LoRA r={plan.lora_r} on {plan.lora_targets if isinstance(plan.lora_targets, str) else ', '.join(plan.lora_targets)}:"
                     f" A (r x d_in) + B (d_out x r) per target, {adapter_dtype(plan.framework, plan.param_dtype)}") if plan.is_lora else "no adapters",
        "gradients": (f"optimizer in backward (torchtune register_optim_in_bwd_hooks): 2 x the largest parameter's "
                      f"gradient at a time{shard}") if plan.optimizer_in_backward else
                     f"{state.trainable_params:,} trainable params, like the params{shard}",
        "optimizer_states": state.optimizer_formula + shard,
        "activations": f"{ckpt}: {tokens:,} tokens x {spec.num_layers} blocks (~{saved:,.0f} B/token/block saved)",
        "logits_loss": loss_memory(plan, spec, logits_element_bytes(plan)).formula,
        "temporaries": "cuBLAS workspaces + optimizer step / recompute / gathered-layer buffers at the peak",
        "allocator_slack": "caching allocator: reserved but not allocated (fragmentation)",
        "cuda_context": "CUDA context, kernel images and library handles (outside torch)",
    }
    patch = liger_patch(plan, spec)
    if patch is not None:
        kernels = [name for on, name in ((patch.rms_norm, "LigerRMSNorm saves X + fp32 RSTD"),
                                         (patch.glu, "LigerSiLUMulFunction / LigerGELUMulFunction save gate, up"),
                                         (patch.rope, "LigerRopeFunction saves cos, sin")) if on]
        out["activations"] += f"; {liger_version} kernels: " + ", ".join(kernels)
    if compiles(plan):
        out["activations"] += (f"; torch.compile ({compile_version} min-cut partitioner): RMSNorm keeps x + fp32 rstd,"
                               " the gated MLP gate + up, one fp32 LoRA input copy per tensor")
    root = gpu_state(state, plan).root_gradients
    if root.at_root_bytes:
        out["gradients"] += ("; FSDP root unit reduced last (torch FSDP split_with_sizes_backward / foreach_reduce):"
                             " lm_head's unsharded gradient through the backward, embedding + lm_head gradients"
                             " and their flat copy at its end")
    if uses_fsdp_mixed(plan):
        out["weights"] += "; FSDP MixedPrecision(param_dtype=bf16): fp32 shards, units gathered in bf16"
        out["temporaries"] += ("; FSDP MixedPrecision: bf16 gathered units + bf16 copy of the shard being"
                               " gathered (_mp_shard), bf16 gradients awaiting their reduce-scatter")
    if plan.n_gpus > 1:
        out["cuda_context"] += (f" + NCCL communicator buffers: {nccl_channels(gpu)} ring channels x"
                                " (Simple 4 MiB + LL128 4.7 MiB + LL 0.5 MiB) in 2 MiB granules")
    return out


def _algorithm_formulas(out: dict[str, str], plan: Plan, phases: AlgorithmPhases) -> None:
    """What the preference / RL phases add to the components' formulas."""
    out["logits_loss"] = phases.head_formula
    out["activations"] += (f"; one policy forward runs {phases.policy_sequences} sequences of "
                           f"{phases.sequence_tokens:,} tokens ({plan.algorithm})")
    if phases.reference_weights_bytes:
        out["weights"] += f" + frozen reference copy ({gib(phases.reference_weights_bytes)})"
    if phases.kv_cache_bytes:
        out["activations"] += (f"; generate: DynamicCache {phases.generation_sequences} sequences x "
                               f"{plan.prompt_len + plan.completion_len - 1:,} tokens = "
                               f"{gib(phases.kv_cache_bytes)}")
    if phases.vllm_reserved_bytes:
        out["temporaries"] += (f" + vLLM colocated: {plan.vllm_gpu_memory_utilization:g} x the card "
                               f"({gib(phases.vllm_reserved_bytes)}) held all run")


# model state that CPU offload moves off the GPU (sharding.gpu_state)
OFFLOADED = {"optimizer": ("gradients", "optimizer_states"),
             "optimizer+params": ("weights", "adapters", "gradients", "optimizer_states")}


def _zero_formula(name: str, formula: str, plan: Plan, gs: GpuState, peak_phase: str) -> str:
    """The formula of a component that holds 0 bytes at the peak: why it is 0, then what it
    counts where it does live, so a 0.00 GiB row never reads like a non-zero count."""
    if formula.startswith("no "):
        return formula
    if name in OFFLOADED.get(plan.offload, ()):
        return f"0 on the GPU: offloaded to host RAM (offload {plan.offload}); there: {formula}"
    if name == "optimizer_states" and gs.managed_bytes:
        return f"0 in torch's pool: paged into CUDA managed memory (the managed row); {formula}"
    return f"0 at the peak ({peak_phase}); when alive: {formula}"


def _largest_transient(plan: Plan, spec: ModelSpec, blocks: tuple[BlockMemory, ...]) -> int:
    tokens = plan.batch_size * plan.seq_len
    if plan.algorithm in FUSED_HEAD_ALGORITHMS:   # TRL's fused head: tiles and [N, H] / [V, H] gradients
        loss = fused_head_largest_bytes(plan, spec)
    elif plan.algorithm != "sft":   # ORPO / SimPO: the concatenated batch's logits
        loss = logits_loss_peak_bytes(policy_forward_plan(plan).tokens_per_micro_batch, spec.vocab_size,
                                      logits_element_bytes(plan))
    else:
        loss = (logits_loss_peak_bytes(tokens, spec.vocab_size, logits_element_bytes(plan))
                if plan.loss == "standard" and plan.framework != "unsloth"
                else loss_memory(plan, spec, logits_element_bytes(plan)).peak_bytes)
    recompute = max((b.saved_bytes for b in blocks), default=0) if plan.grad_ckpt else 0
    work = max((b.backward_work_bytes for b in blocks), default=0)
    # the optimizer's temporaries are one tensor per parameter and reuse cached blocks;
    # single huge tensors (logits, [b, h, s, s] scores, a recomputed block) fragment.
    return max(loss, recompute + work)


class StepPeak(NamedTuple):
    """The allocated-memory timeline of a steady step and where it peaks."""

    gpu_state: GpuState
    blocks: tuple[BlockMemory, ...]
    rows: tuple[tuple[int, ...], ...]   # step_timeline: bytes by component after each phase
    peak: int                           # index of the first phase that reaches the maximum
    allocated_bytes: int                # allocated at the peak
    reserved_bytes: int                 # + the caching allocator's slack
    algorithm: AlgorithmPhases | None = None   # DPO family / GRPO: their phases and what sets them


def step_peak(plan: Plan, spec: ModelSpec, gpu: GpuSpec, state: ModelState,
              blocks: tuple[BlockMemory, ...] | None = None) -> StepPeak:
    """Peak allocated and reserved bytes of one GPU in a steady step. blocks: block_memories
    of the plan when the caller has them (the search shares them over GPU counts and shardings)."""
    gs = gpu_state(state, plan)
    blocks = block_memories(spec, plan) if blocks is None else blocks
    phases = None
    if plan.algorithm == "sft":
        rows = step_timeline(spec, plan, gs, gpu.cublas_workspace_bytes, blocks)
    else:   # preference / RL: the reference, generation and log-prob phases (algorithm_timeline)
        phases = algorithm_timeline(spec, plan, gs, gpu, blocks)
        rows = phases.rows
    totals = [sum(row) for row in rows]
    peak = totals.index(max(totals))  # the first phase that reaches the peak
    slack = allocator_slack_bytes(_largest_transient(plan, spec, blocks))
    return StepPeak(gs, blocks, rows, peak, totals[peak], totals[peak] + slack, phases)


def memory_estimate(plan: Plan, spec: ModelSpec, gpu: GpuSpec, state: ModelState) -> MemoryEstimate:
    """Peak allocated / reserved / NVML-used bytes of one GPU for a steady training step."""
    step = step_peak(plan, spec, gpu, state)
    gs, rows, peak, reserved = step.gpu_state, step.rows, step.peak, step.reserved_bytes
    names = phase_names(len(step.blocks)) if step.algorithm is None else step.algorithm.names
    formulas = _formulas(plan, spec, state, gpu, step.blocks)
    if step.algorithm is not None:
        _algorithm_formulas(formulas, plan, step.algorithm)
    at_peak = dict(zip(ALLOCATED_COMPONENTS, rows[peak]))
    at_peak["allocator_slack"] = reserved - step.allocated_bytes
    outside = outside_torch_bytes(gpu, plan.n_gpus)
    at_peak["cuda_context"] = outside
    components = tuple(MemoryComponent(name, int(at_peak.get(name, 0)), formulas[name] if at_peak.get(name, 0)
                                       else _zero_formula(name, formulas[name], plan, gs, names[peak]))
                       for name in COMPONENTS)
    capacity = capacity_bytes(gpu)
    paged_out = paged_out_bytes(gs.managed_bytes, paged_room_bytes(reserved, gpu, plan.n_gpus))
    return MemoryEstimate(
        components=components,
        peak_allocated_bytes=step.allocated_bytes,
        peak_reserved_bytes=reserved,
        device_used_bytes=device_used_bytes(reserved, gpu, gs.managed_bytes, plan.n_gpus),
        capacity_bytes=capacity,
        fits=fits_on(reserved, gpu, plan.n_gpus, gs.paged_tensor_bytes),
        peak_phase=names[peak],
        phases=names,
        phase_values=rows,
        host_bytes=gs.host_bytes + _unsloth_host_bytes(spec, plan) + _offload_host_bytes(spec, plan),
        managed_bytes=gs.managed_bytes,
        paged_out_bytes=paged_out,
        paged_tensor_bytes=gs.paged_tensor_bytes,
        paged_traffic_bytes=paged_traffic_bytes(gs.managed_bytes, paged_out),
        algorithm=None if step.algorithm is None else _algorithm_memory(plan, step.algorithm),
    )


def _unsloth_host_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Pinned host buffers of unsloth's offloaded checkpointing (frameworks/unsloth.py)."""
    offload = unsloth_offload(spec, plan)
    return offload.host_bytes if offload else 0


def _offload_host_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Pinned host copies of torchtune's / TRL's OffloadActivations (memory/activation_offload.py)."""
    moved = activation_offload(spec, plan)
    return moved.host_bytes if moved else 0


# phases every step has (SFT's); the others are the algorithm's own
_SFT_PHASES = ("weights loaded", "optimizer step", "after zero_grad")


def _algorithm_memory(plan: Plan, phases: AlgorithmPhases) -> AlgorithmMemory:
    own = tuple(name for name in phases.names
                if name not in _SFT_PHASES and not name.startswith(("forward L", "backward L")))
    return AlgorithmMemory(plan.algorithm, plan.reference, phases.policy_sequences, phases.sequence_tokens,
                           phases.scored_tokens, phases.reference_weights_bytes, phases.reference_forward,
                           phases.kv_cache_bytes, phases.generation_sequences, phases.vllm_reserved_bytes, own)


def capacity_bytes(gpu: GpuSpec) -> int:
    """NVML's board total: the context figure (NVML used - torch reserved) includes the driver's
    own reserve that CUDA's total_memory leaves out, so both sides are counted NVML's way.
    (H100 SXM: 81,559 MiB NVML vs 81,079 CUDA; an OOM run reached 80,228 MiB reserved.)"""
    return gpu.nvml_memory_bytes or gpu.memory_bytes


def outside_torch_bytes(gpu: GpuSpec, n_gpus: int = 1) -> int:
    """Device memory outside torch's caching allocator: the CUDA context (and kernel images),
    and with peers NCCL's communicator buffers (distributed.nccl_buffer_bytes)."""
    return gpu.cuda_context_bytes + nccl_buffer_bytes(gpu, n_gpus)


def fits_on(reserved_bytes: int, gpu: GpuSpec, n_gpus: int = 1, paged_tensor_bytes: int = 0) -> bool:
    """Whether a step that reserves reserved_bytes fits the card beside its CUDA context (and
    NCCL's buffers on n_gpus > 1). Paged optimizer states live in CUDA managed memory: the
    driver evicts them to host RAM when torch's reserve needs the room (nvidia-uvm
    uvm_pmm_gpu.c: PMA calls UVM's eviction callbacks for RM / cudaMalloc allocations), so
    only the states one tensor's update prefetches (paged_tensor_bytes, bitsandbytes
    Optimizer8bit.step: prefetch_state, update_step, sync per parameter) must fit as well."""
    return reserved_bytes + outside_torch_bytes(gpu, n_gpus) + paged_tensor_bytes <= capacity_bytes(gpu)


def paged_room_bytes(reserved_bytes: int, gpu: GpuSpec, n_gpus: int = 1) -> int:
    """What the card leaves to managed pages beside torch's reserve and the context (torch's
    caching allocator keeps its peak reserve for the run, so this is the room in every phase)."""
    return capacity_bytes(gpu) - outside_torch_bytes(gpu, n_gpus) - reserved_bytes


def paged_out_bytes(managed_bytes, room_bytes):
    """Managed (paged optimizer) bytes that do not fit in the room and live in host RAM: ints,
    or numpy arrays with one element per row (the search)."""
    spill = managed_bytes - room_bytes
    if isinstance(spill, int):
        return min(managed_bytes, max(0, spill))
    import numpy
    return numpy.clip(spill, 0, managed_bytes)


def paged_traffic_bytes(managed_bytes, paged_out):
    """Bytes paged over PCIe per optimizer step (host to device and back). While any state is
    paged out, every step moves all of them both ways: the update walks the parameters in the
    same order each step (Optimizer8bit.step) and UVM evicts the least recently allocated 2 MB
    root chunk (uvm_pmm_gpu.c pick_root_chunk_to_evict; chunks move to the list's tail when
    allocated, not when mapped), so each chunk is evicted before the next step comes back to
    it: a cyclic walk larger than the room misses on every chunk. ints or numpy arrays."""
    if isinstance(paged_out, int):
        return 2 * managed_bytes if paged_out > 0 else 0
    import numpy
    return numpy.where(paged_out > 0, 2 * managed_bytes, 0)


def device_used_bytes(reserved_bytes: int, gpu: GpuSpec, managed_bytes: int, n_gpus: int = 1) -> int:
    """What NVML (nvidia-smi) shows used at the peak: torch's reserve, the context (+ NCCL),
    and the managed pages that are on the card (paged_out_bytes of them are in host RAM)."""
    outside = outside_torch_bytes(gpu, n_gpus)
    return (reserved_bytes + outside + managed_bytes
            - paged_out_bytes(managed_bytes, paged_room_bytes(reserved_bytes, gpu, n_gpus)))
