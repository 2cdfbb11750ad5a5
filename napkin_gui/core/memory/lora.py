"""LoRA adapters: which linears get them, how many parameters, in which dtype.

peft LoraLayer.update_layer adds lora_A (r x d_in) and lora_B (d_out x r) per targeted
linear; peft >= 0.12 keeps them in fp32 when the base is fp16/bf16
(huggingface/peft src/peft/tuners/tuners_utils.py, BaseTuner._cast_adapter_dtype,
autocast_adapter_dtype=True).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..dtypes import tensor_bytes
from ..errors import PlanError
from ..model_spec import DecoderLayer, LinearShape, ModelSpec

# peft's adapter dtype over a fp16 / bf16 base (BaseTuner._cast_adapter_dtype with
# autocast_adapter_dtype=True); torchtune and litgpt keep the model dtype (adapter_dtype below)
ADAPTER_DTYPE = "fp32"


def lora_target_linears(layer: DecoderLayer, targets: str | Sequence[str]) -> tuple[LinearShape, ...]:
    """The linears of one block that get an adapter ("all-linear" = every linear in the block)."""
    if targets == "all-linear":
        return layer.linears
    wanted = set(targets)
    return tuple(lin for lin in layer.linears if lin.name in wanted)


# The output projection's module name in every HF *ForCausalLM (GPT-2 included); peft targets
# it only when named: "all-linear" skips it (peft/tuners/tuners_utils.py
# _maybe_include_all_linear_layers), while MoE routers, nn.Linear too, are targeted.
LM_HEAD = "lm_head"


def lora_module_names(spec: ModelSpec) -> tuple[str, ...]:
    """Names a LoRA target can match: every linear of the blocks, then lm_head."""
    names = dict.fromkeys(lin.name for _, layer in spec.layer_groups for lin in layer.linears)
    return (*names, LM_HEAD)


def check_lora_targets(spec: ModelSpec, targets: str | Sequence[str]) -> None:
    """A named target must match a module, as peft requires: peft/tuners/tuners_utils.py
    inject_adapter raises "Target modules {...} not found in the base model" (peft 0.21)."""
    if targets == "all-linear":
        return
    names = lora_module_names(spec)
    missing = [t for t in targets if t not in names]
    if missing:
        raise PlanError(f"lora_targets: {missing[0]!r} matches no module of {spec.name}; "
                        f"its linear modules are {', '.join(names)}")


def lm_head_adapter_params(spec: ModelSpec, targets: str | Sequence[str], rank: int) -> int:
    """lora_A [r, hidden] + lora_B [vocab, r] when lm_head is named (a tied head too: peft wraps
    the lm_head Linear, whose weight is the embedding matrix)."""
    if targets == "all-linear" or LM_HEAD not in targets:
        return 0
    return rank * (spec.hidden_size + spec.vocab_size)


# Routed experts are fused 3-D parameters in transformers >= 5 (MixtralExperts.gate_up_proj
# [E, 2 x ff, h], down_proj [E, h, ff]); peft >= 0.17 reaches them through target_parameters
# (ParamWrapper): lora_A [r x E, in], lora_B [out, r x E], and gate_up_proj gets rank 2r
# (peft tuners/lora/model.py, measured with peft 0.21: 2rE(h + 2ff) for gate_up).
EXPERT_GATE_UP_NAMES = frozenset({"w1", "w3", "gate_proj", "up_proj"})


def lora_adapter_params(linears: Sequence[LinearShape], rank: int) -> int:
    """A (rank x d_in) + B (d_out x rank) per targeted linear; routed experts as peft wraps
    transformers 5's fused expert parameters (the gate and up halves share one adapter
    of rank 2r over [E, 2 x ff, h])."""
    total = 0
    for lin in linears:
        if lin.count > 1 and lin.name in EXPERT_GATE_UP_NAMES:
            total += lin.count * rank * (lin.d_in + 2 * lin.d_out)  # each half: r E (h + 2 ff)
        else:
            total += lin.count * rank * (lin.d_in + lin.d_out)
    return total


def lora_adapter_bytes(adapter_params: int, dtype: str = ADAPTER_DTYPE) -> int:
    """Adapters are held in fp32 under peft (autocast_adapter_dtype), else in `dtype`."""
    return tensor_bytes(adapter_params, dtype)


def adapter_dtype(framework: str, param_dtype: str) -> str:
    """dtype of the adapters, their gradients and (AdamW) optimizer states.

    transformers + peft: fp32 (BaseTuner._cast_adapter_dtype). torchtune builds the model, adapters
    included, under `training.set_default_dtype(cfg.dtype)` and checks them with
    validate_expected_param_dtype (recipes/lora_finetune_single_device.py, 0.6.1). litgpt creates
    lora_A / lora_B inside `fabric.init_module()`: bf16 under `bf16-true`, fp32 weights under
    `bf16-mixed` (litgpt/finetune/lora.py, litgpt/lora.py 0.5.13).
    """
    return param_dtype if framework in ("torchtune", "litgpt") else ADAPTER_DTYPE
