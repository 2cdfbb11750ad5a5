"""ModelSpec from a Hugging Face config.json: one small function per model family.

Shapes follow the transformers modeling files (transformers 5.x,
src/transformers/models/<family>/modeling_<family>.py); defaults for fields a config may
leave out follow the matching configuration_<family>.py. MoE experts are described as the
per-expert nn.Linear modules of the transformers 4.x module tree (w1/w2/w3 for Mixtral,
gate_proj/up_proj/down_proj for Qwen-MoE and DeepSeek), the names LoRA targets use.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from napkin_gui.core.dtypes import TORCH_DTYPE_NAMES
from napkin_gui.core.errors import PlanError
from napkin_gui.core.model_spec import DecoderLayer, LinearShape, ModelSpec

_MISSING = object()
# Bound on num_hidden_layers: the spec lists every block, and no real model is near it.
_MAX_LAYERS = 10_000

# The largest value each integer config field may hold. Each bound sits one to three orders of
# magnitude above the largest released model's value (noted), so every real config passes and a
# typo or a hostile file (vocab_size 1e100, hidden_size 1e20) stops with the field's range
# instead of a "5e93 B params" estimate. Fields not listed take _DEFAULT_MAX.
_WIDTH_MAX = 2**17        # hidden sizes: Llama 3.1 405B 16,384
_FFN_MAX = 2**20          # MLP widths: Llama 3.1 405B 53,248
_HEADS_MAX = 2**14        # attention heads: 128 (405B, DeepSeek-V3)
_HEAD_DIM_MAX = 2**14     # head widths: 256 (Gemma)
_EXPERTS_MAX = 2**24      # experts per layer: 384 (Kimi K2); PEER-style layers use ~1M
_POSITIONS_MAX = 2**31    # context lengths: 10M (Llama 4 Scout)
_DEFAULT_MAX = 2**31
_UPPER_BOUNDS: dict[str, int] = {
    "vocab_size": 2**24,  # 262,208 (Gemma 3)
    **dict.fromkeys(("hidden_size", "n_embd", "kv_lora_rank", "q_lora_rank"), _WIDTH_MAX),
    **dict.fromkeys(("intermediate_size", "ffn_hidden_size", "n_inner", "moe_intermediate_size",
                     "shared_expert_intermediate_size"), _FFN_MAX),
    **dict.fromkeys(("num_attention_heads", "num_key_value_heads", "num_kv_heads", "n_head"), _HEADS_MAX),
    **dict.fromkeys(("head_dim", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"), _HEAD_DIM_MAX),
    **dict.fromkeys(("num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok",
                     "n_shared_experts"), _EXPERTS_MAX),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "first_k_dense_replace", "max_window_layers",
                     "decoder_sparse_step", "moe_layer_freq", "sliding_window_pattern"), _MAX_LAYERS),
    **dict.fromkeys(("sliding_window", "n_positions", "max_position_embeddings"), _POSITIONS_MAX),
    "num_ln_in_parallel_attn": 2,  # Falcon: one or two layer norms before the parallel block
}
# Logit soft-capping (Gemma 2: 50 and 30): a cap this large no longer caps anything.
_SOFTCAP_MAX = 1e6
# The counted parameters of the whole model: ~2 T in the largest released checkpoints.
MAX_PARAMS = 10**15


def _upper(key: str) -> int:
    return _UPPER_BOUNDS.get(key, _DEFAULT_MAX)

# Config-class defaults (transformers 5.x configuration_<family>.py) for fields that real
# config.json files leave out. Gemma 3's multimodal configs omit most text_config fields.
_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"tie_word_embeddings": False},
    "mistral": {"tie_word_embeddings": False, "sliding_window": 4096},
    "mixtral": {"tie_word_embeddings": False, "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen2": {"tie_word_embeddings": False, "max_window_layers": 28, "sliding_window": 4096},
    "qwen2_moe": {"tie_word_embeddings": False, "max_window_layers": 28, "sliding_window": 4096,
                  "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
                  "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1},
    "qwen3": {"tie_word_embeddings": False, "head_dim": 128, "max_window_layers": 28,
              "sliding_window": 4096},
    "qwen3_moe": {"tie_word_embeddings": False, "max_window_layers": 28, "sliding_window": 4096,
                  "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
                  "decoder_sparse_step": 1},
    "gemma": {"tie_word_embeddings": True, "head_dim": 256},
    "gemma2": {"tie_word_embeddings": True, "head_dim": 256, "sliding_window": 4096,
               "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    "gemma3_text": {"tie_word_embeddings": True, "head_dim": 256, "sliding_window": 4096,
                    "sliding_window_pattern": 6, "vocab_size": 262208, "hidden_size": 2304,
                    "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4,
                    "max_position_embeddings": 131072},
    "phi3": {"tie_word_embeddings": False},
    "phi": {"tie_word_embeddings": False},
    "gpt2": {"tie_word_embeddings": True, "n_positions": 1024},
    "gpt_neox": {"tie_word_embeddings": False, "attention_bias": True},
    "falcon": {"tie_word_embeddings": True, "multi_query": True, "parallel_attn": True},
    "olmo": {"tie_word_embeddings": False},
    "olmo2": {"tie_word_embeddings": False},
    "deepseek_v2": {"tie_word_embeddings": False, "first_k_dense_replace": 0,
                    "moe_layer_freq": 1, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                    "v_head_dim": 128, "kv_lora_rank": 512, "q_lora_rank": 1536,
                    "n_routed_experts": 64, "n_shared_experts": 2, "moe_intermediate_size": 1407},
    "deepseek_v3": {"tie_word_embeddings": False, "first_k_dense_replace": 3,
                    "moe_layer_freq": 1, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                    "v_head_dim": 128, "kv_lora_rank": 512, "q_lora_rank": 1536,
                    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
                    "moe_intermediate_size": 2048},
    "starcoder2": {"tie_word_embeddings": True, "use_bias": True},
    "cohere": {"tie_word_embeddings": True},
}


def _show(value: Any) -> str:
    """A config value for a one-line message: repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Fields:
    """Validated reads of one config dict; every bad value raises a one-line PlanError."""

    def __init__(self, config: Mapping[str, Any], defaults: Mapping[str, Any]):
        self.config = config
        self.defaults = defaults

    def _value(self, key: str, default: Any) -> Any:
        """The config's value; null or absent falls back to the family's default, then `default`."""
        value = self.config.get(key)
        if value is None:
            value = self.defaults.get(key)
        return default if value is None else value

    def has(self, key: str) -> bool:
        return self.config.get(key) is not None

    def pos_int(self, key: str, default: Any = _MISSING) -> int:
        value = self._value(key, default)
        if value is _MISSING:
            raise PlanError(f"config.json {key}: required, a positive integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PlanError(f"config.json {key}: must be a positive integer, got {_show(value)}")
        if value > _upper(key):
            raise PlanError(f"config.json {key}: must be an integer from 1 to {_upper(key):,}, got {_show(value)}")
        return value

    def count(self, key: str, default: int = 0) -> int:
        """A non-negative integer (layer counts such as first_k_dense_replace)."""
        value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PlanError(f"config.json {key}: must be an integer >= 0, got {_show(value)}")
        if value > _upper(key):
            raise PlanError(f"config.json {key}: must be an integer from 0 to {_upper(key):,}, got {_show(value)}")
        return value

    def opt_pos_int(self, key: str) -> int | None:
        """A positive integer where null (or 0) means 'off' (sliding_window, q_lora_rank)."""
        value = self.config[key] if key in self.config else self.defaults.get(key)
        if value is None or (value == 0 and not isinstance(value, bool)):
            return None
        return self.pos_int(key)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._value(key, default)
        if not isinstance(value, bool):
            raise PlanError(f"config.json {key}: must be true or false, got {_show(value)}")
        return value

    def opt_number(self, key: str) -> float | None:
        """A positive number or null (logit soft-capping)."""
        value = self.config[key] if key in self.config else self.defaults.get(key)
        if value is None:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                or not value <= _SOFTCAP_MAX):  # NaN fails both; 10**400 is an int, compared exactly
            raise PlanError(f"config.json {key}: must be a number above 0 and at most {_SOFTCAP_MAX:g}, "
                            f"or null, got {_show(value)}")
        return float(value)

    def int_list(self, key: str) -> tuple[int, ...]:
        value = self._value(key, [])
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise PlanError(f"config.json {key}: must be a list of layer indices, got {_show(value)}")
        return tuple(value)

    def layer_types(self, n_layers: int) -> tuple[str, ...] | None:
        value = self.config.get("layer_types")
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != n_layers or not all(isinstance(v, str) for v in value):
            raise PlanError(
                f"config.json layer_types: must be a list of {n_layers} strings "
                f"(one per layer), got {_show(value)}")
        return tuple(value)


