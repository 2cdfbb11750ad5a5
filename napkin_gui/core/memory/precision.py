"""Which dtype each activation family has for a plan, and which attention kernel runs.

The rules follow what the libraries do, not a table of results:
- prepare_model_for_kbit_training upcasts embeddings to fp32, so the residual stream is fp32,
  and bitsandbytes' Linear4bit casts its bf16 output back to the input dtype (fp32).
- mixed-* keeps fp32 weights: embeddings give an fp32 stream, autocast runs linears and sdpa
  in 16 bit.
- sdpa (transformers sdpa_attention_forward) passes enable_gqa=True when no mask is needed;
  torch's flash kernel takes it, the memory-efficient kernel does not, and neither runs
  fp32, so fp32 q/k/v fall back to the math kernel, which materializes [b, h, s, s].
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from ..model_spec import ModelSpec
from ..plan import Plan
from .activations import ActivationDtypes

# flash kernels in torch sdpa / flash-attn 2 take head_dim <= 256
FLASH_MAX_HEAD_DIM = 256
# activations whose python implementation saves several tensors (transformers activations.py)
PYTHON_GELU_SAVED = {"gelu_new": 4, "gelu_fast": 4, "quick_gelu": 2}


@dataclass(frozen=True, slots=True)
class ConfigExtras:
    """Details of config.json that change activation memory but not parameter counts."""

    v_head_dim: int
    act_saved_per_width: int
    hidden_dropout: bool
    qk_norm: bool
    layer_norm: bool


def config_extras(spec: ModelSpec) -> ConfigExtras:
    """Read (once per model) the config fields the activation model needs."""
    # keyed by strings: hashing a whole ModelSpec (tuples of layers) on every call is slow
    return _config_extras(spec.config_json, spec.model_type, spec.head_dim, spec.norm_kind)


@lru_cache(maxsize=256)
def _config_extras(config_json: str, model_type: str, head_dim: int, norm_kind: str) -> ConfigExtras:
    try:
        cfg = json.loads(config_json)
    except ValueError:
        cfg = {}
    if not isinstance(cfg, dict):
        cfg = {}
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    act = str(text.get("hidden_act") or text.get("activation_function") or text.get("hidden_activation") or "silu")
    drop = 0.0
    for key in ("resid_pdrop", "hidden_dropout", "hidden_dropout_prob"):
        value = text.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            drop = max(drop, float(value))
    v_head_dim = text.get("v_head_dim")
    return ConfigExtras(
        v_head_dim=int(v_head_dim) if isinstance(v_head_dim, int) and v_head_dim > 0 else head_dim,
        act_saved_per_width=PYTHON_GELU_SAVED.get(act, 1),
        hidden_dropout=drop > 0,
        qk_norm=model_type in ("qwen3", "qwen3_moe", "olmo2", "gemma3", "gemma3_text"),
        layer_norm=norm_kind == "layer",
    )


def activation_dtypes(plan: Plan, spec: ModelSpec) -> ActivationDtypes:
    """Element sizes of stream / linear outputs / attention inputs for this plan."""
    autocast = plan.precision.startswith("mixed-")
    half = 4 if plan.precision == "fp32" else 2
    if kbit_upcast(plan):
        stream, linear_out, attn = 4, 4, (2 if autocast else 4)
    elif autocast:
        stream, linear_out, attn = 4, 2, 2
    else:
        stream = linear_out = attn = half
    return ActivationDtypes(
        stream=stream,
        linear_out=linear_out,
        attn=attn,
        base_trainable=plan.method == "full",
        autocast=autocast,
        lora_rank=plan.lora_r if plan.is_lora else 0,
        lora_dropout=plan.lora_dropout > 0,
        act_saved_per_width=config_extras(spec).act_saved_per_width,
    )


def logits_element_bytes(plan: Plan) -> int:
    """lm_head output: fp32 when its weight is fp32 and no autocast (kbit prep, fp32 plans)."""
    if plan.precision.startswith("mixed-"):
        return 2
    if plan.precision == "fp32" or kbit_upcast(plan):
        return 4
    return 2


# Frameworks whose QLoRA path does not run peft's prepare_model_for_kbit_training: torchtune
# builds every non-quantized parameter in the recipe dtype (torchtune/models/llama3/
# _component_builders.py lora_llama3, quantize_base), litgpt's BitsandbytesPrecision keeps the
# embedding and norms in the `-true` dtype (lightning/fabric/plugins/precision/bitsandbytes.py);
# unsloth's own prepare_model_for_kbit_training upcasts only the adapters to fp32
# (unsloth_zoo/training_utils.py prepare_model_for_training, train_layernorms=False).
NO_KBIT_PREP_FRAMEWORKS = frozenset({"torchtune", "litgpt", "unsloth"})


def kbit_upcast(plan: Plan) -> bool:
    """QLoRA with peft's kbit prep: embeddings, norms and lm_head upcast to fp32."""
    return plan.method == "qlora" and plan.kbit_prep and plan.framework not in NO_KBIT_PREP_FRAMEWORKS


def attention_kernel(plan: Plan, spec: ModelSpec, dt: ActivationDtypes,
                     sliding_window: int | None) -> tuple[str, bool, bool]:
    """(kernel, native_gqa, needs_mask) for one block: kernel is flash | math | eager.

    flash covers torch's flash and memory-efficient kernels and flash-attn 2: none keep s^2.
    A sliding window shorter than the sequence makes transformers build an explicit mask,
    which turns sdpa's enable_gqa off (k/v repeated) and is saved by the kernel.
    """
    windowed = sliding_window is not None and sliding_window < plan.seq_len
    if plan.attention == "eager":
        return "eager", False, windowed
    if plan.attention == "flash":
        return "flash", True, False
    if dt.attn == 4:
        return "math", False, windowed
    if spec.head_dim > FLASH_MAX_HEAD_DIM and windowed:
        return "math", False, True
    return "flash", not windowed, windowed
