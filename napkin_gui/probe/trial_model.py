"""Build a plan's model, reduced to a few decoder layers, exactly as the plan says.

Random weights from the architecture's config.json (`from_config`: nothing is
downloaded), then full / LoRA / QLoRA and the optimizer, the way
shared/groundtruth/measure.py made its ground-truth runs (build_bf16, load_4bit,
add_lora, make_opt). torch, transformers, peft and bitsandbytes are imported inside.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from typing import Any

from ..core.plan import Plan

# plan precision/compute dtype -> torch dtype attribute
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# plan attention -> transformers attn_implementation
ATTN_IMPLEMENTATIONS = {"sdpa": "sdpa", "eager": "eager", "flash": "flash_attention_2"}
# config.json keys that name the decoder depth (PretrainedConfig.attribute_map aliases)
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
# keys that must not reach from_config: weights are random, dtype comes from the plan
_DROP_KEYS = ("quantization_config", "auto_map", "torch_dtype", "dtype", "transformers_version",
              "_name_or_path", "architectures", "napkin")


class TrialUnsupported(Exception):
    """This plan cannot be trialled here; str() is the one status line for the user."""


def full_layer_count(config: dict[str, Any]) -> int:
    """Decoder layers of the full model from its config.json."""
    for key in LAYER_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    raise TrialUnsupported("trial: the model's config.json names no num_hidden_layers")


def reduced_config_dict(config: dict[str, Any], layers: int) -> dict[str, Any]:
    """config.json with `layers` decoder layers: per-layer lists (layer_types, ...) cut to match."""
    full = full_layer_count(config)
    out = {k: v for k, v in config.items() if k not in _DROP_KEYS}
    for key, value in config.items():
        if isinstance(value, list) and len(value) == full and key not in _DROP_KEYS:
            out[key] = value[:layers]
    for key in LAYER_KEYS:
        if key in out:
            out[key] = layers
    out["use_cache"] = False
    return out


def build_config(config: dict[str, Any], layers: int) -> Any:
    """A transformers config of the architecture with `layers` decoder layers."""
    from transformers import AutoConfig

    d = reduced_config_dict(config, layers)
    model_type = d.pop("model_type", None)
    if not model_type:
        raise TrialUnsupported("trial: the model's config.json has no model_type")
    try:
        return AutoConfig.for_model(model_type, **d)
    except ValueError:
        import transformers
        raise TrialUnsupported(f"trial: transformers {transformers.__version__} does not know "
                               f"model_type {model_type!r}") from None


def installed(package: str) -> bool:
    """Whether `package` can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def check_supported(plan: Plan, device: Any) -> None:
    """Raise TrialUnsupported for what a one-GPU trial cannot reproduce or cannot run here."""
    if plan.sharding != "none" or plan.offload != "none":
        raise TrialUnsupported(f"trial runs one GPU without sharding or offload; this plan uses "
                               f"sharding {plan.sharding}, offload {plan.offload}")
    needs_bnb = plan.method == "qlora" or plan.optimizer in ("adamw-8bit", "paged-adamw-8bit")
    if needs_bnb and not installed("bitsandbytes"):
        what = "QLoRA trial" if plan.method == "qlora" else f"optimizer {plan.optimizer}"
        raise TrialUnsupported(f"{what} needs bitsandbytes (pip install bitsandbytes)")
    if needs_bnb and device.type != "cuda":
        raise TrialUnsupported("bitsandbytes 4-bit/8-bit trials need a CUDA GPU")
    if plan.attention == "flash":
        if not installed("flash_attn"):
            raise TrialUnsupported("attention flash needs the flash-attn package (pip install flash-attn)")
        if device.type != "cuda":
            raise TrialUnsupported("attention flash needs a CUDA GPU")