@dataclass(frozen=True, slots=True)
class _Dims:
    """Attention and stack sizes shared by every family."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    layers: int
    vocab: int


@dataclass(frozen=True, slots=True)
class _Body:
    """What a family function returns; model_spec_from_config adds name, dtype, source."""

    dims: _Dims
    layers: tuple[DecoderLayer, ...]
    tie: bool
    extra_params: int
    norm_kind: str = "rms"
    attn_softcap: float | None = None
    final_softcap: float | None = None
    max_pos: int = 0


def _dims(f: _Fields, hidden: str = "hidden_size", layers: str = "num_hidden_layers",
          heads: str = "num_attention_heads", kv: str = "num_key_value_heads") -> _Dims:
    """Hidden size, heads, KV heads (GQA; default = heads), head_dim, layers, vocab."""
    h, n_heads = f.pos_int(hidden), f.pos_int(heads)
    n_kv = f.pos_int(kv, n_heads)
    if f.has("head_dim") or "head_dim" in f.defaults:
        head_dim = f.pos_int("head_dim")
    elif h % n_heads:
        raise PlanError(
            f"config.json {heads}: must divide {hidden} ({h}) when head_dim is not given, got {n_heads}")
    else:
        head_dim = h // n_heads
    if n_heads % n_kv:
        raise PlanError(f"config.json {kv}: must divide {heads} ({n_heads}), got {n_kv}")
    return _Dims(h, n_heads, n_kv, head_dim, _layer_count(f, layers), f.pos_int("vocab_size"))


def _layer_count(f: _Fields, key: str = "num_hidden_layers") -> int:
    return f.pos_int(key)  # at most _MAX_LAYERS (_UPPER_BOUNDS)


def _qkvo(d: _Dims, qkv_bias: bool = False, o_bias: bool = False,
          o_name: str = "o_proj") -> tuple[LinearShape, ...]:
    """Separate q/k/v/o projections (modeling_llama.py LlamaAttention and its copies)."""
    q_out, kv_out = d.heads * d.head_dim, d.kv_heads * d.head_dim
    return (LinearShape("q_proj", d.hidden, q_out, qkv_bias),
            LinearShape("k_proj", d.hidden, kv_out, qkv_bias),
            LinearShape("v_proj", d.hidden, kv_out, qkv_bias),
            LinearShape(o_name, q_out, d.hidden, o_bias))


def _gated_mlp(h: int, ff: int, bias: bool = False, count: int = 1, active: int = 1,
               names: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj"),
               ) -> tuple[LinearShape, ...]:
    """act(gate(x)) * up(x) -> down (modeling_llama.py LlamaMLP); count>1: MoE experts."""
    gate, up, down = names
    return (LinearShape(gate, h, ff, bias, count, active),
            LinearShape(up, h, ff, bias, count, active),
            LinearShape(down, ff, h, bias, count, active))


def _fused_attention(h: int, qkv_out: int, bias: bool, names: tuple[str, str]) -> tuple[LinearShape, ...]:
    """One fused q/k/v projection and the output one (modeling_gpt2.py c_attn / c_proj,
    modeling_gpt_neox.py and modeling_falcon.py query_key_value / dense)."""
    qkv, out = names
    return (LinearShape(qkv, h, qkv_out, bias), LinearShape(out, h, h, bias))


def _plain_mlp(h: int, ff: int, bias: bool, names: tuple[str, str]) -> tuple[LinearShape, ...]:
    """act(up(x)) -> down without a gate (modeling_gpt2.py GPT2MLP and its copies)."""
    up, down = names
    return (LinearShape(up, h, ff, bias), LinearShape(down, ff, h, bias))


def _windows(f: _Fields, n: int, window: int | None,
             sliding_at: Callable[[int], bool]) -> tuple[int | None, ...]:
    """Per-layer sliding window: the config's layer_types when given, else the family rule."""
    types = f.layer_types(n)
    if window is None:
        return (None,) * n
    if types is not None:
        return tuple(window if t == "sliding_attention" else None for t in types)
    return tuple(window if sliding_at(i) else None for i in range(n))


