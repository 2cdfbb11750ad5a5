"""Allocated memory phase by phase through one steady training step, and the peak it sets.

A steady step (after the first: optimizer states exist, gradients were set to None):
  weights loaded -> forward layer 1..L (saved tensors pile up) -> logits & loss ->
  backward layer L..1 (saved tensors freed, gradients appear) -> optimizer step -> zero_grad.
The peak is the largest phase; its split by component is what the stacked bar shows.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from ..frameworks import litgpt, torchtune, unsloth
from ..model_spec import DecoderLayer, LinearShape, ModelSpec, block_repeats, group_blocks
from ..plan import Plan
from . import activations as act
from . import activation_offload as off
from . import liger, torch_compile
from .logits import logits_held_bytes, logits_loss_peak_bytes
from .loss_kernels import loss_memory
from .precision import activation_dtypes, attention_kernel, config_extras, logits_element_bytes
from .preference import policy_forward_plan
from .sharding import GpuState


@dataclass(frozen=True, slots=True)
class BlockMemory:
    """One decoder block's activation memory for the plan's micro-batch."""

    saved_bytes: int      # saved for backward when the block is not checkpointed
    kept_bytes: int       # alive after its forward: saved tensors, or the checkpointed input
    forward_work_bytes: int
    backward_work_bytes: int
    scores_bytes: int     # [b, h, s, s] part of saved_bytes (math / eager attention; algorithm_timeline.py)


def block_memories(spec: ModelSpec, plan: Plan) -> tuple[BlockMemory, ...]:
    """BlockMemory of every decoder block (identical blocks computed once); under torchtune's /
    TRL's activation offloading, kept_bytes is what stays on the device."""
    plan = policy_forward_plan(plan)   # DPO family / GRPO: the sequences one policy forward runs
    blocks = _blocks_before_offload(spec, plan)
    offload = _activation_offload(spec, plan, activation_dtypes(plan, spec), blocks)
    if offload is None:
        return blocks
    return tuple(dataclasses.replace(b, kept_bytes=d) for b, d in zip(blocks, offload.block_device_bytes))


def _blocks_before_offload(spec: ModelSpec, plan: Plan) -> tuple[BlockMemory, ...]:
    dt = activation_dtypes(plan, spec)
    extras = config_extras(spec)
    tokens = plan.batch_size * plan.seq_len
    distinct: list[BlockMemory] = []
    for _, layer in block_repeats(spec):  # alternating layer patterns (Gemma 2/3) repeat a few blocks
        kernel, native_gqa, needs_mask = _attention_kernel(plan, spec, dt, layer)
        targets = frozenset(i for i, lin in enumerate(layer.linears)
                            if plan.is_lora and (plan.lora_targets == "all-linear" or lin.name in plan.lora_targets))
        per_token = _block_saved_bytes_per_token(plan, spec, layer, kernel, native_gqa, dt, targets)
        softcap = spec.attn_logit_softcapping is not None and kernel != "flash"
        scores = act.attention_scores_bytes(plan.batch_size, spec.num_heads, plan.seq_len, kernel, dt, softcap)
        # autocast (mixed-*) casts each weight to 16 bit per forward; mm saves that copy for the
        # input gradient, so it lives until the block's backward (torch/csrc/autograd autocast_mode)
        autocast_weights = 2 * sum(lin.weight_params for lin in layer.linears) if dt.autocast else 0
        saved = per_token * tokens + scores + autocast_weights
        kept = act.checkpoint_saved_bytes_per_token(spec.hidden_size, dt) * tokens if plan.grad_ckpt else saved
        mlp_work = 2 * tokens * layer.mlp_width * dt.linear_out
        forward_work = max(mlp_work, scores) + (plan.batch_size * plan.seq_len * plan.seq_len if needs_mask else 0)
        if plan.grad_ckpt:
            forward_work = max(forward_work, saved)
        score_elements = plan.batch_size * spec.num_heads * plan.seq_len ** 2 if scores else 0
        patch = liger.liger_patch(plan, spec)
        if unsloth_modules(plan):
            backward_work = unsloth.backward_transient_bytes(tokens, spec.hidden_size, layer, dt, targets,
                                                             _unsloth_dequant_bytes(spec, plan))
        elif patch is not None and patch.glu and layer.gated_mlp and layer.num_experts == 0:
            backward_work = liger.backward_transient_bytes(tokens, spec.hidden_size, layer, dt, score_elements)
        else:
            backward_work = act.backward_transient_bytes(tokens, spec.hidden_size, layer, dt, score_elements)
        distinct.append(BlockMemory(saved, kept, forward_work, backward_work, scores))
    blocks = tuple(distinct[i] for (n, _), i in zip(spec.layer_groups, group_blocks(spec)) for _ in range(n))
    return _unsloth_offload(spec, plan, dt, _first_block_norm(plan, spec, dt, blocks))


