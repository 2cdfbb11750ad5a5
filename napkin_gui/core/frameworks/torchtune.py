"""torchtune 0.6.1 (+ torchao 0.17): its decoder block, LoRALinear, DoRALinear and NF4 weights.

What one TransformerSelfAttentionLayer saves for backward (torchtune/modules/transformer.py,
forward: h = sa_norm(x); attn(h, h) + x; mlp(mlp_norm(h)) + h), op by op:
- RMSNorm (torchtune/modules/rms_norm.py): `F.rms_norm(x.float(), weight=self.scale).to(x.dtype)`.
  The fp32 input and a bf16 scale do not take torch's fused kernel (layer_norm.cpp: "Mismatch
  dtype between input and weight ... Cannot dispatch to fused implementation"), so the composite
  x * rsqrt(mean(x^2) + eps) * scale saves the fp32 x and the fp32 rstd per token, and, when the
  scale is trainable, the fp32 normalized x as well.
- MultiHeadAttention (torchtune/modules/attention.py): q/k projections -> RotaryPositionalEmbeddings
  (torchtune/modules/position_embeddings.py: x.float() * the fp32 cache, `.type_as(x)`: only the
  shared cache is saved) -> k, v `expand(...).flatten(1, 2)` to every query head (a copy) ->
  `F.scaled_dot_product_attention(is_causal=True)`, which saves q, the expanded k and v, its
  output and the fp32 logsumexp. The output, `.transpose(1, 2).contiguous()`, is a view of the
  kernel's [b, s, h, d] output, so output_proj's saved input is the same storage.
- FeedForward (torchtune/modules/feed_forward.py): w2(silu(w1(x)) * w3(x)): silu saves its input,
  the product saves both factors (3 x intermediate), w2 reads the product.
- LoRALinear (torchtune/modules/peft/lora.py): `lora_b(lora_a(dropout(x)))` with its own
  nn.Dropout per linear (nn.Identity at dropout 0, the recipes' default): lora_a saves x itself
  (no cast: adapters are in the model dtype, the recipe builds the model under
  `training.set_default_dtype(dtype)` and checks it with validate_expected_param_dtype), so
  linears fed by one tensor share it; lora_b saves the [tokens, r] output of lora_a.
- Frozen base linears (nn.Linear, FrozenNF4Linear, torchao's `linear_nf4`) save no activation:
  LinearNF4.forward saves only the NF4 weight (torchao/dtypes/nf4tensor.py, LinearNF4).

Verified on CPU against torchtune's own builders (tests/test_frameworks_real_torch.py).
"""
from __future__ import annotations

import math

from ..memory import activations as act
from ..memory.activations import ActivationDtypes
from ..model_spec import DecoderLayer

VERSION = "torchtune 0.6.1, torchao 0.17"

# torchao/dtypes/nf4tensor.py to_nf4(tensor, block_size=64, scaler_block_size=256)
NF4_BLOCK_SIZE = 64
NF4_SCALER_BLOCK_SIZE = 256
# per NF4Tensor: scaler_mean (a 0-d tensor) + the 16-entry nf4 lookup table, in the weight dtype
NF4_TABLE_ELEMENTS = 1 + 16

# The recipe configs' values (recipes/configs/llama3_1/*.yaml, torchtune 0.6.1) that change memory;
# core/stack_defaults.py turns them into plan defaults.
RECIPE_DEFAULTS = {
    "lora_finetune_single_device": {"enable_activation_checkpointing": True, "enable_activation_offloading": False,
                                    "compile": False, "dtype": "bf16", "optimizer": "torch.optim.AdamW(fused=True)",
                                    "loss": "CEWithChunkedOutputLoss", "lora_dropout": 0.0, "lora_rank": 8},
    "lora_finetune_distributed": {"enable_activation_checkpointing": False, "enable_activation_offloading": False,
                                  "compile": False, "dtype": "bf16", "optimizer": "torch.optim.AdamW(fused=True)",
                                  "loss": "CEWithChunkedOutputLoss", "lora_dropout": 0.0, "lora_rank": 8},
    "full_finetune_single_device": {"enable_activation_checkpointing": True, "enable_activation_offloading": False,
                                    "compile": False, "dtype": "bf16", "optimizer": "bitsandbytes.optim.PagedAdamW8bit",
                                    "optimizer_in_bwd": True, "loss": "CEWithChunkedOutputLoss"},
    "full_finetune_distributed": {"enable_activation_checkpointing": True, "enable_activation_offloading": False,
                                  "compile": False, "dtype": "bf16", "optimizer": "torch.optim.AdamW(fused=True)",
                                  "optimizer_in_bwd": False, "loss": "CEWithChunkedOutputLoss"},
}
# torch.optim.AdamW(fused=True) (the LoRA and distributed configs) updates every parameter in
# one kernel in place: no foreach temporaries (torch/optim/adam.py _fused_adam).
ADAMW_FUSED = True


def norm_saved_bytes(width: int, trainable_scale: bool) -> int:
    """torchtune RMSNorm per token: fp32 x (4 B/elem) + fp32 rstd (4 B); + the fp32 normalized x
    when the scale is trained (full fine-tuning)."""
    return width * (8 if trainable_scale else 4) + 4


