"""Unsloth (unslothai/unsloth 2026.8.19, unslothai/unsloth-zoo 2026.8.13): its LoRA autograd
Functions, Triton RMSNorm / RoPE / cross-entropy kernels, fused chunked linear cross-entropy,
offloaded ("smart") gradient checkpointing and its bitsandbytes 4-bit path.

Unsloth runs only on CUDA (Triton kernels), so nothing here runs on CPU: every figure below
is counted from the source lines cited, and tests/test_frameworks_unsloth.py checks the
arithmetic. What one decoder layer saves for backward (unsloth/models/llama.py
LlamaDecoderLayer_fast_forward: norm -> attention -> residual add -> norm -> MLP -> add):

- RMSNorm, `fast_rms_layernorm` (unsloth/kernels/rms_layernorm.py Fast_RMS_Layernorm.forward):
  `ctx.save_for_backward(X, W, r)`: its input X itself (no fp32 copy) and the fp32 inverse
  rms r [rows]; backward writes dX into dY (non-Gemma).
- LoRA on q, k, v together (unsloth/kernels/fast_lora.py LoRA_QKV.forward):
  `ctx.save_for_backward(X, QA, QB, KA, KB, VA, VB)`: only the (normalized) input X; Q, K, V and
  the [tokens, r] products X @ A are not saved (backward recomputes X.t() @ ... from X).
- RoPE, `fast_rope_embedding` (unsloth/kernels/rope_embedding.py Fast_RoPE_Embedding_QK): in
  place, `Q.clone() if not Q.is_contiguous()`: the [b, h, s, d] transposes of LoRA_QKV's output
  are not contiguous, so Q and K are copied once; those copies are what attention saves. Only
  cos / sin (shared caches) are kept on ctx.
- Attention (unsloth/utils/attention_dispatch.py run_attention): flash-attn's
  flash_attn_func when installed (saves q, k, v at their kv-head width, out, fp32 lse; out is
  [b, s, h, d], so o_proj's `A.reshape(...)` is a view of it), else SDPA with
  `enable_gqa=True` (torch >= 2.5), whose `out.transpose(1, 2)` makes o_proj's reshape a copy.
  napkin's `attention: flash` is flash-attn, `sdpa` (and `eager`, which unsloth never runs in
  training) the SDPA path. (xformers, the third backend, expands k and v to every head under
  GQA; it is not a value of napkin's attention field.)
- LoRA on o_proj (LoRA_W.forward): `ctx.save_for_backward(A, B, X)`: its input only.
- LoRA on gate, up and down together (LoRA_MLP.forward):
  `ctx.save_for_backward(gateA, gateB, upA, upB, downA, downB, X, e, g)`: the input X and the
  gate and up outputs e, g (2 x intermediate); h = swiglu(e, g) is not saved, backward
  (swiglu_DWf_DW_dfg_kernel) rebuilds it in place in the DW buffer.
- These fused paths need lora_dropout == 0 and no bias (FastLlamaModel.patch_peft_model:
  `if lora_dropout == 0 and bias == "none"`, per group: q, k, v all with lora_A and no bias;
  gate, up, down all; o alone); any other target goes through peft's Linear.forward and saves
  what it saves under transformers (core/memory/activations.py).
- Adapters are fp32 (unsloth_zoo/training_utils.py prepare_model_for_training: `.lora_A.` /
  `.lora_B.` upcast = True -> torch.float32); every other parameter keeps its loaded 16-bit
  dtype: no fp32 norms or embeddings (unsloth/models/_utils.py prepare_model_for_kbit_training
  calls it with train_layernorms / train_embedding / train_lm_head False).

4-bit (load_in_4bit: bitsandbytes NF4, double quant): storage as transformers' bnb path. The
forward's `matmul_lora` dequantizes through `fast_dequantize(W, W_quant, use_global_buffer=True)`
(unsloth/kernels/utils.py): one persistent WEIGHT_BUFFER of the largest weight (16 bit) and an
fp32 ABSMAX_BUFFER (one per 64 weights), resized up, never freed; backward's
`fast_dequantize(W.t(), W_quant)` allocates a fresh weight (+ absmax) and `del`s it.

Gradient checkpointing "unsloth" (unsloth_zoo/gradient_checkpointing.py
UnslothCheckpointFunction, patched over torch.utils.checkpoint by
patch_unsloth_smart_gradient_checkpointing): each checkpointed layer's input hidden states,
when larger than MINIMUM_SIZE (2 MiB), are copied on a side stream into a pinned CPU buffer
(CPU_BUFFERS[CPU_INDEX], 200 buffers of 128 Ki elements made up front, resized to fit) and
dropped from the GPU; the last layer's input stays on the GPU (`CURRENT_GC_INDEX !=
LAST_GC_INDEX` after the first pass). Backward copies each back into GPU_BUFFER (or, double
buffered, GPU_BUFFERS_B in turn): two persistent [tokens, hidden] device buffers when at least
DOUBLE_BUFFER_HEADROOM (512 MiB) was free at the second step. Below max_seq_length 512
(apply_unsloth_gradient_checkpointing, unsloth/models/_utils.py) unsloth uses plain
checkpointing (use_gradient_checkpointing=True) instead.

Loss: CausalLM_fast_forward (unsloth/models/llama.py) calls unsloth_fused_ce_loss
(unsloth_zoo/fused_losses/cross_entropy_loss.py) unless UNSLOTH_RETURN_LOGITS=1, which
takes full bf16 logits to `fast_cross_entropy_loss` (unsloth/kernels/cross_entropy_loss.py).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ..memory import activations as act
from ..memory.activations import ActivationDtypes
from ..memory.loss_kernels import LossMemory
from ..model_spec import DecoderLayer

VERSION = "unsloth 2026.8.19, unsloth_zoo 2026.8.13"

# unsloth_zoo/gradient_checkpointing.py
MINIMUM_OFFLOAD_BYTES = 2 * 1024 * 1024          # MINIMUM_SIZE = 2 MiB // element bytes
INITIAL_CPU_BUFFER_COUNT = 200                    # initialize_unsloth_gradient_checkpointing
INITIAL_CPU_BUFFER_ELEMENTS = 128 * 1024
INITIAL_GPU_BUFFER_ELEMENTS = 2 * 256 * 2048
OFFLOAD_MIN_SEQ_LEN = 512                         # unsloth/models/_utils.py apply_unsloth_gradient_checkpointing
# unsloth_zoo/fused_losses/cross_entropy_loss.py _get_chunk_multiplier: target_gb = min(free / 2, 4.0)
FUSED_CE_TARGET_CAP_BYTES = 4 * 2**30
# unsloth/kernels/utils.py MAX_FUSED_SIZE: Fast_CrossEntropyLoss splits a row's logsumexp over
# ceil(vocab / 65536) chunks
MAX_FUSED_SIZE = 65536
NF4_BLOCK_SIZE = 64                               # bnb blocksize of the absmax the dequant expands

QKV = ("q_proj", "k_proj", "v_proj")
MLP = ("gate_proj", "up_proj", "down_proj")

# studio/backend/assets/configs/model_defaults/default.yaml (unsloth's defaults for models
# without their own file) and FastLlamaModel.get_peft_model's signature (unsloth/models/llama.py)
TRAINING_DEFAULTS = {"gradient_checkpointing": "unsloth", "optim": "adamw_8bit", "lora_r": 16,
                     "lora_alpha": 16, "lora_dropout": 0.0, "max_seq_length": 2048,
                     "target_modules": QKV + ("o_proj",) + MLP}


class FastPaths(NamedTuple):
    """Which of a layer's LoRA groups run through unsloth's autograd Functions."""

    qkv: bool
    o: bool
    mlp: bool


def fast_paths(layer: DecoderLayer, lora_targets: frozenset[int], dropout: bool) -> FastPaths:
    """FastLlamaModel.patch_peft_model: only with lora_dropout 0; q/k/v (and gate/up/down) all
    adapted and bias-free; o_proj on its own."""
    if dropout:
        return FastPaths(False, False, False)
    adapted = {layer.linears[i].name: layer.linears[i] for i in lora_targets}

    def group(names: tuple[str, ...]) -> bool:
        return all(n in adapted and not adapted[n].bias and adapted[n].count == 1 for n in names)

    mlp = group(MLP) and layer.gated_mlp and not layer.num_experts
    return FastPaths(group(QKV), group(("o_proj",)), mlp)


def rms_norm_saved_bytes(width: int, stream: int) -> int:
    """Fast_RMS_Layernorm per token: its input X (stream dtype) + the fp32 inverse rms r."""
    return width * stream + 4


def block_saved_bytes_per_token(layer: DecoderLayer, hidden: int, num_heads: int, num_kv_heads: int,
                                head_dim: int, flash_attn: bool, dt: ActivationDtypes,
                                lora_targets: frozenset[int], qk_norm: bool = False) -> int:
    """Everything one unsloth decoder layer saves per token (LoRA / QLoRA; no s^2 term: both
    attention backends keep no scores)."""
    elem = dt.linear_out
    paths = fast_paths(layer, lora_targets, dt.lora_dropout)
    roles = act.linear_roles(layer)
    input_bytes = act.role_input_bytes(dt)
    total = layer.norms * rms_norm_saved_bytes(hidden, dt.stream)
    fused = set(QKV if paths.qkv else ()) | ({"o_proj"} if paths.o else set()) | set(MLP if paths.mlp else ())
    if paths.qkv:
        total += hidden * elem            # LoRA_QKV: X
    total += act.attention_saved_bytes_per_token(num_heads, num_kv_heads, head_dim, head_dim, "flash", True, dt)
    if paths.o and not flash_attn:
        total += num_heads * head_dim * elem   # SDPA's out.transpose(1, 2) reshaped: a copy LoRA_W saves
    if qk_norm:   # Qwen3: fast_rms_layernorm over each head of q and k
        total += (num_heads + num_kv_heads) * rms_norm_saved_bytes(head_dim, elem)
    if paths.mlp:
        total += hidden * elem + 2 * layer.mlp_width * elem   # LoRA_MLP: X, e, g
    else:
        total += act.mlp_saved_bytes(layer, dt)
    peft_roles: set[str] = set()
    for i in sorted(lora_targets):
        lin = layer.linears[i]
        if lin.name in fused:
            continue
        role = roles[i]   # peft Linear.forward: fp32 copy of x (or mask + copy) and x @ A
        total += act.lora_saved_bytes(lin, input_bytes[role], dt, input_shared=role in peft_roles)
        peft_roles.add(role)
    total += act.moe_routing_saved_bytes(layer, hidden, dt)
    return total


def final_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes) -> int:
    """LlamaModel_fast_forward's final fast_rms_layernorm; the frozen lm_head (or the fused loss,
    which saves only gradients) keeps nothing of its output."""
    return rms_norm_saved_bytes(hidden, dt.stream)


def dequant_buffer_bytes(largest_weight_params: int, elem: int) -> int:
    """fast_dequantize's WEIGHT_BUFFER (16 bit) + fp32 ABSMAX_BUFFER for the largest weight."""
    return largest_weight_params * elem + math.ceil(largest_weight_params / NF4_BLOCK_SIZE) * 4