def activation_offload(spec: ModelSpec, plan: Plan) -> off.ActivationOffload | None:
    """torchtune's / TRL's OffloadActivations over the plan's forward (memory/activation_offload.py),
    None when the plan does not offload that way."""
    if not off.offloads(plan):
        return None
    plan = policy_forward_plan(plan)
    dt = activation_dtypes(plan, spec)
    return _activation_offload(spec, plan, dt, _blocks_before_offload(spec, plan))


def _activation_offload(spec: ModelSpec, plan: Plan, dt: act.ActivationDtypes,
                        blocks: tuple[BlockMemory, ...]) -> off.ActivationOffload | None:
    if not off.offloads(plan):
        return None
    tokens = plan.batch_size * plan.seq_len
    rms = not config_extras(spec).layer_norm
    layers = spec.layers()
    shared = tuple(0 if plan.grad_ckpt else tokens * off.shared_attention_output_bytes_per_token(
        layer, dt, _attention_kernel(plan, spec, dt, layer)[0]) for layer in layers)
    residue = tuple(0 if plan.grad_ckpt else
                    off.dedup_residue_bytes_per_token(layer, spec.hidden_size, dt, rms) * tokens + extra
                    for layer, extra in zip(layers, shared))
    return off.activation_offload(spec, plan, dt, tuple(b.saved_bytes for b in blocks),
                                  tuple(b.kept_bytes for b in blocks), residue, shared)


def unsloth_modules(plan: Plan) -> bool:
    """unsloth's own layer code (fast_lora, Triton norms and RoPE) runs for LoRA and QLoRA;
    its full fine-tuning goes through transformers' modules (FastModel, full_finetuning=True).
    The memory here and the step's work (core/step_work.py) both ask it."""
    return plan.framework == "unsloth" and plan.is_lora


def unsloth_offload(spec: ModelSpec, plan: Plan) -> unsloth.OffloadedCheckpoint | None:
    """The plan's unsloth offloaded gradient checkpointing over one policy forward (as
    activation_offload: a DPO pair or a GRPO prompt + completion is what each layer input
    holds), None when it does not offload."""
    if plan.framework != "unsloth" or not (plan.grad_ckpt and plan.activation_offload):
        return None
    plan = policy_forward_plan(plan)
    dt = activation_dtypes(plan, spec)
    return unsloth.offloaded_checkpoint(plan.batch_size * plan.seq_len, spec.hidden_size, spec.num_layers,
                                        dt.stream, plan.seq_len)


def _unsloth_offload(spec: ModelSpec, plan: Plan, dt: act.ActivationDtypes,
                     blocks: tuple[BlockMemory, ...]) -> tuple[BlockMemory, ...]:
    """UnslothCheckpointFunction: every checkpointed layer input but the last waits in pinned
    host memory (its GPU buffers are persistent: unsloth_persistent_bytes)."""
    if not blocks or unsloth_offload(spec, plan) is None:
        return blocks
    return (*(dataclasses.replace(b, kept_bytes=0) for b in blocks[:-1]), blocks[-1])


def _unsloth_dequant_bytes(spec: ModelSpec, plan: Plan) -> int:
    """QLoRA: one dequantized copy of the largest block weight (fast_dequantize)."""
    if plan.method != "qlora":
        return 0
    largest = max((lin.d_in * lin.d_out for _, layer in block_repeats(spec) for lin in layer.linears), default=0)
    return unsloth.dequant_buffer_bytes(largest, activation_dtypes(plan, spec).linear_out)


def unsloth_persistent_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Device buffers unsloth allocates once and keeps: the checkpoint GPU_BUFFER(s) and, under
    4-bit with the fused LoRA paths, fast_dequantize's global WEIGHT_BUFFER / ABSMAX_BUFFER."""
    if plan.framework != "unsloth":
        return 0
    offload = unsloth_offload(spec, plan)
    total = offload.gpu_buffer_bytes if offload else 0
    if unsloth_modules(plan) and plan.lora_dropout == 0:
        total += _unsloth_dequant_bytes(spec, plan)
    return total