def _qwen_windows(f: _Fields, n: int) -> tuple[int | None, ...]:
    """Qwen2/3: sliding only with use_sliding_window, on layers >= max_window_layers."""
    if not f.flag("use_sliding_window", False):
        return (None,) * n
    first = f.count("max_window_layers")
    return _windows(f, n, f.opt_pos_int("sliding_window"), lambda i: i >= first)


def _stack(layer: DecoderLayer, windows: tuple[int | None, ...]) -> tuple[DecoderLayer, ...]:
    return tuple(replace(layer, sliding_window=w) for w in windows)


# --- llama-style families: separate q/k/v/o, gated MLP, RMSNorm ---------------------------

def _llama(f: _Fields) -> _Body:
    """modeling_llama.py (also mistral, smollm, unknown families): attention_bias, mlp_bias."""
    d = _dims(f)
    bias = f.flag("attention_bias")
    ff = f.pos_int("intermediate_size")
    layer = DecoderLayer(_qkvo(d, bias, bias) + _gated_mlp(d.hidden, ff, f.flag("mlp_bias")),
                         mlp_width=ff, norm_params=2 * d.hidden)
    window = f.opt_pos_int("sliding_window")
    return _Body(d, _stack(layer, _windows(f, d.layers, window, lambda i: True)),
                 f.flag("tie_word_embeddings"), d.hidden)


