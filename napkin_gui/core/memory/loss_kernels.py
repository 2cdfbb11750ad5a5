"""Logits and loss under each `loss` kernel: bytes at the loss's peak, bytes the loop holds
through backward, and the formula naming the module modelled.

`standard` is transformers' full-vocabulary path, unchanged (core/memory/logits.py). The others:

- torchtune 0.6.1 `CEWithChunkedOutputLoss` (torchtune/modules/loss/ce_chunked_output_loss.py):
  the model returns `num_output_chunks` = 8 logit chunks in the model dtype
  (TransformerDecoder.chunked_output); `compute_cross_entropy` runs
  `F.cross_entropy(logits.float(), ...)` per chunk, so one chunk's fp32 copy is transient and
  every chunk's fp32 log_softmax output is saved. The recipe `del logits` before backward
  (recipes/lora_finetune_single_device.py), and backward walks the chunks one at a time:
  nll grad (fp32) + log_softmax grad (fp32) + the cast back (model dtype) of one chunk.
- Liger 0.8.5 `LigerFusedLinearCrossEntropyLoss` (liger_kernel/ops/fused_linear_cross_entropy.py,
  fused_linear_cross_entropy_forward): inc_factor = cdiv(V, chunk_mem_const * H) with
  chunk_mem_const = 1, chunk_size = min(next_power_of_2(cdiv(BT, inc_factor)), BT); one
  [chunk_size, V] logits buffer in the input dtype (overwritten in place by the CE kernel's
  gradient); grad_input [BT, H] and, when lm_head trains, grad_weight [V, H] are computed in
  forward and saved for backward (ctx.save_for_backward(grad_input, grad_weight, ...)).
  The model returns no logits.
- Apple cut cross-entropy (apple/ml-cross-entropy cut_cross_entropy/cce_lse_forward.py,
  cce_backward.py cce_backward_kernel): forward keeps the log-sum-exp [BT] fp32 only; backward
  allocates dE like e [BT, H] and, when the classifier trains, dC like c [V, H]
  (accum_e_fp32 / accum_c_fp32 off by default); logits are never materialized.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .logits import logits_held_bytes, logits_loss_peak_bytes

TORCHTUNE_OUTPUT_CHUNKS = 8      # CEWithChunkedOutputLoss(num_output_chunks=8)
LIGER_CHUNK_MEM_CONST = 1        # liger_kernel/ops/fused_linear_cross_entropy.py _CHUNK_MEM_CONST


class LossMemory(NamedTuple):
    peak_bytes: int     # logits & loss at the loss's own peak (forward or its backward)
    held_bytes: int     # what stays alive through backward and optimizer.step()
    formula: str


def torchtune_chunked_ce(tokens: int, vocab: int, logits_bytes: int,
                         chunks: int = TORCHTUNE_OUTPUT_CHUNKS) -> LossMemory:
    """CEWithChunkedOutputLoss: forward end = all chunks (model dtype) + every chunk's fp32
    log_softmax + one chunk's fp32 upcast; backward = the saved log_softmax + one chunk's grads."""
    elems = tokens * vocab
    chunk = math.ceil(tokens / chunks) * vocab
    forward = elems * (logits_bytes + 4) + chunk * 4
    backward = elems * 4 + chunk * (4 + 4 + logits_bytes)
    return LossMemory(max(forward, backward), 0,
                      f"torchtune CEWithChunkedOutputLoss, {chunks} chunks: {tokens:,} tokens x {vocab:,} vocab x "
                      f"(logits {logits_bytes} B + fp32 log-softmax) + one chunk's fp32 upcast and grads")


def liger_chunk_size(tokens: int, vocab: int, hidden: int) -> int:
    """Liger's token chunk: next_power_of_2(cdiv(BT, cdiv(V, chunk_mem_const * H))), at most BT."""
    inc = -(-vocab // (LIGER_CHUNK_MEM_CONST * hidden))
    return min(1 << max(0, math.ceil(math.log2(max(1, -(-tokens // inc))))), tokens)


def liger_fused_linear_ce(tokens: int, vocab: int, hidden: int, input_bytes: int,
                          head_trainable: bool, weight_bytes: int) -> LossMemory:
    """LigerFusedLinearCrossEntropyLoss: grad_input [BT, H] (+ grad_weight [V, H]) made in
    forward, one [chunk, V] logits buffer; nothing vocabulary-sized outlives the loss."""
    chunk = liger_chunk_size(tokens, vocab, hidden)
    grads = tokens * hidden * input_bytes + (vocab * hidden * weight_bytes if head_trainable else 0)
    peak = grads + chunk * vocab * input_bytes + tokens * 4   # + loss_1d [BT] fp32
    return LossMemory(peak, 0, f"Liger LigerFusedLinearCrossEntropyLoss, {math.ceil(tokens / chunk)} chunks of "
                               f"{chunk:,} tokens: grad_input {tokens:,} x {hidden:,}"
                               f"{' + lm_head grad' if head_trainable else ''} + one {chunk:,} x {vocab:,} logits chunk")


def cut_cross_entropy(tokens: int, vocab: int, hidden: int, input_bytes: int,
                      head_trainable: bool, weight_bytes: int) -> LossMemory:
    """Cut cross-entropy: lse [BT] fp32 kept; backward dE [BT, H] (+ dC [V, H])."""
    peak = tokens * 4 + tokens * hidden * input_bytes + (vocab * hidden * weight_bytes if head_trainable else 0)
    return LossMemory(peak, 0, f"Apple cut_cross_entropy linear_cross_entropy: lse {tokens:,} x fp32 + "
                               f"dE {tokens:,} x {hidden:,}{' + dC' if head_trainable else ''}; logits never materialized")


def standard_ce(tokens: int, vocab: int, logits_bytes: int, softcap: bool) -> LossMemory:
    """transformers ForCausalLMLoss on full-vocabulary logits (core/memory/logits.py)."""
    return LossMemory(logits_loss_peak_bytes(tokens, vocab, logits_bytes, softcap),
                      logits_held_bytes(tokens, vocab, logits_bytes),
                      f"{tokens:,} tokens x {vocab:,} vocab x (logits {logits_bytes} B"
                      " + fp32 log-softmax + its grad + fp32 logit grad)")


LITGPT_CHUNK_TOKENS = 128   # litgpt/finetune/lora.py fit(): model(input_ids, lm_head_chunk_size=128)


def litgpt_chunked_ce(batch: int, seq_len: int, vocab: int, logits_bytes: int) -> LossMemory:
    """litgpt 0.5.13 chunked_cross_entropy (litgpt/utils.py): the model returns logits in
    128-token chunks of the model dtype and CE runs on them without an upcast (log_softmax saved
    in that dtype); fit() keeps the logits list alive through backward."""
    elems = batch * seq_len * vocab
    chunk = batch * min(seq_len, LITGPT_CHUNK_TOKENS) * vocab
    peak = elems * 2 * logits_bytes + chunk * 2 * logits_bytes
    return LossMemory(peak, elems * logits_bytes,
                      f"litgpt chunked_cross_entropy, {LITGPT_CHUNK_TOKENS}-token chunks: {batch * seq_len:,} tokens x "
                      f"{vocab:,} vocab x (logits {logits_bytes} B + log-softmax {logits_bytes} B) + one chunk's grads")


def loss_memory(plan, spec, logits_bytes: int) -> LossMemory:
    """The plan's loss kernel (plan.loss under plan.framework) as LossMemory."""
    tokens = plan.batch_size * plan.seq_len
    vocab, hidden = spec.vocab_size, spec.hidden_size
    head_trainable = plan.method == "full"
    weight_bytes = 4 if plan.param_dtype == "fp32" else 2
    if plan.framework == "unsloth":
        from ..frameworks import unsloth   # unsloth.py builds LossMemory values
        if plan.loss == "fused-linear-ce":
            hidden_bytes = 4 if plan.precision == "fp32" else 2
            return unsloth.fused_ce(tokens, vocab, hidden, hidden_bytes, logits_bytes, head_trainable, weight_bytes)
        return unsloth.fast_cross_entropy(tokens, vocab, logits_bytes)
    if plan.loss == "chunked-ce" and plan.framework == "litgpt":
        return litgpt_chunked_ce(plan.batch_size, plan.seq_len, vocab, logits_bytes)
    if plan.loss == "chunked-ce":
        return torchtune_chunked_ce(tokens, vocab, logits_bytes)
    if plan.loss == "fused-linear-ce":
        return liger_fused_linear_ce(tokens, vocab, hidden, logits_bytes, head_trainable, weight_bytes)
    if plan.loss == "cut-ce":
        return cut_cross_entropy(tokens, vocab, hidden, logits_bytes, head_trainable, weight_bytes)
    return standard_ce(tokens, vocab, logits_bytes, spec.final_logit_softcapping is not None)