def _attention_kernel(plan: Plan, spec: ModelSpec, dt: act.ActivationDtypes, layer: DecoderLayer) -> tuple[str, bool, bool]:
    """torchtune and litgpt call F.scaled_dot_product_attention(is_causal=True) without a mask
    (torchtune/modules/attention.py, litgpt/model.py CausalSelfAttention): flash for 16 bit, the
    memory-efficient kernel for fp32 on CUDA (and CPU's flash kernel), none keeping s^2."""
    if plan.framework in ("torchtune", "litgpt"):
        return "flash", False, False
    if unsloth_modules(plan):  # flash-attn or SDPA(enable_gqa) through run_attention: no s^2
        return "flash", True, False
    return attention_kernel(plan, spec, dt, layer.sliding_window)


def _block_saved_bytes_per_token(plan: Plan, spec: ModelSpec, layer: DecoderLayer, kernel: str, native_gqa: bool,
                                 dt: act.ActivationDtypes, targets: frozenset[int]) -> int:
    """What one block saves per token, from the module code of the plan's framework."""
    extras = config_extras(spec)
    if plan.framework == "torchtune":
        eager = torchtune.block_saved_bytes_per_token(layer, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
                                                      spec.head_dim, kernel, dt, targets, qk_norm=extras.qk_norm)
        if not torch_compile.compiles(plan):
            return eager
        return eager + torch_compile.torchtune_block_change_per_token(
            layer, spec.hidden_size, spec.head_dim, spec.num_heads + spec.num_kv_heads, dt, extras.qk_norm)
    if plan.framework == "litgpt":
        return litgpt.block_saved_bytes_per_token(layer, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
                                                  spec.head_dim, kernel, dt, targets, rms=not extras.layer_norm,
                                                  qk_norm=extras.qk_norm)
    if unsloth_modules(plan):
        return unsloth.block_saved_bytes_per_token(layer, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
                                                   spec.head_dim, plan.attention == "flash", dt, targets,
                                                   qk_norm=extras.qk_norm)
    eager = act.layer_saved_bytes_per_token(
        layer, spec.hidden_size, spec.num_heads, spec.num_kv_heads, spec.head_dim, extras.v_head_dim,
        kernel, native_gqa, dt, targets, rms=not extras.layer_norm, qk_norm=extras.qk_norm,
        dropout_masks=2 if extras.hidden_dropout else 0)
    patch = liger.liger_patch(plan, spec)
    qk_heads = spec.num_heads + spec.num_kv_heads
    rms = not extras.layer_norm
    if patch is not None:
        eager += liger.block_saved_change_per_token(layer, spec.hidden_size, qk_heads * spec.head_dim, qk_heads,
                                                    dt, patch, rms, extras.qk_norm)
    if torch_compile.compiles(plan):
        eager += torch_compile.transformers_block_change_per_token(
            layer, spec.hidden_size, qk_heads * spec.head_dim, qk_heads, dt, targets, rms, extras.qk_norm,
            norms_done=patch is not None and patch.rms_norm, glu_done=patch is not None and patch.glu)
    return eager


def _first_block_norm(plan: Plan, spec: ModelSpec, dt: act.ActivationDtypes,
                      blocks: tuple[BlockMemory, ...]) -> tuple[BlockMemory, ...]:
    """torchtune and litgpt feed the first block the frozen embedding's output without
    enable_input_require_grads: under LoRA its first norm saves nothing."""
    if not blocks or plan.framework not in ("torchtune", "litgpt"):
        return blocks
    rms = not config_extras(spec).layer_norm
    per_token = (torchtune.first_norm_saved_bytes_per_token(spec.hidden_size, dt) if plan.framework == "torchtune"
                 else litgpt.first_norm_saved_bytes_per_token(spec.hidden_size, dt, rms))
    if per_token == 0:
        return blocks
    first = blocks[0]
    cut = per_token * plan.batch_size * plan.seq_len
    kept = first.kept_bytes if plan.grad_ckpt else first.kept_bytes - cut
    return (dataclasses.replace(first, saved_bytes=first.saved_bytes - cut, kept_bytes=kept), *blocks[1:])


def final_norm_saved_bytes(plan: Plan, spec: ModelSpec, dt: act.ActivationDtypes) -> int:
    """The final norm (+ the output projection's input when it is trained, + an lm_head
    adapter's saved tensors), whole micro-batch."""
    tokens = plan.batch_size * plan.seq_len
    return tokens * lm_head_lora_saved_bytes_per_token(plan, spec, dt) + _final_norm_saved_bytes(plan, spec, dt)