def backward_transient_bytes(tokens: int, hidden: int, layer: DecoderLayer, dt: ActivationDtypes,
                             lora_targets: frozenset[int], dequant_bytes: int) -> int:
    """One layer's backward beyond its saved tensors: the stream gradients in and out; LoRA_MLP's
    DW = dY @ down.T [tokens, intermediate] (swiglu's backward then overwrites DW, e and g in
    place, and dX is written into X: `torch.matmul(..., out = X)`), else transformers' two MLP
    gradients; and under 4-bit one weight dequantized by fast_dequantize(W.t(), W_quant)."""
    stream_grads = 2 * tokens * hidden * dt.stream
    paths = fast_paths(layer, lora_targets, dt.lora_dropout)
    mlp = (1 if paths.mlp else 2) * tokens * layer.mlp_width * dt.linear_out
    return stream_grads + mlp + dequant_bytes


class OffloadedCheckpoint(NamedTuple):
    """What UnslothCheckpointFunction keeps where, for one micro-batch."""

    offloaded_layers: int      # layer inputs copied to pinned host buffers
    gpu_buffer_bytes: int      # GPU_BUFFER (+ GPU_BUFFERS_B): persistent device buffers
    host_bytes: int            # pinned CPU_BUFFERS


def offloaded_checkpoint(tokens: int, hidden: int, n_layers: int, elem: int, seq_len: int,
                         double_buffer: bool = True) -> OffloadedCheckpoint | None:
    """use_gradient_checkpointing="unsloth": None when unsloth falls back to plain
    checkpointing (max_seq_length < 512) or the layer input is not above MINIMUM_SIZE."""
    numel = tokens * hidden
    if seq_len < OFFLOAD_MIN_SEQ_LEN or numel <= MINIMUM_OFFLOAD_BYTES // elem or n_layers < 1:
        return None
    offloaded = n_layers - 1                       # the last layer's input stays on the GPU
    gpu_buffer = max(numel, INITIAL_GPU_BUFFER_ELEMENTS) * elem
    gpu = gpu_buffer * (2 if double_buffer else 1)
    resized = min(offloaded, INITIAL_CPU_BUFFER_COUNT)
    host = (offloaded * max(numel, INITIAL_CPU_BUFFER_ELEMENTS)
            + (INITIAL_CPU_BUFFER_COUNT - resized) * INITIAL_CPU_BUFFER_ELEMENTS) * elem
    return OffloadedCheckpoint(offloaded, gpu, host)