def lora_saved_bytes(d_in: int, rank: int, elem: int, dropout: bool, input_saved: bool) -> int:
    """One LoRALinear per token: lora_b's [r] input, and lora_a's input: with dropout a bool mask
    (CUDA native_dropout) + the dropped copy; without, x itself, unless that tensor is saved
    already (input_saved: another linear of the same input or the base weight's gradient)."""
    if dropout:
        x = d_in * (1 + elem)
    else:
        x = 0 if input_saved else d_in * elem
    return x + rank * elem


def dora_extra_saved_bytes(d_in: int, d_out: int, rank: int, elem: int) -> tuple[int, int]:
    """DoRALinear (torchtune/modules/peft/dora.py forward) beyond LoRALinear: (per token, per layer).

    (mag_norm_scale - 1) * base_out saves base_out and mag_norm_scale * lora_out saves lora_out
    (2 x d_out per token); lora_b(lora_a(eye)) builds the adapter's weight through the modules,
    so lora_a saves the [d_in, d_in] identity and lora_b its [d_in, r] product, per linear.
    """
    return 2 * d_out * elem, (d_in * d_in + d_in * rank) * elem


def block_saved_bytes_per_token(layer: DecoderLayer, hidden: int, num_heads: int, num_kv_heads: int,
                                head_dim: int, kernel: str, dt: ActivationDtypes,
                                lora_targets: frozenset[int], qk_norm: bool = False) -> int:
    """Everything one TransformerSelfAttentionLayer saves per token except the s^2 scores.

    Linears are grouped by the tensor they read (activations.linear_role): q/k/v read sa_norm's
    output, output_proj attention's output (already saved by sdpa), w1/w3 mlp_norm's output,
    w2 the silu(w1) * w3 product.
    """
    elem = dt.linear_out
    roles = act.linear_roles(layer)
    input_bytes = act.role_input_bytes(dt)
    total = layer.norms * norm_saved_bytes(hidden, dt.base_trainable)
    saved_roles = {"attn_out"}  # sdpa's output is output_proj's input (same storage)
    if dt.base_trainable:
        for i, lin in enumerate(layer.linears):
            if roles[i] not in saved_roles or lin.count > 1:
                total += lin.active * lin.d_in * input_bytes[roles[i]]
            saved_roles.add(roles[i])
    for i in sorted(lora_targets):
        lin = layer.linears[i]
        total += lin.active * lora_saved_bytes(lin.d_in, dt.lora_rank, elem, dt.lora_dropout, roles[i] in saved_roles)
        if not dt.lora_dropout:
            saved_roles.add(roles[i])
    total += act.attention_saved_bytes_per_token(num_heads, num_kv_heads, head_dim, head_dim, kernel, False, dt)
    if qk_norm:  # q_norm / k_norm are torchtune RMSNorms over head_dim
        total += (num_heads + num_kv_heads) * norm_saved_bytes(head_dim, dt.base_trainable)
    total += act.mlp_saved_bytes(layer, dt)
    total += act.moe_routing_saved_bytes(layer, hidden, dt)
    return total


def final_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes) -> int:
    """TransformerDecoder.unembed: norm(h) (torchtune RMSNorm), then output(h) saves h when the
    output projection is trained."""
    return norm_saved_bytes(hidden, dt.base_trainable) + (hidden * dt.stream if dt.base_trainable else 0)


def first_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes) -> int:
    """The first block's sa_norm reads the frozen embedding's output: with no trainable scale
    and an input that needs no gradient it saves nothing (LoRA; torchtune registers no
    enable_input_require_grads hook)."""
    return 0 if dt.base_trainable else norm_saved_bytes(hidden, False)


def nf4_weight_bytes(numel: int, weight_bytes: int) -> int:
    """One torchao NF4Tensor (to_nf4 defaults): quantized_data (uint8, two codes a byte),
    quantized_scalers (int8, one per 64 weights), quantization_factor (one per 256 scalers) and
    scaler_mean + the 16-entry nf4 table, both in the weight's dtype (torchao/dtypes/nf4tensor.py
    NF4Tensor.from_tensor, double_quantize_scalers)."""
    blocks = math.ceil(numel / NF4_BLOCK_SIZE)
    scaler_blocks = math.ceil(blocks / NF4_SCALER_BLOCK_SIZE)
    return math.ceil(numel / 2) + blocks + (scaler_blocks + NF4_TABLE_ELEMENTS) * weight_bytes


def nf4_dequant_transient_bytes(numel: int, weight_bytes: int) -> int:
    """Peak scratch of one NF4Tensor.get_original_weight() (called by linear_nf4 forward and
    backward): the high and low nibbles as int64 (8 B per half), their dequantized values, and
    the bf16 weight it returns. torchao/dtypes/nf4tensor.py get_original_weight: both int64
    index tensors and both dequantized halves are alive when the scaled halves are stacked."""
    half = math.ceil(numel / 2)
    return 2 * half * 8 + 2 * half * weight_bytes + numel * weight_bytes