def _qwen(f: _Fields, qk_norm: bool) -> _Body:
    """modeling_qwen2.py (q/k/v bias, o without) / modeling_qwen3.py (attention_bias, q/k RMSNorm)."""
    d = _dims(f)
    bias = f.flag("attention_bias") if qk_norm else True
    ff = f.pos_int("intermediate_size")
    norm = 2 * d.hidden + (2 * d.head_dim if qk_norm else 0)
    layer = DecoderLayer(_qkvo(d, bias, bias and qk_norm) + _gated_mlp(d.hidden, ff),
                         mlp_width=ff, norm_params=norm)
    return _Body(d, _stack(layer, _qwen_windows(f, d.layers)), f.flag("tie_word_embeddings"), d.hidden)


def _gemma(f: _Fields, version: int) -> _Body:
    """modeling_gemma.py / gemma2 (4 norms per block, soft-capping) / gemma3 (+ q/k norm)."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    bias = f.flag("attention_bias")
    norms = 2 if version == 1 else 4
    norm = norms * d.hidden + (2 * d.head_dim if version == 3 else 0)
    layer = DecoderLayer(_qkvo(d, bias, bias) + _gated_mlp(d.hidden, ff), mlp_width=ff,
                         norm_params=norm, norms=norms)
    window = None if version == 1 else f.opt_pos_int("sliding_window")
    period = 2 if version != 3 else f.pos_int("sliding_window_pattern")
    windows = _windows(f, d.layers, window, lambda i: bool((i + 1) % period))
    return _Body(d, _stack(layer, windows), f.flag("tie_word_embeddings"), d.hidden,
                 attn_softcap=f.opt_number("attn_logit_softcapping"),
                 final_softcap=f.opt_number("final_logit_softcapping"))


def _olmo(f: _Fields, version: int) -> _Body:
    """modeling_olmo.py (LayerNorm without weights) / modeling_olmo2.py (post-norms, q/k norm
    over all heads: RMSNorm(heads*head_dim) and RMSNorm(kv_heads*head_dim))."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    bias = f.flag("attention_bias")
    qk = (d.heads + d.kv_heads) * d.head_dim
    norm = 0 if version == 1 else 2 * d.hidden + qk
    layer = DecoderLayer(_qkvo(d, bias, bias) + _gated_mlp(d.hidden, ff), mlp_width=ff, norm_params=norm)
    return _Body(d, (layer,) * d.layers, f.flag("tie_word_embeddings"),
                 0 if version == 1 else d.hidden, norm_kind="layer" if version == 1 else "rms")


