"""Human names of plan values and GPUs: what the editor's combos and the PDF's plan table show
in place of the plan file's ids ('LoRA' for lora, 'H100 80GB SXM5' for h100-80gb-sxm), the
words of a change ('checkpointing off'), and the plan header's algorithm and token words that
napkin estimate, napkin search and the report print alike.

The plan file keeps the ids (contracts/plan-v1.md); a value with no entry here shows as
itself. Standard library and the catalog only.
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
    from .errors import PlanError
    from .gpu_catalog import lookup_gpu
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


# on / off switches of a plan, in words ('checkpointing on')
_SWITCHES = {"grad_ckpt": "checkpointing", "liger": "Liger kernels", "compile": "torch.compile",
             "activation_offload": "activation offload", "optimizer_in_backward": "optimizer step in backward",
             "kbit_prep": "k-bit preparation", "quant_double": "double quantization"}
# values whose editor name needs its field beside it ('None (a copy per GPU)')
# or that are long for a line of changes
_CHANGE_NAMES = {"sharding": {"none": "no sharding"}, "offload": {"none": "no CPU offload"},
                 "loss": {"standard": "plain CE loss", "chunked-ce": "chunked CE loss",
                          "fused-linear-ce": "fused linear CE loss", "cut-ce": "cut CE loss"}}
# fields shown by a word of their own ('micro-batch 4 → 2')
_FIELD_WORDS = {"batch_size": "micro-batch", "grad_accum": "accumulation", "seq_len": "sequence",
                "lora_r": "LoRA rank", "lora_alpha": "LoRA alpha", "lora_targets": "LoRA targets"}


def change_words(field: str, old: Any, new: Any) -> str:
    """One changed plan field in words, with human names ('AdamW 8-bit → AdamW', 'checkpointing
    off', 'H100 80GB SXM5 → RTX 4090', 'Full fine-tuning → LoRA', 'no sharding → ZeRO-3'),
    never the plan file's ids."""
    if field in _SWITCHES and isinstance(new, bool):
        return f"{_SWITCHES[field]} {'on' if new else 'off'}"
    if field == "gpu":
        return f"{short_gpu_name(gpu_name(old))} → {short_gpu_name(gpu_name(new))}"
    if field in VALUE_NAMES:   # the names say what they are ('AdamW 8-bit', 'FSDP', 'LoRA')
        name = lambda v: _CHANGE_NAMES.get(field, {}).get(v) or value_name(field, v)  # noqa: E731
        return f"{name(old)} → {name(new)}"
    if field == "n_gpus":
        return f"{old} → {new} GPU{'' if new == 1 else 's'}"
    words = _FIELD_WORDS.get(field, field.replace("_", " "))
    show = lambda v: ", ".join(v) if isinstance(v, (tuple, list)) else str(v)  # noqa: E731
    return f"{words} {show(old)} → {show(new)}"


def plan_change_words(base: Any, plan: Any) -> tuple[str, ...]:
    """change_words of every field in which plan differs from base (the card by catalog card:
    an id and an NVML name of one card are no change)."""
    import dataclasses
    out = []
    for f in dataclasses.fields(plan):
        old, new = getattr(base, f.name), getattr(plan, f.name)
        if f.name == "gpu" and gpu_id_for(old) == gpu_id_for(new):
            continue
        if old != new:
            out.append(change_words(f.name, old, new))
    return tuple(out)


def change_text_words(text: str) -> str:
    """change_words of one of core.search.plan_changes' 'field: old -> new' lines (ids, JSON
    values): what a view shows of a search entry's changes."""
    import json
    field, _, rest = text.partition(": ")
    old, sep, new = rest.partition(" -> ")
    if not sep:
        return text

    def decode(value: str) -> Any:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return change_words(field, decode(old), decode(new))


def algorithm_label(p) -> str:
    """' · dpo (reference adapter-off)' for preference / RL plans; empty for sft."""
    if p.algorithm == "sft":
        return ""
    extra = f", {p.num_generations} generations of {p.completion_len}, {p.generation}" if p.algorithm == "grpo" else ""
    return f" · {p.algorithm} (reference {p.reference}{extra})"


def tokens_text(p) -> str:
    """Tokens per sequence: seq_len, or GRPO's prompt + completion (it never reads seq_len)."""
    return f"({p.prompt_len} + {p.completion_len})" if p.algorithm == "grpo" else str(p.seq_len)
