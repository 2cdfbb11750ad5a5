"""litgpt 0.5.13: its GPT block (litgpt/model.py), LoRA (litgpt/lora.py) and quantized weights.

What one litgpt Block saves for backward (Block.forward, non-parallel residual:
x = attn(norm_1(x)) + x; x = mlp(norm_2(x)) + x), op by op:
- RMSNorm (litgpt/model.py RMSNorm.forward): x.float(); mean(x * x); x * rsqrt(.) and
  `x_normed * weight.float()`: saves the fp32 x and the fp32 rsqrt per token, the fp32 normalized
  x when the weight is trained. LayerNorm (torch.nn.LayerNorm, GPT-NeoX / Phi) saves its input
  and the fp32 mean and rstd per token.
- CausalSelfAttention: one fused `qkv` linear; q, k, v are split views of its output; RoPE
  (apply_rope: x * cos + rotated * sin with fp32 cos/sin) saves only the caches; q and k are new
  tensors (torch.cat of the roped and the pass-through part); with grouped queries k and v are
  `repeat_interleave`d to every head (copies). `F.scaled_dot_product_attention(is_causal=True)`
  saves q, k, v, its output and the fp32 logsumexp. Without grouped queries v reaches sdpa as a
  view of the qkv output, so the whole fused output stays alive. sdpa's output follows q's
  layout (CUDA flash: `out = at::empty_like(q_padded)` in flash_api.cpp mha_fwd; CPU flash alike),
  and litgpt's q is a contiguous [b, h, s, d] tensor, so `y.transpose(1, 2).reshape(B, T, C)`
  copies it: `proj` saves that copy when it is trained or has an adapter (torchtune's q keeps a
  [b, s, h, d] layout and shares the storage instead).
- MLPs: LLaMAMLP `proj(silu(fc_1(x)) * fc_2(x))` and GemmaMLP (tanh GELU) save 3 x intermediate;
  GptNeoxMLP `proj(F.gelu(fc(x), approximate=...))`: one aten gelu, which saves only its input
  (transformers' python gelu_new saves 4 tensors: core/memory/precision.py PYTHON_GELU_SAVED).
- LoRA (litgpt/lora.py): LoRAQKVLinear has one lora_A [r x n_enabled, d_in] and one lora_dropout
  shared by q, k and v: `F.linear(lora_dropout(x), lora_A)` saves x (or its dropped copy + mask)
  once for the three, and conv1d saves the [tokens, r x n_enabled] product. LoRALinear
  (proj, fc_1, fc_2, mlp proj, lm_head) has its own dropout each; `dropout(x) @ A.T @ B.T`
  saves x and the [tokens, r] product. With only some of q, k, v enabled, zero_pad's
  `new_zeros(...).index_copy_(-1, lora_ind, after_B)` saves after_B ([tokens, enabled widths]).
  Adapters are created in the default dtype of
  `fabric.init_module()`: bf16 under `bf16-true`, fp32 under `bf16-mixed` (fp32 weights,
  autocast), and the optimizer states follow them.
- Quantization (litgpt/finetune/lora.py setup with `--quantize bnb.nf4[-dq]`): lightning's
  BitsandbytesPrecision(mode, dtype) with no ignore_modules replaces every nn.Linear, lm_head
  included (lightning/fabric/plugins/precision/bitsandbytes.py _convert_layers); the embedding
  and norms stay in the `-true` dtype; the optimizer becomes bnb.optim.PagedAdamW
  (litgpt/utils.py instantiate_bnb_optimizer).

Verified on CPU against litgpt.model.GPT and litgpt.lora.GPT (tests/test_frameworks_real_torch.py).
"""
from __future__ import annotations

from ..memory import activations as act
from ..memory.activations import ActivationDtypes
from ..model_spec import DecoderLayer

VERSION = "litgpt 0.5.13"

# litgpt/finetune/lora.py setup() defaults and fit(): `model(input_ids, lm_head_chunk_size=128)`
# then `chunked_cross_entropy(logits, targets, chunk_size=128)` (litgpt/utils.py).
LM_HEAD_CHUNK_TOKENS = 128
FINETUNE_LORA_DEFAULTS = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_query": True,
                          "lora_key": False, "lora_value": True, "lora_projection": False, "lora_mlp": False,
                          "lora_head": False, "micro_batch_size": 1, "precision": "bf16-mixed",
                          "quantized_optimizer": "bitsandbytes.optim.PagedAdamW"}