def _cohere(f: _Fields) -> _Body:
    """modeling_cohere.py: one weight-only LayerNorm per block (parallel attn+MLP), optional q/k norm."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    bias = f.flag("attention_bias")
    qk = (d.heads + d.kv_heads) * d.head_dim if f.flag("use_qk_norm") else 0
    layer = DecoderLayer(_qkvo(d, bias, bias) + _gated_mlp(d.hidden, ff), mlp_width=ff,
                         norm_params=d.hidden + qk, norms=1)
    return _Body(d, (layer,) * d.layers, f.flag("tie_word_embeddings"), d.hidden, norm_kind="layer")


def _phi3(f: _Fields) -> _Body:
    """modeling_phi3.py: fused qkv_proj and gate_up_proj, no biases."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    q_out = d.heads * d.head_dim
    linears = (LinearShape("qkv_proj", d.hidden, q_out + 2 * d.kv_heads * d.head_dim),
               LinearShape("o_proj", q_out, d.hidden),
               LinearShape("gate_up_proj", d.hidden, 2 * ff),
               LinearShape("down_proj", ff, d.hidden))
    layer = DecoderLayer(linears, mlp_width=ff, norm_params=2 * d.hidden)
    windows = _windows(f, d.layers, f.opt_pos_int("sliding_window"), lambda i: True)
    return _Body(d, _stack(layer, windows), f.flag("tie_word_embeddings"), d.hidden)


# --- GPT-style families: plain MLP, LayerNorm with bias ------------------------------------

def _phi(f: _Fields) -> _Body:
    """modeling_phi.py (phi-1/1.5/2): biased q/k/v/dense, fc1/fc2, one LayerNorm, lm_head bias."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    qk = 4 * d.head_dim if f.flag("qk_layernorm") else 0
    linears = _qkvo(d, True, True, o_name="dense") + _plain_mlp(d.hidden, ff, True, ("fc1", "fc2"))
    layer = DecoderLayer(linears, mlp_width=ff, gated_mlp=False, norm_params=2 * d.hidden + qk, norms=1)
    return _Body(d, (layer,) * d.layers, f.flag("tie_word_embeddings"),
                 2 * d.hidden + d.vocab, norm_kind="layer")


def _gpt2(f: _Fields) -> _Body:
    """modeling_gpt2.py: fused c_attn, c_proj, c_fc/c_proj (Conv1D, biased), learned wpe."""
    d = _dims(f, hidden="n_embd", layers="n_layer", heads="n_head", kv="n_head")
    ff = f.pos_int("n_inner", 4 * d.hidden)
    positions = f.pos_int("n_positions")
    linears = (_fused_attention(d.hidden, 3 * d.hidden, True, ("c_attn", "c_proj"))
               + _plain_mlp(d.hidden, ff, True, ("c_fc", "c_proj")))
    layer = DecoderLayer(linears, mlp_width=ff, gated_mlp=False, norm_params=4 * d.hidden)
    return _Body(d, (layer,) * d.layers, f.flag("tie_word_embeddings"),
                 2 * d.hidden + positions * d.hidden, norm_kind="layer", max_pos=positions)


def _gpt_neox(f: _Fields) -> _Body:
    """modeling_gpt_neox.py: fused query_key_value, dense, dense_h_to_4h/dense_4h_to_h."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    bias = f.flag("attention_bias")
    linears = (_fused_attention(d.hidden, 3 * d.hidden, bias, ("query_key_value", "dense"))
               + _plain_mlp(d.hidden, ff, True, ("dense_h_to_4h", "dense_4h_to_h")))
    layer = DecoderLayer(linears, mlp_width=ff, gated_mlp=False, norm_params=4 * d.hidden)
    return _Body(d, (layer,) * d.layers, f.flag("tie_word_embeddings"), 2 * d.hidden, norm_kind="layer")


def _falcon(f: _Fields) -> _Body:
    """modeling_falcon.py: query_key_value sized by new_decoder_architecture / multi_query."""
    cfg = dict(f.config)
    for key, old in (("hidden_size", "n_embed"), ("num_attention_heads", "n_head"),
                     ("num_hidden_layers", "n_layer")):
        if cfg.get(key) is None and cfg.get(old) is not None:
            cfg[key] = cfg[old]
    g = _Fields(cfg, f.defaults)
    new_arch = g.flag("new_decoder_architecture")
    heads = g.pos_int("num_attention_heads")
    kv = g.pos_int("num_kv_heads", heads) if new_arch else 1 if g.flag("multi_query") else heads
    d = _dims(_Fields({**cfg, "num_key_value_heads": kv, "head_dim": None}, {}))
    h, ff, bias = d.hidden, g.pos_int("ffn_hidden_size", 4 * d.hidden), g.flag("bias")
    linears = (_fused_attention(h, (heads + 2 * kv) * d.head_dim, bias, ("query_key_value", "dense"))
               + _plain_mlp(h, ff, bias, ("dense_h_to_4h", "dense_4h_to_h")))
    two = new_arch and g.pos_int("num_ln_in_parallel_attn", 2) == 2
    norms = 2 if two or not g.flag("parallel_attn") else 1
    layer = DecoderLayer(linears, mlp_width=ff, gated_mlp=False, norm_params=2 * h * norms, norms=norms)
    return _Body(d, (layer,) * d.layers, g.flag("tie_word_embeddings"), 2 * h, norm_kind="layer")


