"""Human names of plan values and GPUs: what the editor's combos and the PDF's plan table show
in place of the plan file's ids ('LoRA' for lora, 'H100 80GB SXM5' for h100-80gb-sxm).

The plan file keeps the ids (contracts/plan-v1.md); a value with no entry here shows as
itself. Standard library and core only.
"""
from __future__ import annotations

from typing import Any

VALUE_NAMES: dict[str, dict[str, str]] = {
    "method": {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit base)"},
    "precision": {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32", "mixed-bf16": "Mixed bf16 (fp32 masters)",
                  "mixed-fp16": "Mixed fp16 (fp32 masters)", "fsdp-mixed-bf16": "FSDP mixed bf16"},
    "optimizer": {"adamw": "AdamW", "adamw-8bit": "AdamW 8-bit", "paged-adamw-8bit": "Paged AdamW 8-bit",
                  "paged-adamw": "Paged AdamW", "sgd": "SGD", "adafactor": "Adafactor"},
    "attention": {"sdpa": "SDPA (torch)", "eager": "Eager (matmul + softmax)", "flash": "FlashAttention 2"},
    "sharding": {"none": "None (a copy per GPU)", "fsdp": "FSDP", "zero2": "ZeRO-2", "zero3": "ZeRO-3"},
    "offload": {"none": "None", "optimizer": "Optimizer to CPU", "optimizer+params": "Optimizer + params to CPU"},
    "framework": {"transformers": "transformers + peft", "torchtune": "torchtune", "litgpt": "LitGPT",
                  "unsloth": "Unsloth"},
    "loss": {"standard": "Standard cross-entropy", "chunked-ce": "Chunked cross-entropy",
             "fused-linear-ce": "Fused linear cross-entropy", "cut-ce": "Cut cross-entropy"},
    "algorithm": {"sft": "SFT", "dpo": "DPO", "orpo": "ORPO", "simpo": "SimPO", "kto": "KTO", "grpo": "GRPO"},
}

# vendor words every card of a maker shares: dropped so that the part that tells cards apart
# comes first ("AMD Instinct MI300X" and "... MI325X" both elided to "AMD Instinct …")
_VENDOR_PREFIXES = ("NVIDIA GeForce ", "NVIDIA Tesla ", "NVIDIA ", "AMD Instinct ", "AMD ")


def value_name(field: str, value: Any) -> str:
    """The human name of a plan field's value; the value itself when it has none."""
    return VALUE_NAMES.get(field, {}).get(value, str(value))


def short_gpu_name(name: str) -> str:
    """A catalog card's name without its maker's shared words: 'H100 80GB SXM5', 'MI300X', 'RTX 4090'."""
    for prefix in _VENDOR_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _catalog_card(name: str):
    """The catalog GpuSpec a plan's gpu (a catalog id or an NVML name) names, or None."""
    from .core.errors import PlanError
    from .core.gpu_catalog import lookup_gpu
    try:
        return lookup_gpu(name)
    except PlanError:
        return None


def gpu_name(gpu_id: str) -> str:
    """The catalog name of a plan's gpu id or NVML name; the text itself when it is no catalog card."""
    spec = _catalog_card(gpu_id)
    return spec.name if spec is not None else gpu_id


def gpu_id_for(name: str) -> str:
    """The catalog id of a plan's gpu (an id or an NVML name); the text itself when it is no catalog card."""
    spec = _catalog_card(name)
    return spec.id if spec is not None else name