QKV_NAMES = frozenset({"q_proj", "k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value", "Wqkv", "W_pack"})


def norm_saved_bytes(width: int, dt: ActivationDtypes, rms: bool) -> int:
    """Per token: RMSNorm fp32 x + fp32 rsqrt (+ fp32 x_normed when trained); LayerNorm its
    input + fp32 mean and rstd."""
    if rms:
        return width * (8 if dt.base_trainable else 4) + 4
    return width * dt.stream + 8


def lora_saved_bytes(d_in: int, rank_width: int, elem: int, dropout: bool, input_saved: bool) -> int:
    """One LoRA branch per token: the product x @ A.T ([rank_width], the adapter dtype) and x itself
    (or, with dropout, CUDA's bool mask + the dropped copy), unless x is saved already."""
    if dropout:
        x = d_in * (1 + elem)
    else:
        x = 0 if input_saved else d_in * elem
    return x + rank_width * elem


def block_saved_bytes_per_token(layer: DecoderLayer, hidden: int, num_heads: int, num_kv_heads: int,
                                head_dim: int, kernel: str, dt: ActivationDtypes,
                                lora_targets: frozenset[int], rms: bool = True, qk_norm: bool = False,
                                act_saved_per_width: int = 1) -> int:
    """Everything one litgpt Block saves per token except the s^2 scores.

    The plan's q/k/v linears are litgpt's one fused qkv: its LoRA saves one input and one
    [r x n_enabled] product. act_saved_per_width: 1 for litgpt's aten GELU / SiLU.
    """
    elem = dt.linear_out
    roles = act.linear_roles(layer)
    input_bytes = act.role_input_bytes(dt)
    total = layer.norms * norm_saved_bytes(hidden, dt, rms)
    saved_roles: set[str] = set()  # proj reads a copy of sdpa's output (see the module docstring)
    if dt.base_trainable:
        for i, lin in enumerate(layer.linears):
            if roles[i] not in saved_roles or lin.count > 1:
                total += lin.active * lin.d_in * input_bytes[roles[i]]
            saved_roles.add(roles[i])
    qkv = [i for i in sorted(lora_targets) if layer.linears[i].name in QKV_NAMES]
    if qkv:  # LoRAQKVLinear: one dropout, one lora_A for every enabled part
        lin = layer.linears[qkv[0]]
        width = dt.lora_rank * sum(3 if layer.linears[i].name not in ("q_proj", "k_proj", "v_proj") else 1
                                   for i in qkv)
        total += lora_saved_bytes(lin.d_in, width, elem, dt.lora_dropout, "attn_in" in saved_roles)
        if width < 3 * dt.lora_rank:  # zero_pad's index_copy_ keeps the [tokens, enabled widths] update
            total += sum(layer.linears[i].d_out for i in qkv) * elem
        if not dt.lora_dropout:
            saved_roles.add("attn_in")
    for i in sorted(set(lora_targets) - set(qkv)):
        lin = layer.linears[i]
        total += lin.active * lora_saved_bytes(lin.d_in, dt.lora_rank, elem, dt.lora_dropout,
                                               roles[i] in saved_roles)
        if not dt.lora_dropout:
            saved_roles.add(roles[i])
    total += act.attention_saved_bytes_per_token(num_heads, num_kv_heads, head_dim, head_dim, kernel, False, dt)
    if num_kv_heads == num_heads:  # v is a view of the fused qkv output: q and k parts stay alive too
        total += (num_heads + num_kv_heads) * head_dim * dt.linear_out
    if qk_norm:
        total += norm_saved_bytes((num_heads + num_kv_heads) * head_dim, dt, rms=True)
    width = layer.mlp_width
    total += 3 * width * elem if layer.gated_mlp else act_saved_per_width * width * elem
    total += act.moe_routing_saved_bytes(layer, hidden, dt)
    return total


def final_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes, rms: bool = True) -> int:
    """GPT.forward: ln_f(x), then lm_head saves its input when trained."""
    return norm_saved_bytes(hidden, dt, rms) + (hidden * dt.stream if dt.base_trainable else 0)


def first_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes, rms: bool = True) -> int:
    """The first block's norm_1 reads the frozen wte output under LoRA: it saves nothing."""
    return 0 if dt.base_trainable else norm_saved_bytes(hidden, dt, rms)