def _starcoder2(f: _Fields) -> _Body:
    """modeling_starcoder2.py: q/k/v/o and c_fc/c_proj biased by use_bias, LayerNorm."""
    d = _dims(f)
    ff = f.pos_int("intermediate_size")
    bias = f.flag("use_bias")
    linears = _qkvo(d, bias, bias) + _plain_mlp(d.hidden, ff, bias, ("c_fc", "c_proj"))
    layer = DecoderLayer(linears, mlp_width=ff, gated_mlp=False, norm_params=4 * d.hidden)
    windows = _windows(f, d.layers, f.opt_pos_int("sliding_window"), lambda i: True)
    return _Body(d, _stack(layer, windows), f.flag("tie_word_embeddings"), 2 * d.hidden, norm_kind="layer")


# --- mixture of experts ---------------------------------------------------------------------

def _top_k(f: _Fields, experts: int) -> int:
    k = f.pos_int("num_experts_per_tok")
    if k > experts:
        raise PlanError(f"config.json num_experts_per_tok: must be at most the number of experts ({experts}), got {k}")
    return k


def _mixtral(f: _Fields) -> _Body:
    """modeling_mixtral.py: router gate h->E, experts w1/w3 (h->ff) and w2 (ff->h)."""
    d = _dims(f)
    ff, experts = f.pos_int("intermediate_size"), f.pos_int("num_local_experts")
    k = _top_k(f, experts)
    linears = _qkvo(d) + (LinearShape("gate", d.hidden, experts),) + _gated_mlp(
        d.hidden, ff, count=experts, active=k, names=("w1", "w3", "w2"))
    layer = DecoderLayer(linears, mlp_width=k * ff, norm_params=2 * d.hidden, num_experts=experts)
    windows = _windows(f, d.layers, f.opt_pos_int("sliding_window"), lambda i: True)
    return _Body(d, _stack(layer, windows), f.flag("tie_word_embeddings"), d.hidden)


def _qwen_moe(f: _Fields, version: int) -> _Body:
    """modeling_qwen2_moe.py (shared_expert + shared_expert_gate) / modeling_qwen3_moe.py:
    layer i is sparse unless in mlp_only_layers or (i + 1) % decoder_sparse_step != 0."""
    d = _dims(f)
    experts, step = f.pos_int("num_experts"), f.pos_int("decoder_sparse_step")
    k, moe_ff = _top_k(f, experts), f.pos_int("moe_intermediate_size")
    dense_only = set(f.int_list("mlp_only_layers"))
    bias = f.flag("attention_bias") if version == 3 else f.flag("qkv_bias", True)
    attn = _qkvo(d, bias, bias and version == 3)
    norm = 2 * d.hidden + (2 * d.head_dim if version == 3 else 0)
    routed = (LinearShape("gate", d.hidden, experts),) + _gated_mlp(d.hidden, moe_ff, count=experts, active=k)
    shared_ff = f.pos_int("shared_expert_intermediate_size") if version == 2 else 0
    shared = (_gated_mlp(d.hidden, shared_ff) + (LinearShape("shared_expert_gate", d.hidden, 1),)
              if shared_ff else ())
    sparse = DecoderLayer(attn + routed + shared, mlp_width=k * moe_ff + shared_ff,
                          norm_params=norm, num_experts=experts)
    ff = f.pos_int("intermediate_size")
    dense = DecoderLayer(attn + _gated_mlp(d.hidden, ff), mlp_width=ff, norm_params=norm)
    layers = tuple(sparse if i not in dense_only and (i + 1) % step == 0 else dense
                   for i in range(d.layers))
    windows = _qwen_windows(f, d.layers)
    return _Body(d, tuple(replace(l, sliding_window=w) for l, w in zip(layers, windows)),
                 f.flag("tie_word_embeddings"), d.hidden)


