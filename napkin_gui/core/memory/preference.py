"""Preference and RL fine-tuning as TRL 1.16 runs them: what one policy forward carries, what its
per-token log-probabilities keep alive, and what the reference policy costs.

Sources (TRL 1.16.0, trl/):
- trainer/dpo_trainer.py DataCollatorForPreference.torch_call: chosen and rejected completions are
  padded together and concatenated after the prompt, so one forward runs 2 x batch_size sequences
  of max_length (plan seq_len); labels are -100 on the prompt (_compute_loss).
- trainer/kto_trainer.py _compute_loss: batch_size unpaired completions, plus a KL batch of the same
  size (each prompt with another example's completion) run under no_grad before the policy forward.
- experimental/orpo/orpo_trainer.py and experimental/cpo/cpo_trainer.py concatenated_forward
  (ORPO; SimPO is CPOTrainer with loss_type="simpo", cpo_alpha=0): chosen + rejected concatenated,
  full logits, trainer/utils.py selective_log_softmax over them; ORPO adds an NLL on the chosen half.
- trainer/utils.py add_fused_lm_head + kernels/chunked_logprob.py ChunkedLogProbFunction (DPO, KTO,
  GRPO): the LM head runs in [4096 x 32768] tiles over the scored positions only; no [N, V] logits.
- Reference: a frozen second model (create_model_from_path, same dtype and quantization), the PEFT
  policy under use_adapter(model, None) (adapters disabled) inside torch.no_grad(), or log-probs
  precomputed over the dataset before training (precompute_ref_log_probs), after the policy
  forward and before backward (dpo_trainer.py _compute_loss).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

from ..model_spec import ModelSpec
from ..plan import Plan

# kernels/chunked_logprob.py TOKEN_CHUNK_SIZE; trainer/utils.py _CHUNKED_LOGPROB_CHUNK_SIZE
FUSED_TOKEN_CHUNK = 4096
FUSED_VOCAB_CHUNK = 32768
# running_max, sum_exp, x_sum_exp, sq_sum_exp, z_sum, max_before_target, target_logit: fp32 [N] each
FUSED_ACCUMULATORS = 7
# per-token outputs each trainer asks add_fused_lm_head for (besides log_probs)
FUSED_OUTPUTS = {"dpo": ("entropy", "mean_logits", "is_top1"),   # dpo_trainer.py __init__
                 "kto": ("entropy", "mean_logits"),               # kto_trainer.py __init__
                 "grpo": ("entropy",)}                            # grpo_trainer.py __init__
FUSED_HEAD_ALGORITHMS = ("dpo", "kto", "grpo")
# kernels/chunked_logprob.py _backward_tile (torch, no Triton): fp32 [rows, chunk] tiles alive at once
FOLD_BACKWARD_TILES = 7
PAIRED_ALGORITHMS = ("dpo", "orpo", "simpo")


def policy_sequences(plan: Plan) -> int:
    """Sequences in one policy forward: chosen + rejected concatenated for the paired objectives
    (2 x per_device_train_batch_size), one per example for KTO and GRPO, as for SFT."""
    return 2 * plan.batch_size if plan.algorithm in PAIRED_ALGORITHMS else plan.batch_size


def sequence_tokens(plan: Plan) -> int:
    """Tokens per sequence: max_length (seq_len) for SFT and the DPO family, prompt + completion
    for GRPO (grpo_trainer.py _compute_loss: torch.cat([prompt_ids, completion_ids]))."""
    return plan.prompt_len + plan.completion_len if plan.algorithm == "grpo" else plan.seq_len


def policy_forward_plan(plan: Plan) -> Plan:
    """The plan as one policy forward sees it: batch_size sequences of seq_len tokens each, so the
    SFT activation model (timeline.block_memories) prices the blocks unchanged. It is an SFT plan
    of those sequences, so applying it twice changes nothing."""
    if plan.algorithm == "sft":
        return plan
    return dataclasses.replace(plan, batch_size=policy_sequences(plan), seq_len=sequence_tokens(plan),
                               algorithm="sft", reference="none")


def scored_tokens_per_sequence(plan: Plan) -> int:
    """Positions whose next-token label is not -100: the completion (labels are -100 on the prompt:
    dpo_trainer.py / kto_trainer.py `masked_fill(completion_mask == 0, -100)`, grpo_trainer.py
    `labels[:, :-logits_to_keep] = -100`)."""
    if plan.algorithm == "grpo":
        return plan.completion_len
    return max(plan.seq_len - plan.prompt_len, 1)


class HeadMemory(NamedTuple):
    """Bytes of the log-probability head of one forward (whole micro-batch)."""

    saved_bytes: int          # saved for backward, alive from the head's forward to its backward
    forward_work_bytes: int   # transient on top during the head's forward
    backward_peak_bytes: int  # the head's bytes at the peak of its backward (saved + gradients it makes)
    held_bytes: int           # outputs the loss keeps through the blocks' backward and the step
    formula: str


def fused_head_memory(sequences: int, positions: int, scored: int, hidden: int, vocab: int,
                      hidden_bytes: int, compute_bytes: int, outputs: tuple[str, ...],
                      lm_head_trainable: bool, compact: bool = True, grad: bool = True) -> HeadMemory:
    """TRL's fused LM head (trainer/utils.py add_fused_lm_head, kernels/chunked_logprob.py).

    positions = sequences x (seq_len - 1) shifted positions, scored = how many have a label.
    On CUDA (compact) only the scored rows are projected: `hidden_states[mask]` is a copy
    [scored, H] in the backbone's dtype, and IndexBackward saves the bool mask; on CPU every
    position is (a reshape copy of the shifted hidden states, labels.clamp(min=0)).
    ChunkedLogProbFunction.forward saves hidden, weight, targets (int64), log_z (fp32) and entropy
    (fp32; log_z fills its slot without it); its work is one mm_buf [min(N, 4096), 32768] in the
    compute dtype (allocated at the full chunk width whatever the vocabulary) and seven fp32 [N]
    accumulators; without Triton (CPU) _forward_tile folds each tile in torch: tile.float(),
    z - max and its exp, three fp32 tiles at once. Backward: grad_hidden fp32 [N, H], mm_buf
    again, and grad_weight fp32 [V, H] when the LM head trains; without Triton _backward_tile
    holds seven fp32 tiles at once (tile.float(), y, z, log_p, p, grad and is_target - p). The per-token outputs are scattered
    into fp32 [B, S-1] tensors (masked_scatter saves the mask, masked_fill on CPU its ~mask).
    Under no_grad nothing is saved: the backbone's last hidden states, their copy and the tiles
    are the whole transient.
    """
    n = scored if compact else positions
    differentiable = 1 + ("entropy" in outputs)
    out_bytes = positions * 4 * (1 + len(outputs))  # is_top1 is bool; counted as fp32 (tiny)
    hidden_copy = n * hidden * hidden_bytes
    rows = min(n, FUSED_TOKEN_CHUNK)
    mm_buf = rows * FUSED_VOCAB_CHUNK * compute_bytes
    fold = rows * min(vocab, FUSED_VOCAB_CHUNK) * 4   # one fp32 tile of the torch fold (no Triton)
    tile = mm_buf + (0 if compact else 3 * fold)
    backward_tile = mm_buf + (0 if compact else FOLD_BACKWARD_TILES * fold)
    accumulators = FUSED_ACCUMULATORS * n * 4
    if not grad:
        backbone = sequences * (positions // max(sequences, 1) + 1) * hidden * hidden_bytes
        return HeadMemory(0, backbone + hidden_copy + tile + accumulators + out_bytes, 0, 0,
                          f"fused log-prob head under no_grad: [{n:,} x {hidden}] copy + one "
                          f"[{min(n, FUSED_TOKEN_CHUNK)} x {min(vocab, FUSED_VOCAB_CHUNK)}] tile")
    masks = positions if compact else differentiable * positions
    saved = hidden_copy + n * (8 + 4 + (4 if "entropy" in outputs else 0)) + masks
    backward = (n * hidden * 4 + backward_tile + (vocab * hidden * 4 if lm_head_trainable else 0)
                + n * 4 * differentiable)
    formula = (f"TRL fused log-prob head over {n:,} scored tokens: saves their hidden states "
               f"({hidden_bytes} B x {hidden}) + fp32 log_z{' and entropy' if 'entropy' in outputs else ''}; "
               f"no [tokens, {vocab:,}] logits")
    # one autograd node (ChunkedLogProbFunction): its saved tensors stay alive through its backward
    return HeadMemory(saved, tile + accumulators + out_bytes, saved + backward, out_bytes, formula)


def full_logits_memory(sequences: int, seq_len: int, vocab: int, logits_bytes: int, nll_on_chosen: bool,
                       triton: bool = True) -> HeadMemory:
    """ORPO / SimPO (experimental/orpo, experimental/cpo concatenated_forward): the model returns
    [2B, S, V] logits (in the LM head's dtype; no labels, so no upcast) and get_batch_logps runs
    trainer/utils.py selective_log_softmax over logits[:, :-1].

    On CUDA the Triton kernel (kernels/logprob_entropy.py _LogProbEntropyFunction) saves the
    logits view (keeping the logits alive), the int64 labels and fp32 log_z + expected_logit per
    position, and its backward allocates grad_logits like the slice, which SliceBackward copies into
    a zero [2B, S, V] gradient. On CPU 16-bit logits take the row loop: each row's log_softmax
    saves its [S-1, V] output; fp32 logits: gather + logsumexp save the logits and [N] results.
    ORPO's NLL on the chosen half: logits[:B, :-1].contiguous() (a copy, transient), then
    F.cross_entropy in the logits' dtype saves the log_softmax output [B(S-1), V].

    Backward (torch/csrc/autograd/engine.cpp: the ready node of highest sequence number runs
    first, and a node's saved tensors are released when its apply ends, retain_graph off):
    get_batch_logps' nodes were made after the NLL's, so the log-prob branch runs first, down to
    its SliceBackward's zero [2B, S, V] gradient, while the NLL's saved log_softmax waits. The row
    loop frees each row's saved output as that row's LogSoftmaxBackward ends; UnbindBackward then
    stacks the row gradients [2B, S-1, V] beside them, and SliceBackward pads the stack to the
    full [2B, S, V]. The NLL branch follows (NllLossBackward, LogSoftmaxBackward, which frees its
    saved output, and two SliceBackwards up to a second zero [2B, S, V] gradient); the logits'
    producer has two incoming gradients, and the engine's InputBuffer sums them into a third
    [2B, S, V] tensor before either is freed: three logits-sized gradients, nothing saved.
    """
    positions = sequences * (seq_len - 1)
    logits = sequences * seq_len * vocab * logits_bytes
    row = positions * vocab * logits_bytes
    labels = positions * 8                      # torch.where(labels == -100, 0, labels), int64
    chosen = (sequences // 2) * (seq_len - 1) * vocab * logits_bytes if nll_on_chosen else 0
    if triton:
        saved, alive = logits + labels + positions * 8, 0
    elif logits_bytes >= 4:
        saved, alive = logits + labels + positions * 4, 0
    else:   # the row loop saves each row's log_softmax; only Python references hold the logits
        saved, alive = row + labels, logits
    if triton:   # one node on the saved logits, then the pad; the saved logits counted through the
        # pad too: an upper bound not measured here (no Triton on CPU)
        logps_backward = saved + row + logits
    elif logits_bytes >= 4:   # the logsumexp rows' gradients stacked [N, V], then GatherBackward's
        # zeros and scatter_add [N, V] while gather's saved logits wait for it (CPU trace)
        logps_backward = saved + 3 * row
    else:   # the row gradients and their stack (2 x row), then the stack and the padded gradient
        logps_backward = max(2 * row, row + logits)
    backward = max(logps_backward + chosen, 3 * logits) if nll_on_chosen else logps_backward
    formula = (f"full logits [{sequences} x {seq_len} x {vocab:,}] ({logits_bytes} B) + TRL selective "
               f"log-softmax{' + NLL on the chosen half' if nll_on_chosen else ''}")
    return HeadMemory(saved + chosen, alive + chosen, backward, 0, formula)


def logprob_head(spec: ModelSpec, plan: Plan, hidden_bytes: int, compute_bytes: int, logits_bytes: int,
                 lm_head_trainable: bool, grad: bool = True, triton: bool = True) -> HeadMemory:
    """The policy's (grad) or the reference's (no_grad) log-probability head for this plan."""
    fwd = policy_forward_plan(plan)
    positions = fwd.batch_size * (fwd.seq_len - 1)
    if plan.algorithm in FUSED_HEAD_ALGORITHMS:
        outputs = FUSED_OUTPUTS[plan.algorithm] if grad else ()
        scored = fwd.batch_size * scored_tokens_per_sequence(plan)
        return fused_head_memory(fwd.batch_size, positions, scored, spec.hidden_size, spec.vocab_size,
                                 hidden_bytes, compute_bytes, outputs, lm_head_trainable, compact=triton, grad=grad)
    return full_logits_memory(fwd.batch_size, fwd.seq_len, spec.vocab_size, logits_bytes,
                              nll_on_chosen=plan.algorithm == "orpo", triton=triton)


def fused_head_largest_bytes(plan: Plan, spec: ModelSpec) -> int:
    """The largest single tensor of the fused head (for the allocator's fragmentation): its
    [4096, 32768] tile, grad_hidden fp32 [N, H] or grad_weight fp32 [V, H] (full fine-tuning)."""
    fwd = policy_forward_plan(plan)
    n = fwd.batch_size * scored_tokens_per_sequence(plan)
    tile = min(n, FUSED_TOKEN_CHUNK) * min(spec.vocab_size, FUSED_VOCAB_CHUNK) * 4
    weight = spec.vocab_size * spec.hidden_size * 4 if plan.method == "full" else 0
    return max(tile, n * spec.hidden_size * 4, weight)


def lora_on_mlp(spec: ModelSpec, plan: Plan) -> bool:
    """Whether the MLP's input projections (outputs mlp_width wide) carry adapters."""
    return plan.is_lora and any(lin.d_out == layer.mlp_width and (plan.lora_targets == "all-linear"
                                                                  or lin.name in plan.lora_targets)
                                for _, layer in spec.layer_groups for lin in layer.linears)


def reference_runs_in_step(plan: Plan) -> bool:
    """Whether a reference forward runs inside each step (not precomputed, not reference-free)."""
    return plan.reference in ("copy", "adapter-off")


def no_grad_forwards(plan: Plan) -> int:
    """Forwards without backward per micro-batch: DPO's reference (dpo_trainer.py _compute_loss);
    KTO's policy KL batch and, with a reference, its reference over the batch and the KL batch
    (kto_trainer.py); GRPO's reference (beta > 0) and, with vLLM, the old-policy log-probs for
    its importance-sampling correction, both over the generation batch (grpo_trainer.py)."""
    ref = int(reference_runs_in_step(plan))
    if plan.algorithm == "dpo":
        return ref
    if plan.algorithm == "kto":
        return 1 + 2 * ref
    if plan.algorithm == "grpo":
        return ref + int(plan.generation != "transformers")
    return 0


def reference_weights_bytes(plan: Plan, policy_weights_bytes: int) -> int:
    """A frozen copy: create_model_from_path with the policy's dtype and quantization_config
    (dpo_trainer.py / grpo_trainer.py __init__), prepared like the policy (sharded by FSDP /
    ZeRO-3 the same way), so it holds what the policy's base weights hold. adapter-off reuses the
    policy's weights; precomputed log-probs need no model during training."""
    return policy_weights_bytes if plan.reference == "copy" else 0


def no_grad_forward_peak_bytes(spec: ModelSpec, sequences: int, seq_len: int, stream_bytes: int,
                               linear_bytes: int, attn_bytes: int, scores_bytes: int,
                               rotary_sequences: int = 1, lora_out_bytes: int = 0) -> int:
    """Peak of one decoder block's forward under torch.no_grad (the reference, KTO's KL batch, a
    prefill; use_cache=False, as TRL's fused head passes): nothing is saved, so what is alive is
    what Python still references (transformers 5 LlamaModel / LlamaDecoderLayer.forward):
    inputs_embeds (held by the model's frame), the block input (the caller's hidden_states, the
    layer's residual), and then
    - in the MLP: the post-attention sum, its norm, and act(gate), up and their product
      (LlamaMLP.forward: down_proj(act_fn(gate_proj(x)) * up_proj(x))), beside the attention
      probabilities `_` of eager attention (`hidden_states, _ = self.self_attn(...)`);
    - in attention: the normed input, q, k, v after rotary, and for eager / math attention the
      repeat_kv copies, the [b, h, s, s] scores, softmax's fp32 upcast and output (16-bit) or its
      output (fp32); eager's [b, 1, s, s] additive mask and the rotary cos / sin live all forward.
    scores_bytes > 0 marks a kernel that materializes scores (BlockMemory.scores_bytes).
    rotary_sequences: the batch of cos / sin (1 where position_ids are [1, s], as in a training
    forward; generate's prefill builds them per sequence).
    lora_out_bytes > 0: the pass runs the policy with its adapters on (KTO's KL batch, GRPO's
    old-policy log-probs) and the MLP's input projections carry them: peft lora.Linear.forward
    computes `result + lora_B(lora_A(dropout(x))) * scaling` in the adapters' fp32 (x.to(fp32)),
    so while up_proj runs, beside act(gate) and up's base output, are x's fp32 copy (a 16-bit
    stream), lora_B's output and its scaled copy, lora_out_bytes each (4; autocast's 2)."""
    tokens = sequences * seq_len
    stream = tokens * spec.hidden_size * stream_bytes
    scores = sequences * spec.num_heads * seq_len * seq_len if scores_bytes else 0
    layers = [layer for _, layer in spec.layer_groups]
    mlp = max((3 if layer.gated_mlp else 2) * tokens * layer.mlp_width * linear_bytes for layer in layers)
    rotary = 2 * rotary_sequences * seq_len * spec.head_dim * attn_bytes   # cos, sin [r, s, head_dim]
    mask = sequences * seq_len ** 2 * attn_bytes if scores else 0  # eager's additive mask, all forward
    mlp_point = 4 * stream + mlp + scores * attn_bytes + mask + rotary
    qkv = tokens * (spec.num_heads + 2 * spec.num_kv_heads) * spec.head_dim * attn_bytes
    eager = 0
    if scores:
        softmax = scores * (attn_bytes + 8 if attn_bytes < 4 else 8)
        eager = 2 * tokens * spec.num_heads * spec.head_dim * attn_bytes + softmax + mask
    lora_point = 0
    if lora_out_bytes:
        layer = max(layers, key=lambda layer: layer.mlp_width)
        cast = tokens * spec.hidden_size * 4 if stream_bytes != 4 else 0
        lora_point = (4 * stream + (2 if layer.gated_mlp else 1) * tokens * layer.mlp_width * linear_bytes + cast
                      + 2 * tokens * layer.mlp_width * lora_out_bytes + scores * attn_bytes + mask + rotary)
    return max(mlp_point, 3 * stream + qkv + eager + rotary, lora_point)

