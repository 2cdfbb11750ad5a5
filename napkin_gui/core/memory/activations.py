"""Tensors a decoder block saves for backward, per token, and what checkpointing keeps instead.

Counted op by op from the forward of transformers' decoder blocks (modeling_llama.py and
siblings, transformers 4.45-5.x) with torch's autograd rule that an op saves an input only
when the gradient that needs it is required (generated VariableType code checks
should_compute_output). Byte sizes come from an `ActivationDtypes` that says which dtype
each tensor family is in for the plan (bf16, fp32 residual stream after kbit prep, autocast).
Verified per token against 8B LoRA / QLoRA runs on an H100 (shared/groundtruth, 2026-11).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..model_spec import DecoderLayer, LinearShape

# Linear names by the tensor that feeds them (HF module names).
ATTN_IN = frozenset({"q_proj", "k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value", "Wqkv",
                     "q_a_proj", "kv_a_proj_with_mqa", "W_pack"})
ATTN_LATENT = frozenset({"q_b_proj", "kv_b_proj"})
ATTN_OUT = frozenset({"o_proj", "out_proj", "dense"})
MLP_OUT = frozenset({"down_proj", "fc2", "w2", "dense_4h_to_h"})
ROUTER = frozenset({"gate", "router", "shared_expert_gate"})


@dataclass(frozen=True, slots=True)
class ActivationDtypes:
    """Element sizes (bytes) of each tensor family in one plan's forward."""

    stream: int            # residual stream and norm inputs (4 when embeddings are fp32)
    linear_out: int        # what base linears hand to the next op (bnb casts back to the input dtype)
    attn: int              # q/k/v/out as the attention kernel sees them
    base_trainable: bool   # full fine-tuning: linears and norms save their inputs
    autocast: bool         # mixed-*: every linear casts an fp32 input to its own 16-bit copy
    lora_rank: int = 0     # 0: no adapters
    lora_dropout: bool = True
    act_saved_per_width: int = 1  # tensors an activation saves per element (gelu_new in python: 4)


def linear_role(layer: DecoderLayer, index: int) -> str:
    """attn_in | attn_latent | attn_out | mlp_in | mlp_out | router for linear number `index`.

    GPT-2 names both projections c_proj: the first is attention's, the second the MLP's.
    """
    lin = layer.linears[index]
    if lin.name == "c_proj":
        first = next(i for i, other in enumerate(layer.linears) if other.name == "c_proj")
        return "attn_out" if index == first else "mlp_out"
    for role, names in (("attn_in", ATTN_IN), ("attn_latent", ATTN_LATENT), ("attn_out", ATTN_OUT),
                        ("mlp_out", MLP_OUT), ("router", ROUTER)):
        if lin.name in names:
            return role
    return "mlp_in"


def role_input_bytes(dt: ActivationDtypes) -> dict[str, int]:
    """Element size of the tensor a linear of each role reads: the residual stream (after a
    norm), attention's output, or the previous linear's output (MLA latents, down_proj)."""
    return {"attn_in": dt.stream, "attn_latent": dt.linear_out, "attn_out": dt.attn,
            "mlp_in": dt.stream, "mlp_out": dt.linear_out, "router": dt.stream}


_ROLES: dict[int, tuple[DecoderLayer, tuple[str, ...]]] = {}


def linear_roles(layer: DecoderLayer) -> tuple[str, ...]:
    """linear_role of every linear of the block, memoised by the block's identity (a spec and
    its blocks are frozen; each estimate asks ~40 times per block)."""
    hit = _ROLES.get(id(layer))
    if hit is not None and hit[0] is layer:
        return hit[1]
    roles = tuple(linear_role(layer, i) for i in range(len(layer.linears)))
    if len(_ROLES) >= 1024:
        _ROLES.clear()
    _ROLES[id(layer)] = (layer, roles)
    return roles


def norm_saved_bytes(width: int, dt: ActivationDtypes, rms: bool = True) -> int:
    """RMSNorm upcasts x to fp32 and saves it for pow/mul (4 B); a trainable weight also saves
    the normalized tensor (stream dtype). LayerNorm saves its input (fp32 under autocast)."""
    if rms:
        return width * (4 + (dt.stream if dt.base_trainable else 0))
    return width * (4 if dt.autocast else dt.stream)


def lora_saved_bytes(lin: LinearShape, input_bytes: int, dt: ActivationDtypes, input_shared: bool = False) -> int:
    """peft Linear.forward: x.to(fp32) -> dropout (saves a bool mask + its fp32 output for
    lora_A) -> lora_A (output [tokens, r] fp32 saved by lora_B). Without dropout lora_A saves
    the fp32 x: a copy of its own for a 16-bit input, or the input itself when that is fp32 -
    then linears fed by the same tensor share it (input_shared: already counted)."""
    if dt.lora_rank == 0:
        return 0
    if dt.lora_dropout:
        per_copy = lin.d_in * (1 + 4)
    elif input_bytes == 4:
        per_copy = 0 if input_shared else lin.d_in * 4
    else:
        per_copy = lin.d_in * 4
    return lin.active * (per_copy + 4 * dt.lora_rank)


def base_linear_input_bytes(layer: DecoderLayer, dt: ActivationDtypes, input_bytes: dict[str, int]) -> int:
    """Full fine-tuning: mm saves its input for the weight gradient. Linears fed by one tensor
    share it; under autocast each casts an fp32 input to its own 16-bit copy (autocast caches
    only leaf tensors). Routed experts save the gathered tokens they received."""
    if not dt.base_trainable:
        return 0
    total = 0
    seen: set[str] = set()
    for i, lin in enumerate(layer.linears):
        role = linear_role(layer, i)
        src = input_bytes[role]
        if dt.autocast and src == 4:
            total += lin.active * lin.d_in * 2
        elif lin.count > 1 or role not in seen:
            total += lin.active * lin.d_in * (2 if dt.autocast else src)
        seen.add(role)
    return total