def _mla(f: _Fields, h: int, heads: int) -> tuple[tuple[LinearShape, ...], int]:
    """DeepSeek multi-head latent attention (modeling_deepseek_v2.py DeepseekV2Attention):
    linears and the q_a/kv_a RMSNorm params."""
    nope, rope, v = f.pos_int("qk_nope_head_dim"), f.pos_int("qk_rope_head_dim"), f.pos_int("v_head_dim")
    kv_rank, q_rank = f.pos_int("kv_lora_rank"), f.opt_pos_int("q_lora_rank")
    bias = f.flag("attention_bias")
    q = ((LinearShape("q_proj", h, heads * (nope + rope)),) if q_rank is None else
         (LinearShape("q_a_proj", h, q_rank, bias), LinearShape("q_b_proj", q_rank, heads * (nope + rope))))
    linears = q + (LinearShape("kv_a_proj_with_mqa", h, kv_rank + rope, bias),
                   LinearShape("kv_b_proj", kv_rank, heads * (nope + v)),
                   LinearShape("o_proj", heads * v, h, bias))
    return linears, kv_rank + (q_rank or 0)


def _deepseek(f: _Fields) -> _Body:
    """modeling_deepseek_v2.py / v3: first_k_dense_replace dense blocks, then MoE blocks
    (router gate h->E, routed experts, n_shared_experts fused into shared_experts)."""
    h, heads = f.pos_int("hidden_size"), f.pos_int("num_attention_heads")
    nope, rope = f.pos_int("qk_nope_head_dim"), f.pos_int("qk_rope_head_dim")
    d = _Dims(h, heads, heads, nope + rope, _layer_count(f), f.pos_int("vocab_size"))
    attn, attn_norm = _mla(f, h, heads)
    norm = 2 * h + attn_norm
    ff, mlp_bias = f.pos_int("intermediate_size"), f.flag("mlp_bias")
    dense = DecoderLayer(attn + _gated_mlp(h, ff, mlp_bias), mlp_width=ff, norm_params=norm)
    experts = f.pos_int("n_routed_experts")
    k, moe_ff = _top_k(f, experts), f.pos_int("moe_intermediate_size")
    shared_ff = moe_ff * f.count("n_shared_experts")
    shared = _gated_mlp(h, shared_ff, mlp_bias) if shared_ff else ()
    moe = DecoderLayer(attn + (LinearShape("gate", h, experts),) + _gated_mlp(
        h, moe_ff, count=experts, active=k) + shared, mlp_width=k * moe_ff + shared_ff,
        norm_params=norm, num_experts=experts)
    first, freq = f.count("first_k_dense_replace"), f.pos_int("moe_layer_freq")
    layers = tuple(moe if i >= first and i % freq == 0 else dense for i in range(d.layers))
    return _Body(d, layers, f.flag("tie_word_embeddings"), h)


_FAMILIES: dict[str, Callable[[_Fields], _Body]] = {
    "llama": _llama, "mistral": _llama, "smollm": _llama, "smollm2": _llama,
    "mixtral": _mixtral,
    "qwen2": lambda f: _qwen(f, qk_norm=False), "qwen3": lambda f: _qwen(f, qk_norm=True),
    "qwen2_moe": lambda f: _qwen_moe(f, 2), "qwen3_moe": lambda f: _qwen_moe(f, 3),
    "gemma": lambda f: _gemma(f, 1), "gemma2": lambda f: _gemma(f, 2),
    "gemma3_text": lambda f: _gemma(f, 3),
    "phi3": _phi3, "phi": _phi, "gpt2": _gpt2, "gpt_neox": _gpt_neox, "falcon": _falcon,
    "olmo": lambda f: _olmo(f, 1), "olmo2": lambda f: _olmo(f, 2),
    "deepseek_v2": _deepseek, "deepseek_v3": _deepseek,
    "starcoder2": _starcoder2, "cohere": _cohere,
}


# --- the entry point ------------------------------------------------------------------------