def build_model(plan: Plan, config: dict[str, Any], layers: int, device: Any) -> Any:
    """The reduced model on `device`, with the plan's method applied, in train mode."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = build_config(config, layers)
    param_dtype = getattr(torch, TORCH_DTYPES[plan.param_dtype])
    attn = ATTN_IMPLEMENTATIONS[plan.attention]
    torch.manual_seed(0)
    if plan.method == "qlora":
        model = _load_4bit(plan, cfg, device, attn)
    else:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(cfg, dtype=param_dtype, attn_implementation=attn)
    if plan.is_lora:
        from peft import LoraConfig, get_peft_model
        targets = plan.lora_targets if isinstance(plan.lora_targets, str) else list(plan.lora_targets)
        lora = LoraConfig(r=plan.lora_r, lora_alpha=plan.lora_alpha, lora_dropout=plan.lora_dropout,
                          target_modules=targets, task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as err:
            raise TrialUnsupported(f"lora_targets: {str(err).splitlines()[0]}") from None
    if plan.grad_ckpt:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if plan.is_lora and hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.train()
    return model


def _load_4bit(plan: Plan, cfg: Any, device: Any, attn: str) -> Any:
    """Save the random 16-bit model, reload it as NF4 (measure.py load_4bit), kbit-prepare it."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = getattr(torch, TORCH_DTYPES[plan.compute_dtype])
    with torch.device(device):
        base = AutoModelForCausalLM.from_config(cfg, dtype=compute)
    size = sum(p.numel() * p.element_size() for p in base.parameters())
    folder = tempfile.mkdtemp(prefix="napkin-trial-", dir=_scratch_dir(2 * size))
    try:
        base.save_pretrained(folder)
        del base
        if device.type == "cuda":
            torch.cuda.empty_cache()
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_use_double_quant=plan.quant_double,
                                   bnb_4bit_compute_dtype=compute)
        model = AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=quant, dtype=getattr(torch, TORCH_DTYPES[plan.param_dtype]),
            device_map={"": device.index or 0}, attn_implementation=attn)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if plan.kbit_prep:
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def _scratch_dir(needed_bytes: int) -> str | None:
    """/dev/shm when it has room (fast; measure.py wants 40 GB there), else the temp folder.
    Containers often give /dev/shm only 64 MiB."""
    try:
        if shutil.disk_usage("/dev/shm").free > needed_bytes:
            return "/dev/shm"
    except OSError:
        pass
    return None


def make_optimizer(plan: Plan, params: list[Any]) -> Any:
    """The plan's optimizer over the trainable parameters (measure.py make_opt, lr irrelevant)."""
    import torch

    if plan.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=1e-5)
    if plan.optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-5)
    if plan.optimizer == "adafactor":
        return torch.optim.Adafactor(params, lr=1e-5)
    import bitsandbytes as bnb
    if plan.optimizer == "adamw-8bit":
        return bnb.optim.AdamW8bit(params, lr=1e-5)
    return bnb.optim.PagedAdamW8bit(params, lr=1e-5)


def decoder_layers(model: Any, layers: int) -> list[Any]:
    """The model's decoder blocks: the largest nn.ModuleList holding exactly `layers` modules."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == layers]
    if not lists:
        raise TrialUnsupported("trial: cannot find the decoder layers in this architecture")
    return list(max(lists, key=lambda m: sum(p.numel() for p in m.parameters())))


def param_counts(model: Any) -> tuple[int, int]:
    """(total, trainable) as measure.py counts them: a 4-bit uint8 element holds two weights."""
    import torch

    total = sum(p.numel() * (2 if p.dtype == torch.uint8 else 1) for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def config_from_model_spec(spec: Any) -> dict[str, Any]:
    """The config.json dict a ModelSpec carries (its config_json text)."""
    try:
        config = json.loads(spec.config_json or "{}")
    except json.JSONDecodeError:
        raise TrialUnsupported("trial: the model's config.json text is not valid JSON") from None
    if not isinstance(config, dict):
        raise TrialUnsupported("trial: the model's config.json is not a JSON object")
    text = config.get("text_config")
    if not any(key in config for key in LAYER_KEYS) and isinstance(text, dict) and text.get("model_type"):
        config = text  # a vision-language checkpoint: trial its language model
    if not config.get("model_type"):
        raise TrialUnsupported("trial: the model's config.json has no model_type")
    return config
