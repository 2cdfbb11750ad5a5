"""LoRA adapters: which linears get them, how many parameters, in which dtype.

peft LoraLayer.update_layer adds lora_A (r x d_in) and lora_B (d_out x r) per targeted
linear; peft >= 0.12 keeps them in fp32 when the base is fp16/bf16
(huggingface/peft src/peft/tuners/tuners_utils.py, BaseTuner._cast_adapter_dtype,
autocast_adapter_dtype=True).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..dtypes import tensor_bytes
from ..model_spec import DecoderLayer, LinearShape

# Names that peft's "all-linear" never targets: the output head, and MoE routers are
# nn.Linear too but peft targets them (kept); lm_head is excluded by
# peft/tuners/tuners_utils.py _maybe_include_all_linear_layers.
ADAPTER_DTYPE = "fp32"


def lora_target_linears(layer: DecoderLayer, targets: str | Sequence[str]) -> tuple[LinearShape, ...]:
    """The linears of one block that get an adapter ("all-linear" = every linear in the block)."""
    if targets == "all-linear":
        return layer.linears
    wanted = set(targets)
    return tuple(lin for lin in layer.linears if lin.name in wanted)


def lora_adapter_params(linears: Sequence[LinearShape], rank: int) -> int:
    """A (rank x d_in) + B (d_out x rank) for each targeted linear, every expert copy included."""
    return sum(lin.count * rank * (lin.d_in + lin.d_out) for lin in linears)


def lora_adapter_bytes(adapter_params: int) -> int:
    """Adapters are held in fp32 (peft autocast_adapter_dtype)."""
    return tensor_bytes(adapter_params, ADAPTER_DTYPE)