def _language_model(config: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, tuple[str, ...]]:
    """The decoder's config and model_type; multimodal configs nest it under text_config."""
    model_type = config.get("model_type", "")
    if not isinstance(model_type, str):
        raise PlanError(f"config.json model_type: must be a string, got {_show(model_type)}")
    text = config.get("text_config")
    nested = model_type == "gemma3" or (
        isinstance(text, Mapping) and not any(k in config for k in ("hidden_size", "n_embd")))
    if not nested:
        return config, model_type, ()
    if not isinstance(text, Mapping):
        raise PlanError(f"config.json text_config: must be an object for model_type '{model_type}'")
    inner = text.get("model_type", "gemma3_text" if model_type == "gemma3" else "")
    if not isinstance(inner, str):
        raise PlanError(f"config.json text_config.model_type: must be a string, got {_show(inner)}")
    note = ("config.json text_config: counted the language model only; "
            "vision/audio towers are not included",)
    return {"model_type": inner, **text}, inner, note


def _stored_dtype(config: Mapping[str, Any], text: Mapping[str, Any]) -> str:
    """torch_dtype (transformers 4) or dtype (transformers 5); bf16 when absent or 'auto'."""
    for source in (config, text):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if value is None or value == "auto":
                continue
            name = value.removeprefix("torch.") if isinstance(value, str) else None
            if name not in TORCH_DTYPE_NAMES:
                allowed = ", ".join(sorted(TORCH_DTYPE_NAMES))
                raise PlanError(f"config.json {key}: must be one of {allowed}, got {_show(value)}")
            return TORCH_DTYPE_NAMES[name]
    return "bf16"


def _grouped(layers: tuple[DecoderLayer, ...]) -> tuple[tuple[int, DecoderLayer], ...]:
    """Run-length groups of identical consecutive layers."""
    groups: list[tuple[int, DecoderLayer]] = []
    for layer in layers:
        if groups and groups[-1][1] == layer:
            groups[-1] = (groups[-1][0] + 1, layer)
        else:
            groups.append((1, layer))
    return tuple(groups)


def model_spec_from_config(config: dict, name: str, source: str = "config") -> ModelSpec:
    """Every tensor shape of a decoder-only LM from its HF config.json dict."""
    if not isinstance(config, Mapping):
        raise PlanError(f"config.json: must be a JSON object, got {_show(config)}")
    text, model_type, warnings = _language_model(config)
    family = _FAMILIES.get(model_type)
    if family is None:
        family = _llama
        warnings += (f"config.json model_type: {model_type or '(missing)'!r} is not a known family; "
                     "counted as a llama-style decoder (q/k/v/o, gated MLP, RMSNorm)",)
    if "quantization_config" in config:
        warnings += ("config.json quantization_config: a pre-quantized checkpoint; "
                     "napkin counts its unquantized shapes",)
    body = family(_Fields(text, _FAMILY_DEFAULTS.get(model_type, {})))
    try:
        config_json = json.dumps(config)
    except (TypeError, ValueError) as err:
        raise PlanError(f"config.json: must hold only JSON values ({err})".replace("\n", " ")) from None
    max_pos = body.max_pos or text.get("max_position_embeddings") or _FAMILY_DEFAULTS.get(
        model_type, {}).get("max_position_embeddings", 0)
    if type(max_pos) is not int or not 0 < max_pos <= _POSITIONS_MAX:
        max_pos = 0  # unknown: an odd value only turns off the seq_len warning (core/plan_warnings.py)
    d = body.dims
    spec = ModelSpec(
        name=name, model_type=model_type, hidden_size=d.hidden, num_heads=d.heads,
        num_kv_heads=d.kv_heads, head_dim=d.head_dim, vocab_size=d.vocab,
        tie_word_embeddings=body.tie, layer_groups=_grouped(body.layers),
        extra_params=body.extra_params, norm_kind=body.norm_kind,
        attn_logit_softcapping=body.attn_softcap, final_logit_softcapping=body.final_softcap,
        max_position_embeddings=max_pos,
        stored_dtype=_stored_dtype(config, text), source=source, warnings=warnings,
        config_json=config_json)
    if spec.counted_params > MAX_PARAMS:  # each field in range, their product not
        raise PlanError(f"config.json: these shapes give {spec.counted_params:.3g} parameters; napkin takes "
                        f"models up to {MAX_PARAMS:.0e} (hidden_size {d.hidden:,}, vocab_size {d.vocab:,}, "
                        f"{spec.num_layers:,} layers)")
    return spec