def attention_saved_bytes_per_token(num_heads: int, num_kv_heads: int, head_dim: int, v_head_dim: int,
                                    kernel: str, native_gqa: bool, dt: ActivationDtypes) -> int:
    """q, k, v and the output kept by the attention kernel (the s^2 part is separate).

    flash / memory-efficient: q, k, v, out (+ fp32 logsumexp per head). k and v keep their
    kv-head width when the kernel does GQA itself (sdpa enable_gqa, flash-attn), else
    repeat_kv copies them to every head. math/eager: q and repeated k, v in the attention dtype.
    """
    kv_heads = num_kv_heads if (native_gqa and kernel == "flash") else num_heads
    q = num_heads * head_dim
    kv = kv_heads * (head_dim + v_head_dim)
    out = num_heads * v_head_dim if kernel == "flash" else 0
    lse = 4 * num_heads if kernel == "flash" else 0
    total = (q + kv + out) * dt.attn + lse
    # the output, made contiguous for o_proj, is saved by o_proj only when o_proj is trainable
    # (counted in base_linear_input_bytes)
    return total


def attention_scores_bytes(batch: int, num_heads: int, seq_len: int, kernel: str, dt: ActivationDtypes,
                           softcap: bool = False) -> int:
    """[b, heads, s, s] probabilities kept by math/eager attention; 0 for flash kernels.

    eager (modeling_llama.eager_attention_forward): softmax in fp32 (saved, 4 B) then
    .to(q dtype) saved by the matmul with v (2 B when 16-bit). sdpa's math fallback
    (fp32 inputs) keeps one fp32 softmax output. Gemma-2 softcapping adds tanh's output.
    """
    if kernel == "flash":
        return 0
    elems = batch * num_heads * seq_len * seq_len
    per_elem = 4
    if kernel == "eager" and dt.attn != 4:
        per_elem += dt.attn
    if softcap:
        per_elem += dt.attn
    return elems * per_elem


def mlp_saved_bytes(layer: DecoderLayer, dt: ActivationDtypes) -> int:
    """Gated: act(gate) saves gate, act*up saves act and up -> 3 x width. Plain: the activation
    saves its input (gelu_new written in python saves 4 tensors); in full fine-tuning the
    down projection's input is counted in base_linear_input_bytes."""
    width = layer.mlp_width
    if layer.gated_mlp:
        return 3 * width * dt.linear_out
    return dt.act_saved_per_width * width * dt.linear_out


def moe_routing_saved_bytes(layer: DecoderLayer, hidden: int, dt: ActivationDtypes) -> int:
    """Router softmax (fp32 [tokens, experts]) and expert outputs scaled by routing weights."""
    if layer.num_experts == 0:
        return 0
    top_k = max((lin.active for lin in layer.linears if lin.count > 1), default=1)
    return 4 * layer.num_experts + top_k * hidden * dt.linear_out


def layer_saved_bytes_per_token(layer: DecoderLayer, hidden: int, num_heads: int, num_kv_heads: int,
                                head_dim: int, v_head_dim: int, kernel: str, native_gqa: bool,
                                dt: ActivationDtypes, lora_targets: frozenset[int],
                                rms: bool = True, qk_norm: bool = False,
                                dropout_masks: int = 0) -> int:
    """Everything one block saves for backward, per token, except the attention s^2 term.

    lora_targets: indices of this block's linears that carry adapters.
    dropout_masks: hidden-sized dropouts after attention / MLP (bool mask each, GPT-2 style).
    """
    input_bytes = role_input_bytes(dt)
    total = layer.norms * norm_saved_bytes(hidden, dt, rms) if layer.norms else 0
    total += base_linear_input_bytes(layer, dt, input_bytes)
    lora_roles: set[str] = set()
    roles = linear_roles(layer)
    for i in sorted(lora_targets):
        role = roles[i]
        total += lora_saved_bytes(layer.linears[i], input_bytes[role], dt, input_shared=role in lora_roles)
        lora_roles.add(role)
    total += attention_saved_bytes_per_token(num_heads, num_kv_heads, head_dim, v_head_dim,
                                             kernel, native_gqa, dt)
    if qk_norm:
        total += norm_saved_bytes((num_heads + num_kv_heads) * head_dim, dt, rms=True)
    total += mlp_saved_bytes(layer, dt)
    total += moe_routing_saved_bytes(layer, hidden, dt)
    total += dropout_masks * hidden
    return total


def checkpoint_saved_bytes_per_token(hidden: int, dt: ActivationDtypes) -> int:
    """Non-reentrant checkpointing per block keeps only the block's input hidden states."""
    return hidden * dt.stream


def backward_transient_bytes(tokens: int, hidden: int, layer: DecoderLayer, dt: ActivationDtypes,
                             score_elements: int) -> int:
    """Working set of one block's backward beyond its saved tensors: the incoming and outgoing
    stream gradients, the MLP's intermediate gradients (grad of act*up, of gate, of up), and for
    math/eager attention three fp32 [b, h, s, s] gradients at once: of the probabilities, through
    _safe_softmax's where() (sdpa math) or the fp32->16-bit cast (eager), and of the scores.
    The H100 runs show 3.7x one fp32 score tensor on top of the saved one (llama-3.1-8b QLoRA,
    s=8192 with checkpointing, shared/groundtruth 2026-11)."""
    stream_grads = 2 * tokens * hidden * dt.stream
    mlp_grads = 2 * tokens * layer.mlp_width * dt.linear_out
    attn_grads = 3 * 4 * score_elements
    return stream_grads + max(mlp_grads, attn_grads)