def lm_head_lora_saved_bytes_per_token(plan: Plan, spec: ModelSpec, dt: act.ActivationDtypes) -> int:
    """An adapter on lm_head (lora_targets names it), per token: the frozen head saves nothing,
    so its LoRA keeps the final norm's output (or, with dropout, a mask and the dropped copy)
    and the [tokens, r] product, in each framework's adapter code: torchtune LoRALinear and
    litgpt LoRALinear in the model dtype (litgpt's 128-token lm_head chunks are views of one
    tensor: the same bytes), peft's lora.Linear through an fp32 copy (unsloth runs peft's too)."""
    if not plan.is_lora or isinstance(plan.lora_targets, str) or "lm_head" not in plan.lora_targets:
        return 0
    if plan.framework == "torchtune":
        return torchtune.lora_saved_bytes(spec.hidden_size, dt.lora_rank, dt.linear_out, dt.lora_dropout, False)
    if plan.framework == "litgpt":
        return litgpt.lora_saved_bytes(spec.hidden_size, dt.lora_rank, dt.linear_out, dt.lora_dropout, False)
    head = LinearShape("lm_head", spec.hidden_size, spec.vocab_size)
    return act.lora_saved_bytes(head, dt.stream, dt)


def _final_norm_saved_bytes(plan: Plan, spec: ModelSpec, dt: act.ActivationDtypes) -> int:
    tokens = plan.batch_size * plan.seq_len
    if plan.framework == "torchtune":
        return tokens * torchtune.final_norm_saved_bytes_per_token(spec.hidden_size, dt)
    if plan.framework == "litgpt":
        return tokens * litgpt.final_norm_saved_bytes_per_token(spec.hidden_size, dt,
                                                                not config_extras(spec).layer_norm)
    if unsloth_modules(plan):
        return tokens * unsloth.final_norm_saved_bytes_per_token(spec.hidden_size, dt)
    patch = liger.liger_patch(plan, spec)
    if patch is not None and patch.rms_norm and not config_extras(spec).layer_norm:
        lm_head_input = dt.base_trainable and plan.loss != "fused-linear-ce"
        return tokens * liger.final_norm_saved_bytes_per_token(spec.hidden_size, dt, lm_head_input)
    if torch_compile.compiles(plan) and not config_extras(spec).layer_norm:
        lm_head_input = dt.base_trainable and plan.loss != "fused-linear-ce"
        return tokens * torch_compile.final_norm_saved_bytes_per_token(spec.hidden_size, dt, lm_head_input)
    # final norm's fp32 x (+ its normalized output and lm_head's input when trainable)
    return tokens * spec.hidden_size * (4 + (2 * dt.stream if dt.base_trainable else 0))


def step_timeline(spec: ModelSpec, plan: Plan, gpu_state: GpuState, workspace_bytes: int,
                  blocks: tuple[BlockMemory, ...]) -> tuple[tuple[int, ...], ...]:
    """Allocated bytes after each phase of a steady SFT step (named by phase_names), split by
    component: weights, adapters, gradients, optimizer states, activations, logits & loss,
    temporaries (ALLOCATED_COMPONENTS order)."""
    tokens = plan.batch_size * plan.seq_len
    logit_bytes = logits_element_bytes(plan)
    softcap = spec.final_logit_softcapping is not None
    if plan.loss == "standard" and plan.framework != "unsloth":
        loss_peak = logits_loss_peak_bytes(tokens, spec.vocab_size, logit_bytes, softcap)
        held = logits_held_bytes(tokens, spec.vocab_size, logit_bytes)
    else:   # chunked / fused / cut cross-entropy (core/memory/loss_kernels.py)
        loss_peak, held, _ = loss_memory(plan, spec, logit_bytes)
    dt = activation_dtypes(plan, spec)
    final_norm = final_norm_saved_bytes(plan, spec, dt)
    # under autocast lm_head saves its 16-bit weight copy until its backward
    final_norm += 2 * spec.vocab_size * spec.hidden_size if dt.autocast else 0
    return train_rows(spec, plan, gpu_state, workspace_bytes, blocks,
                      head=((final_norm, loss_peak, 0),), held=held)


Row = tuple[int, ...]


