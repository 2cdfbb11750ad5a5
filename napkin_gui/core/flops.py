"""FLOPs of the operations a training step runs: linears, LoRA adapters, attention, lm_head.

A multiply-add is 2 FLOPs. Forward of a linear on M tokens is 2·M·d_in·d_out; its backward
is the input gradient (same count, always needed: the residual stream requires grad) plus
the weight gradient (same count, only for trainable weights), so full fine-tuning's backward
is 2x the forward and a frozen base's (LoRA / QLoRA) is 1x (Narayanan et al. 2021,
"Efficient Large-Scale Language Model Training on GPU Clusters", eq. 3 and its derivation).
Activation checkpointing runs each block's forward once more inside the backward.
"""
from __future__ import annotations

from .model_spec import DecoderLayer, LinearShape, ModelSpec, block_repeats

# FlashAttention-2's backward runs 5 matmuls (recomputes QK^T, then dV, dP, dQ, dK) for the
# forward's 2: 2.5x the forward FLOPs (Dao 2023, "FlashAttention-2", section 3.1.2).
FLASH_BACKWARD_RATIO = 2.5


def linear_flops(tokens: int, lin: LinearShape) -> float:
    """Forward FLOPs of one linear on `tokens` tokens; each token visits `active` expert copies."""
    return 2.0 * tokens * lin.active * lin.d_in * lin.d_out


def lora_flops(tokens: int, lin: LinearShape, rank: int) -> float:
    """Forward FLOPs of LoRA's A (d_in -> r) and B (r -> d_out) on one targeted linear."""
    return 2.0 * tokens * lin.active * rank * (lin.d_in + lin.d_out)


def attended_keys(seq_len: int, sliding_window: int | None) -> float:
    """Average keys a query sees under a causal mask: (s + 1) / 2, or ~ the window when shorter."""
    if sliding_window is not None and sliding_window < seq_len:
        w = sliding_window
        return (w * (w + 1) / 2 + (seq_len - w) * w) / seq_len
    return (seq_len + 1) / 2


def attention_flops(batch: int, seq_len: int, num_heads: int, qk_dim: int, v_dim: int,
                    keys: float) -> float:
    """Forward FLOPs of QK^T and PV for `keys` keys per query: 2·b·h·s·keys·(d_qk + d_v)."""
    return 2.0 * batch * num_heads * seq_len * keys * (qk_dim + v_dim)


def block_forward_flops(layer: DecoderLayer, tokens: int) -> float:
    """Forward FLOPs of a block's base linears (attention and adapters apart)."""
    return sum(linear_flops(tokens, lin) for lin in layer.linears)


def lm_head_flops(tokens: int, spec: ModelSpec) -> float:
    """Forward FLOPs of the output projection [tokens, hidden] x [hidden, vocab]."""
    return 2.0 * tokens * spec.hidden_size * spec.vocab_size


def model_flops(spec: ModelSpec, batch: int, seq_len: int, full: bool, lora_rank: int,
                lora_targets: str | tuple[str, ...], v_head_dim: int) -> float:
    """Model FLOPs of one micro-batch without recompute (the MFU numerator, PaLM appendix B):
    forward + input gradients + weight gradients of what is trained, causal attention included."""
    from .memory.lora import lora_target_linears
    tokens = batch * seq_len
    total = 0.0
    for n, layer in block_repeats(spec):
        base = block_forward_flops(layer, tokens)
        keys = attended_keys(seq_len, layer.sliding_window)
        attn = attention_flops(batch, seq_len, spec.num_heads, spec.head_dim, v_head_dim, keys)
        adapters = 0.0
        if lora_rank:
            adapters = sum(lora_flops(tokens, lin, lora_rank) for lin in lora_target_linears(layer, lora_targets))
        total += n * (base * (3 if full else 2) + attn * (1 + FLASH_BACKWARD_RATIO) + 3 * adapters)
    head = lm_head_flops(tokens, spec)
    return total + head * (3 if full else 2)