def fused_ce_chunks(tokens: int, vocab: int, target_bytes: int = FUSED_CE_TARGET_CAP_BYTES) -> int:
    """get_chunk_size: exact = fp32 logits bytes / target; 1 when it fits, else rounded up to a
    multiple of 4."""
    exact = tokens * vocab * 4 / target_bytes
    if exact <= 1.0 + 1e-9:
        return 1
    return math.ceil(exact / 4 - 1e-9) * 4


def fused_ce(tokens: int, vocab: int, hidden: int, hidden_bytes: int, logits_bytes: int,
             head_trainable: bool, weight_bytes: int,
             target_bytes: int = FUSED_CE_TARGET_CAP_BYTES) -> LossMemory:
    """UnslothFusedLoss (unsloth_zoo/fused_losses/cross_entropy_loss.py).

    forward: grad_inputs = empty_like(hidden_states) [BT, H] and, when lm_head trains,
    grad_lm_head = zeros_like(weight) are made first and saved for backward; each of n_chunks
    token chunks (torch.chunk: ceil(BT / n) rows) runs torch.func.grad_and_value over
    compute_fused_ce_loss under torch.compile: its [chunk, V] logits (lm_head dtype) and their
    gradient (same dtype), then the chunk's input gradient [chunk, H] (and [V, H] head gradient)
    before they are copied / added in. backward: `grad_inputs * scale_factor` is out of place:
    two [BT, H] at once. No logits outlive the loss."""
    chunks = fused_ce_chunks(tokens, vocab, target_bytes)
    rows = math.ceil(tokens / chunks)
    grad_in = tokens * hidden * hidden_bytes
    head = vocab * hidden * weight_bytes if head_trainable else 0
    forward = grad_in + head + rows * vocab * 2 * logits_bytes + rows * hidden * hidden_bytes + head
    backward = 2 * grad_in + 2 * head
    return LossMemory(max(forward, backward), 0,
                      f"unsloth_zoo UnslothFusedLoss, {chunks} chunk{'s' if chunks > 1 else ''} of {rows:,} tokens: "
                      f"grad_inputs {tokens:,} x {hidden:,}{' + lm_head grad' if head_trainable else ''}"
                      f" + one {rows:,} x {vocab:,} logits chunk and its gradient")


def fast_cross_entropy(tokens: int, vocab: int, logits_bytes: int) -> LossMemory:
    """UNSLOTH_RETURN_LOGITS=1: full logits from lm_head, then Fast_CrossEntropyLoss
    (unsloth/kernels/cross_entropy_loss.py): `ctx.save_for_backward(logits, logsumexp, labels)`
    keeps the logits themselves and an fp32 logsumexp [BT] (a [BT, ceil(V / 65536)] fp32
    partial when V > 65536), losses fp32 [BT]; backward writes the gradient into the logits
    (`return logits, ...`): nothing beyond the logits at any point."""
    chunks = -(-vocab // MAX_FUSED_SIZE)
    lse = tokens * 4 * (1 + (chunks if chunks > 1 else 0))
    peak = tokens * vocab * logits_bytes + lse + tokens * 4
    return LossMemory(peak, 0, f"unsloth Fast_CrossEntropyLoss: {tokens:,} tokens x {vocab:,} vocab x logits "
                               f"{logits_bytes} B (gradient written in place) + fp32 logsumexp")
