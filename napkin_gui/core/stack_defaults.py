"""What each framework's current release does when the user does not say: the one table.

A plan file that names a `framework` and leaves out a field below gets that framework's
value; `transformers` gives exactly the Plan dataclass defaults, so plans written before
the training-stack fields keep their estimates bit-identical. Sources (versions installed
with the project's test extra; unsloth read from unslothai/unsloth):

- transformers 5.24 / TRL 1.16 / peft 0.21: the Plan defaults (full-vocabulary logits through
  `ForCausalLMLoss`, no Liger unless `use_liger_kernel`, no compile, no activation offloading).
- torchtune 0.6.1, recipes/configs/llama3_1/8B_lora_single_device.yaml and 8B_qlora_single_device.yaml:
  `loss: CEWithChunkedOutputLoss`, `enable_activation_checkpointing: True`,
  `enable_activation_offloading: False`, `compile: False`, `lora_rank: 8`, `lora_alpha: 16`,
  `lora_dropout: 0.0`; 8B_full_single_device.yaml: `optimizer: bitsandbytes.optim.PagedAdamW8bit`,
  `optimizer_in_bwd: True` with `gradient_accumulation_steps: 1`; 8B_full.yaml (distributed):
  `torch.optim.AdamW`, `optimizer_in_bwd: False`.
- litgpt 0.5.13, litgpt/finetune/lora.py setup(): `lora_r=8`, `lora_alpha=16`, `lora_dropout=0.05`;
  fit() calls `model(input_ids, lm_head_chunk_size=128)` and `chunked_cross_entropy(..., chunk_size=128)`
  (litgpt/utils.py); no activation checkpointing on one device. With `--quantize bnb.*`, main()
  replaces the optimizer by `bnb.optim.PagedAdamW` (litgpt/utils.py instantiate_bnb_optimizer), so
  a litgpt QLoRA plan defaults to `paged-adamw`. Precision `bf16` is litgpt's `bf16-true` (the
  config_hub finetune recipes' `precision: bf16-true`; setup() alone would take bf16-mixed from
  get_default_supported_precision), keeping adapters and AdamW states in bf16
  (core/memory/lora.py adapter_dtype). Its default LoRA targets (lora_query, lora_value) are not
  filled in: napkin's targets are module names, which depend on the model.
- unsloth 2026.8.19 (unslothai/unsloth unsloth/models/llama.py FastLlamaModel.get_peft_model:
  `r=16`, `lora_alpha=16`, `lora_dropout=0.0`, `use_gradient_checkpointing="unsloth"`, i.e. the
  checkpointed inputs offloaded to pinned host memory, unsloth_zoo/gradient_checkpointing.py);
  studio/backend/assets/configs/model_defaults/default.yaml, its defaults for any model:
  `gradient_checkpointing: "unsloth"`, `optim: "adamw_8bit"`, `lora_dropout: 0.0`;
  CausalLM_fast_forward's `unsloth_fused_ce_loss` (unsloth_zoo/fused_losses/cross_entropy_loss.py)
  instead of full logits unless UNSLOTH_RETURN_LOGITS=1. Module code: core/frameworks/unsloth.py.
- Liger (liger_kernel 0.8.5, transformers/monkey_patch.py apply_liger_kernel_to_llama):
  `fused_linear_cross_entropy=True` by default, so `liger: true` defaults `loss` to fused-linear-ce.
"""
from __future__ import annotations

import dataclasses
from typing import Any

FRAMEWORKS = ("transformers", "torchtune", "litgpt", "unsloth")
LOSSES = ("standard", "chunked-ce", "fused-linear-ce", "cut-ce")

# The fields a framework sets when the plan does not (STACK_FIELDS plus the recipe defaults
# of existing fields). Keys are plan fields; values are what that framework's release uses.
_COMMON = {"loss": "standard", "liger": False, "compile": False, "activation_offload": False,
           "optimizer_in_backward": False, "optimizer": "adamw"}
FRAMEWORK_DEFAULTS: dict[str, dict[str, Any]] = {
    "transformers": {**_COMMON, "grad_ckpt": False, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05},
    "torchtune": {**_COMMON, "loss": "chunked-ce", "grad_ckpt": True,
                  "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
    "litgpt": {**_COMMON, "loss": "chunked-ce", "grad_ckpt": False,
               "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05},
    "unsloth": {**_COMMON, "loss": "fused-linear-ce", "grad_ckpt": True, "activation_offload": True,
                "optimizer": "adamw-8bit", "lora_r": 16, "lora_alpha": 16, "lora_dropout": 0.0},
}
# torchtune's single-device full fine-tuning configs step inside backward with paged 8-bit
# AdamW (8B_full_single_device.yaml, 1B_full_single_device.yaml); only with grad_accum 1.
TORCHTUNE_FULL_SINGLE_DEVICE = {"optimizer": "paged-adamw-8bit", "optimizer_in_backward": True}

# litgpt/finetune/lora.py main(): `if isinstance(fabric.strategy.precision, BitsandbytesPrecision):
# optimizer = instantiate_bnb_optimizer(optimizer, model.parameters())` -> bnb.optim.PagedAdamW
LITGPT_QUANTIZED_OPTIMIZER = "paged-adamw"

STACK_FIELDS = ("framework", "loss", "liger", "compile", "activation_offload", "optimizer_in_backward")
# Every field a framework choice may fill (the editor's "choose a framework" edit sets these).
FILLED_FIELDS = tuple(FRAMEWORK_DEFAULTS["transformers"])


def framework_defaults(framework: str, method: str = "lora", n_gpus: int = 1, grad_accum: int = 1,
                       liger: bool = False) -> dict[str, Any]:
    """The values `framework` uses for the fields its user leaves out, for this method and GPU count."""
    out = dict(FRAMEWORK_DEFAULTS[framework])
    if framework == "torchtune" and method == "full" and n_gpus == 1 and grad_accum == 1:
        out.update(TORCHTUNE_FULL_SINGLE_DEVICE)
    if framework == "litgpt" and method == "qlora":
        out["optimizer"] = LITGPT_QUANTIZED_OPTIMIZER
    if liger and framework == "transformers":
        out["loss"] = "fused-linear-ce"
    return out


def with_framework(plan: Any, framework: str) -> Any:
    """The plan run under `framework` with that framework's defaults for every field it fills
    (what choosing a framework in the editor does, as one edit)."""
    values = framework_defaults(framework, plan.method, plan.n_gpus, plan.grad_accum)
    return dataclasses.replace(plan, framework=framework, **values)