def train_rows(spec: ModelSpec, plan: Plan, gpu_state: GpuState, workspace_bytes: int,
               blocks: tuple[BlockMemory, ...], head: tuple[tuple[int, int, int], ...], held: int,
               before: tuple[tuple[int, int, int], ...] = (), extra_weights_bytes: int = 0) -> tuple[Row, ...]:
    """The rows of a training step: weights loaded, `before` (phases ahead of the policy forward:
    (activations, logits & loss, temporaries) on top of the model state, e.g. GRPO's generation),
    forward per block, `head` (phases after the last block: (activations beyond the blocks' kept
    tensors, logits & loss, temporaries)), backward per block with `held` bytes of loss outputs,
    optimizer step, after zero_grad. extra_weights_bytes: a frozen reference copy."""
    grads_always = gpu_state.gradient_bytes if plan.grad_accum > 1 else 0
    w, a, st = gpu_state.weights_bytes + extra_weights_bytes, gpu_state.adapter_bytes, gpu_state.optimizer_state_bytes
    # DDP's all-reduce buckets are made at wrap time and live as long as the workspaces
    ws, gather = workspace_bytes + gpu_state.ddp_bucket_bytes, gpu_state.gather_bytes
    ws += unsloth_persistent_bytes(spec, plan)
    rows = [(w, a, grads_always, st, 0, 0, ws)]  # weights loaded
    for acts, loss, temp in before:
        rows.append((w, a, grads_always, st, acts, loss, ws + temp))
    kept = 0
    for block in blocks:  # forward: each block keeps its saved tensors (or its checkpointed input)
        rows.append((w, a, grads_always, st, kept + block.kept_bytes, 0, ws + block.forward_work_bytes + gather))
        kept += block.kept_bytes
    for acts, loss, temp in head:  # logits & loss (or the log-prob head and the reference)
        rows.append((w, a, grads_always, st, kept + acts, loss, ws + gather + temp))
    root = gpu_state.root_gradients
    # an FSDP root unit is reduced last: its shard of the gradients appears only at the end,
    # while lm_head's unsharded gradient is alive from the loss on (distributed.root_gradients)
    grads = 0 if root.through_backward_bytes else gpu_state.head_gradient_bytes
    per_layer_grads = gpu_state.per_layer_gradient_bytes
    in_bwd = _in_backward(spec, plan, gpu_state)
    for i in range(len(blocks), 0, -1):  # backward, last block first
        block = blocks[i - 1]
        kept -= block.kept_bytes
        # (without checkpointing saved == kept; offloaded tensors come back for their backward)
        live = kept + block.saved_bytes
        grads += per_layer_grads[i - 1] if per_layer_grads else 0
        work = block.backward_work_bytes + gather + gpu_state.grad_bucket_bytes
        alive = max(grads_always, min(grads, gpu_state.gradient_bytes))
        if in_bwd is not None:   # optimizer_in_backward: one parameter's gradient and step at a time
            alive, work = min(alive, in_bwd[0]), work + in_bwd[1]
        row = (w, a, alive + root.through_backward_bytes, st, live, held, ws + work)
        if i == 1 and root.at_root_bytes:
            # the root unit's backward right after the first block's: embedding + lm_head
            # gradients, their flat copy and shard, beside the root's gathered parameters
            at_root = (w, a, alive + root.at_root_bytes, st, 0, held, ws + root.root_temp_bytes)
            row = max(row, at_root, key=sum)
        rows.append(row)
    if in_bwd is not None:   # nothing left to step; gradients were freed as they were used
        rows.append((w, a, 0, st, 0, held, ws))
        rows.append((w, a, 0, st, 0, held, ws))
        return tuple(rows)
    rows.append((w, a, gpu_state.gradient_bytes, st, 0, held, ws + gpu_state.optimizer_temp_bytes))  # optimizer step
    rows.append((w, a, grads_always, st, 0, held, ws))  # after zero_grad
    return tuple(rows)


def _in_backward(spec: ModelSpec, plan: Plan, gpu_state: GpuState) -> tuple[int, int] | None:
    """(gradient bytes alive, optimizer temporaries of one parameter) under optimizer_in_backward."""
    if not plan.optimizer_in_backward:
        return None
    from .optimizer_in_backward import in_backward_gradient_bytes, largest_parameter_params
    shards = plan.n_gpus if plan.sharding in ("fsdp", "zero2", "zero3") else 1
    # optimizer_in_backward is full fine-tuning only (plan.check_stack): every parameter trains
    grads = in_backward_gradient_bytes(spec, gpu_state.gradient_bytes * shards, spec.total_params, shards)
    temp_share = largest_parameter_params(spec) / max(spec.total_params, 1)
    return grads, int(gpu_state.optimizer_temp_bytes * temp_share)


@lru_cache(maxsize=64)
def phase_names(n_blocks: int) -> tuple[str, ...]:
    """The phases of step_timeline, in order, for a model of n_blocks decoder blocks."""
    return ("weights loaded", *(f"forward L{i}" for i in range(1, n_blocks + 1)), "logits & loss",
            *(f"backward L{i}" for i in range(n_blocks, 0, -1)), "optimizer step", "after zero_grad")
