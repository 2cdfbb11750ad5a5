"""The plan: one fine-tuning setup, exactly the fields of shared/contracts/plan-v1.md.

Validation happens once, here, where a plan enters (file, CLI, GUI): every bad value
raises PlanError with one line naming the field and what is allowed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic  # noqa: F401  (re-exported: callers save through plan)
from .errors import PlanError
from .files import MAX_PLAN_BYTES, read_json_file
from .stack_defaults import FRAMEWORKS, LOSSES, framework_defaults
from .text import bare, shown

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("bf16", "fp16", "fp32", "mixed-bf16", "mixed-fp16", "fsdp-mixed-bf16")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "paged-adamw", "sgd", "adafactor")
ATTENTIONS = ("sdpa", "eager", "flash")
SHARDINGS = ("none", "fsdp", "zero2", "zero3")
OFFLOADS = ("none", "optimizer", "optimizer+params")
# preference and RL fine-tuning (plan-v1 "Additions: preference and RL fine-tuning")
ALGORITHMS = ("sft", "dpo", "orpo", "simpo", "kto", "grpo")
PREFERENCE_ALGORITHMS = ("dpo", "orpo", "simpo", "kto")  # seq_len is TRL's max_length, prompt_len its prompt part
REFERENCES = ("copy", "adapter-off", "precomputed", "none")
GENERATIONS = ("transformers", "vllm-colocate", "vllm-server")
# Algorithms whose TRL trainer has a reference policy (ORPO and SimPO/CPO are reference-free;
# GRPO's reference exists only when beta > 0, and GRPOConfig.beta defaults to 0.0 in TRL 1.16,
# trl/trainer/grpo_config.py, so its default reference is none).
_WITH_REFERENCE = ("dpo", "kto")

PLAN_SUFFIX = ".napkin.json"


@dataclass(frozen=True, slots=True)
class Plan:
    """One fine-tuning setup (plan-v1). Change it with dataclasses.replace(plan, ...)."""

    model: str
    method: str = "lora"
    precision: str = "bf16"
    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05
    lora_targets: str | tuple[str, ...] = "all-linear"
    quant_double: bool = True
    kbit_prep: bool = True
    optimizer: str = "adamw"
    batch_size: int = 1
    seq_len: int = 2048
    grad_accum: int = 1
    grad_ckpt: bool = False
    attention: str = "sdpa"
    gpu: str = "h100-80gb-sxm"
    n_gpus: int = 1
    sharding: str = "none"
    offload: str = "none"
    dataset_tokens: float = 0
    epochs: float = 1
    # the training stack (plan-v1 "Additions: the training stack"; defaults in core/stack_defaults.py)
    framework: str = "transformers"
    loss: str = "standard"
    liger: bool = False
    compile: bool = False
    activation_offload: bool = False
    optimizer_in_backward: bool = False
    algorithm: str = "sft"
    reference: str = "none"          # plan files without it get default_reference(algorithm, method)
    prompt_len: int = 512
    completion_len: int = 256
    num_generations: int = 8
    generation: str = "transformers"
    vllm_gpu_memory_utilization: float = 0.3

    @property
    def is_lora(self) -> bool:
        return self.method in ("lora", "qlora")

    @property
    def compute_dtype(self) -> str:
        """dtype matmuls run in: the autocast dtype for mixed-*, bf16 for FSDP's mixed
        precision (bf16 gathered parameters), else the weight dtype."""
        return self.precision.removeprefix("fsdp-").removeprefix("mixed-")

    @property
    def param_dtype(self) -> str:
        """dtype the unquantized weights are stored in (mixed-* keeps fp32 masters; FSDP's
        mixed precision keeps fp32 shards)."""
        return "fp32" if self.precision.startswith(("mixed-", "fsdp-mixed-")) else self.precision

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.batch_size * self.seq_len


def default_reference(algorithm: str, method: str) -> str:
    """plan-v1's default reference: adapter-off for LoRA/QLoRA, copy for full, where the
    algorithm has a reference (DPO, KTO); none otherwise (SFT, ORPO, SimPO, GRPO at beta 0)."""
    if algorithm not in _WITH_REFERENCE:
        return "none"
    return "adapter-off" if method in ("lora", "qlora") else "copy"


# Fields only GRPO reads, and those the DPO family reads too (a value other than the default on
# another algorithm is an error, so a plan never carries a setting nothing uses).
GRPO_FIELDS = ("completion_len", "num_generations", "generation", "vllm_gpu_memory_utilization")


PLAN_FIELDS = tuple(f.name for f in dataclasses.fields(Plan))
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Plan) if f.name != "model"}


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of `allowed`, any case ("LoRA" is lora); the echo of a bad value is escaped and cut."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in allowed:
            return key
    raise PlanError(f"{field}: {shown(value)} is not allowed; use one of {', '.join(allowed)}")


# Closest-match work is bounded: difflib's ratio is quadratic in the length it is given.
_MATCH_CHARS = 64
_MAX_UNKNOWN_SHOWN = 5


def _unknown_fields_message(unknown: list[str]) -> str:
    """Every unknown key at once, escaped and cut, each with a "did you mean" when one is close."""
    import difflib
    parts = []
    for key in unknown[:_MAX_UNKNOWN_SHOWN]:
        close = difflib.get_close_matches(key[:_MATCH_CHARS].lower(), PLAN_FIELDS, n=1, cutoff=0.6)
        parts.append(f"{bare(key, 60)}: unknown field" + (f" (did you mean {close[0]}?)" if close else ""))
    if len(unknown) > _MAX_UNKNOWN_SHOWN:
        parts.append(f"and {len(unknown) - _MAX_UNKNOWN_SHOWN} more unknown fields")
    return f"{'; '.join(parts)}; plan fields are {', '.join(PLAN_FIELDS)}"


def _int(field: str, value: Any, minimum: int = 1, maximum: int = 10**9) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and (not math.isfinite(value) or value != int(value)))):
        raise PlanError(f"{field}: must be an integer from {minimum:,} to {maximum:,}, got {shown(value)}")
    if not minimum <= int(value) <= maximum:
        raise PlanError(f"{field}: must be an integer from {minimum:,} to {maximum:,}, got {shown(value)}")
    return int(value)


def _number(field: str, value: Any, minimum: float = 0.0, maximum: float = 1e18,
            allow_min: bool = True) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (isinstance(value, int) or math.isfinite(value)))  # isfinite(10**400) overflows
    if not ok or value < minimum or (value == minimum and not allow_min) or value > maximum:
        bound = ">=" if allow_min else ">"
        raise PlanError(f"{field}: must be a number {bound} {minimum:g} and <= {maximum:g}, got {shown(value)}")
    return value


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PlanError(f"{field}: must be true or false, got {shown(value)}")
    return value


def parse_lora_targets(value: Any) -> str | tuple[str, ...]:
    """"all-linear", or module names (a list, or one comma-separated string as the editor's field holds)."""
    if value == "all-linear":
        return value
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if (isinstance(value, (list, tuple)) and value
            and all(isinstance(v, str) and v.strip() and v.strip().isidentifier() for v in value)):
        return tuple(v.strip() for v in value)
    raise PlanError(f"lora_targets: must be \"all-linear\" or a non-empty list of module names "
                    f"such as [\"q_proj\", \"v_proj\"], got {shown(value)}")


def plan_from_dict(data: Any) -> Plan:
    """Validate a plan-v1 JSON object and return the Plan; PlanError on any bad field."""
    if not isinstance(data, dict):
        raise PlanError(f"plan: must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(PLAN_FIELDS))
    if unknown:
        raise PlanError(_unknown_fields_message(unknown))
    if "model" not in data:
        raise PlanError("model: required (a catalog id such as llama-3.1-8b, a config.json path or a model folder)")
    model = data["model"]
    if not isinstance(model, str) or not model.strip():
        raise PlanError(f"model: must be a non-empty string, got {shown(model)}")
    v = {**_DEFAULTS, **_stack_defaults(data), **_grpo_batch_default(data), **data}
    plan = Plan(
        model=model.strip(),
        method=_choice("method", v["method"], METHODS),
        precision=_choice("precision", v["precision"], PRECISIONS),
        lora_r=_int("lora_r", v["lora_r"], 1, 65536),
        lora_alpha=_number("lora_alpha", v["lora_alpha"], 0.0, 1e6, allow_min=False),
        lora_dropout=_number("lora_dropout", v["lora_dropout"], 0.0, 0.999),
        lora_targets=parse_lora_targets(v["lora_targets"]),
        quant_double=_bool("quant_double", v["quant_double"]),
        kbit_prep=_bool("kbit_prep", v["kbit_prep"]),
        optimizer=_choice("optimizer", v["optimizer"], OPTIMIZERS),
        batch_size=_int("batch_size", v["batch_size"], 1, 1_000_000),
        seq_len=_int("seq_len", v["seq_len"], 1, 100_000_000),
        grad_accum=_int("grad_accum", v["grad_accum"], 1, 1_000_000),
        grad_ckpt=_bool("grad_ckpt", v["grad_ckpt"]),
        attention=_choice("attention", v["attention"], ATTENTIONS),
        gpu=_gpu_name(v["gpu"]),
        n_gpus=_int("n_gpus", v["n_gpus"], 1, 100_000),
        sharding=_choice("sharding", v["sharding"], SHARDINGS),
        offload=_choice("offload", v["offload"], OFFLOADS),
        dataset_tokens=_number("dataset_tokens", v["dataset_tokens"], 0.0, 1e16),
        epochs=_number("epochs", v["epochs"], 0.0, 1e6, allow_min=False),
        framework=_choice("framework", v["framework"], FRAMEWORKS),
        loss=_choice("loss", v["loss"], LOSSES),
        liger=_bool("liger", v["liger"]),
        compile=_bool("compile", v["compile"]),
        activation_offload=_bool("activation_offload", v["activation_offload"]),
        optimizer_in_backward=_bool("optimizer_in_backward", v["optimizer_in_backward"]),
        algorithm=_choice("algorithm", v["algorithm"], ALGORITHMS),
        prompt_len=_int("prompt_len", v["prompt_len"], 1, 100_000_000),
        completion_len=_int("completion_len", v["completion_len"], 1, 100_000_000),
        num_generations=_int("num_generations", v["num_generations"], 2, 1_000_000),
        generation=_choice("generation", v["generation"], GENERATIONS),
        vllm_gpu_memory_utilization=_share("vllm_gpu_memory_utilization", v["vllm_gpu_memory_utilization"]),
    )
    reference = data.get("reference", default_reference(plan.algorithm, plan.method))
    plan = dataclasses.replace(plan, reference=_choice("reference", reference, REFERENCES))
    return check_combination(plan)


def _stack_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The named framework's values for the fields the plan leaves out (core/stack_defaults.py)."""
    framework = _choice("framework", data.get("framework", "transformers"), FRAMEWORKS)
    method = _choice("method", data.get("method", _DEFAULTS["method"]), METHODS)
    n_gpus = _int("n_gpus", data.get("n_gpus", 1), 1, 100_000)
    grad_accum = _int("grad_accum", data.get("grad_accum", 1), 1, 1_000_000)
    liger = _bool("liger", data.get("liger", False))
    return framework_defaults(framework, method, n_gpus, grad_accum, liger)
def _grpo_batch_default(data: dict[str, Any]) -> dict[str, Any]:
    """A GRPO plan without batch_size gets one group of completions per micro-batch:
    batch_size = num_generations (TRL's defaults agree: TrainingArguments'
    per_device_train_batch_size 8, GRPOConfig's num_generations 8), which every GPU count and
    accumulation satisfies; SFT's default of 1 would fail GRPOConfig's divisibility check."""
    if "batch_size" in data or _choice("algorithm", data.get("algorithm", "sft"), ALGORITHMS) != "grpo":
        return {}
    return {"batch_size": _int("num_generations", data.get("num_generations", _DEFAULTS["num_generations"]),
                               2, 1_000_000)}


def _share(field: str, value: Any) -> float:
    """A number strictly between 0 and 1 (vLLM's gpu_memory_utilization)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value < 1:
        raise PlanError(f"{field}: must be a number between 0 and 1 (exclusive), got {value!r}")
    return value


def _gpu_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlanError(f"gpu: must be a catalog id or an NVML name such as \"NVIDIA H100 80GB HBM3\", got {shown(value)}")
    return value.strip()


def check_combination(plan: Plan) -> Plan:
    """Reject setups that cannot run; returns the plan unchanged when it can."""
    if plan.method == "qlora" and plan.precision == "fp32":
        raise PlanError("precision: qlora needs a 16-bit compute dtype; use bf16, fp16, mixed-bf16 or mixed-fp16")
    if plan.method == "qlora" and plan.sharding in ("zero2", "zero3") and plan.offload == "optimizer+params":
        raise PlanError("offload: 4-bit weights cannot be offloaded to the CPU; use none or optimizer")
    if plan.offload == "optimizer+params" and plan.sharding not in ("zero3", "fsdp"):
        raise PlanError("offload: optimizer+params needs sharding zero3 or fsdp; use none or optimizer")
    check_algorithm(plan)
    return check_stack(plan)


# Loss kernels each framework can run: transformers computes full logits in ForCausalLMLoss,
# gets Liger's fused linear CE with liger (or TRL use_liger_kernel) and Apple's cut_cross_entropy
# through its transformers patch (cut_cross_entropy/transformers/patch.py); torchtune 0.6.1 ships
# CEWithChunkedOutputLoss only (torchtune/modules/loss/); litgpt chunks its lm_head and CE
# (litgpt/utils.py chunked_cross_entropy; chunk_size=0 is the plain loss); unsloth's fused CE
# (unsloth_zoo/loss_utils.py) or plain logits (UNSLOTH_RETURN_LOGITS).
FRAMEWORK_LOSSES = {"transformers": ("standard", "fused-linear-ce", "cut-ce"),
                    "torchtune": ("standard", "chunked-ce"),
                    "litgpt": ("standard", "chunked-ce"),
                    "unsloth": ("standard", "fused-linear-ce")}


def check_stack(plan: Plan) -> Plan:
    """Reject training-stack combinations the libraries themselves refuse or do not offer."""
    fw = plan.framework
    if plan.liger and fw != "transformers":
        # liger_kernel/transformers/monkey_patch.py patches transformers' modeling modules only;
        # unsloth brings its own Triton kernels
        raise PlanError(f"liger: Liger kernels patch Hugging Face transformers models only; "
                        f"use framework transformers or liger false (framework is {fw})")
    if plan.loss not in FRAMEWORK_LOSSES[fw]:
        raise PlanError(f"loss: {plan.loss} is not available under framework {fw}; use one of "
                        f"{', '.join(FRAMEWORK_LOSSES[fw])}")
    if plan.loss == "fused-linear-ce" and fw == "transformers" and not plan.liger:
        raise PlanError("loss: fused-linear-ce under transformers is Liger's kernel; set liger true "
                        "or use standard or cut-ce")
    if fw == "torchtune" and plan.sharding in ("zero2", "zero3"):
        # torchtune's distributed recipes shard with FSDP2 fully_shard (torchtune/training/_distributed.py)
        raise PlanError(f"sharding: torchtune shards with FSDP only; use none or fsdp (got {plan.sharding})")
    if plan.optimizer_in_backward:
        _check_optimizer_in_backward(plan)
    if fw == "litgpt" and plan.method == "qlora":
        _check_litgpt_quantized(plan)
    refusal = activation_offload_refusal(plan) if plan.activation_offload else None
    if refusal:
        raise PlanError(refusal)
    if plan.precision == "fsdp-mixed-bf16" and plan.sharding != "fsdp":
        raise PlanError("precision: fsdp-mixed-bf16 is FSDP's MixedPrecision and needs sharding fsdp; "
                        "use mixed-bf16 without FSDP")
    if plan.precision == "fsdp-mixed-bf16" and plan.method == "qlora":
        raise PlanError("precision: qlora stores 4-bit weights, not fp32 shards; use bf16 with FSDP")
    return plan


def activation_offload_refusal(plan: Plan) -> str | None:
    """Why the plan's framework cannot offload activations as set up, None where it can (the one
    rule: check_stack raises it, the editor greys its checkbox by it).
    - litgpt 0.5.13 has no activation offloading.
    - unsloth offloads the inputs of its checkpointed layers (use_gradient_checkpointing="unsloth",
      unsloth_zoo/gradient_checkpointing.py).
    - torchtune 0.6.1 recipes (lora_finetune_single_device.py and siblings) raise "enable_activation_offloading
      should only be True when enable_activation_checkpointing is True".
    - transformers: TRL's SFTConfig / DPOConfig / KTOConfig(activation_offloading=True) run with or
      without checkpointing; ORPO, CPO (SimPO) and GRPO have no such option (TRL 1.16)."""
    fw = plan.framework
    if fw == "litgpt":
        return "activation_offload: litgpt has no activation offloading; use false"
    if fw == "unsloth" and not plan.grad_ckpt:
        return "activation_offload: unsloth offloads checkpointed layer inputs; set grad_ckpt true"
    if fw == "transformers" and plan.algorithm in ("orpo", "simpo", "grpo"):
        return (f"activation_offload: TRL's {plan.algorithm.upper()} trainer has no activation_offloading "
                f"(only SFT, DPO and KTO have); use false")
    if fw == "torchtune" and not plan.grad_ckpt:
        return ("activation_offload: torchtune's recipes offload only with activation checkpointing "
                "(enable_activation_checkpointing); set grad_ckpt true")
    return None


def _check_litgpt_quantized(plan: Plan) -> None:
    """litgpt 0.5.13 finetune/lora.py setup() with --quantize bnb.*: ValueError "Quantization and
    mixed precision is not supported", NotImplementedError for more than one device, and
    litgpt/utils.py instantiate_bnb_optimizer: PagedAdamW for any AdamW, ValueError otherwise."""
    if plan.precision.startswith("mixed-"):
        raise PlanError(f"precision: litgpt does not quantize under mixed precision; use bf16 or fp16 "
                        f"(its bf16-true / 16-true), got {plan.precision}")
    if plan.n_gpus > 1:
        raise PlanError("n_gpus: litgpt quantizes on one device only; use 1 or method lora")
    if plan.optimizer != "paged-adamw":
        # any AdamW becomes bnb.optim.PagedAdamW(model.parameters()); other optimizers raise
        raise PlanError(f"optimizer: litgpt's quantized fine-tuning runs bitsandbytes PagedAdamW for any AdamW "
                        f"and refuses other optimizers; use paged-adamw, got {plan.optimizer}")


def _check_optimizer_in_backward(plan: Plan) -> None:
    """torchtune's full fine-tuning recipes are the ones that step in backward
    (recipes/full_finetune_single_device.py and full_finetune_distributed.py, torchtune 0.6.1:
    RuntimeError "Gradient accumulation is not supported with optimizer in bwd")."""
    if plan.framework != "torchtune":
        raise PlanError(f"optimizer_in_backward: only torchtune's recipes step the optimizer inside "
                        f"backward; use framework torchtune or false (framework is {plan.framework})")
    if plan.method != "full":
        raise PlanError("optimizer_in_backward: torchtune offers it in its full fine-tuning recipes only; "
                        "use method full or false")
    if plan.grad_accum > 1:
        raise PlanError("optimizer_in_backward: gradient accumulation is not supported with optimizer "
                        "in backward (torchtune); use grad_accum 1 or false")




def check_algorithm(plan: Plan) -> None:
    """Reject preference / RL settings TRL 1.16's trainers refuse or never read."""
    algo, ref = plan.algorithm, plan.reference
    if algo != "grpo":
        for field in GRPO_FIELDS:
            if getattr(plan, field) != _DEFAULTS[field]:
                raise PlanError(f"{field}: only used by algorithm grpo; leave it at {_DEFAULTS[field]!r} for {algo}")
    if algo == "sft" and plan.prompt_len != _DEFAULTS["prompt_len"]:
        raise PlanError(f"prompt_len: not used by algorithm sft; leave it at {_DEFAULTS['prompt_len']}")
    if algo in ("sft", "orpo", "simpo") and ref != "none":
        raise PlanError(f"reference: {algo} has no reference model; use none")
    if algo in _WITH_REFERENCE and ref == "none":
        # DPOConfig / KTOConfig (TRL 1.16) have no reference-free mode
        raise PlanError(f"reference: {algo} needs a reference; use copy, adapter-off or precomputed")
    if ref == "adapter-off" and not plan.is_lora:
        raise PlanError("reference: adapter-off needs method lora or qlora (full fine-tuning has no adapters "
                        "to disable); use copy or precomputed")
    if algo == "grpo" and ref == "precomputed":
        raise PlanError("reference: grpo scores completions generated during training, which cannot be "
                        "precomputed; use copy, adapter-off or none")
    if algo in PREFERENCE_ALGORITHMS and plan.prompt_len >= plan.seq_len:
        raise PlanError(f"prompt_len: must be below seq_len ({plan.seq_len}, TRL's max_length) for {algo}, "
                        f"got {plan.prompt_len}")
    if algo == "kto" and plan.batch_size < 2:
        # KTOTrainer.__init__: the KL term needs per_device_train_batch_size > 1
        raise PlanError("batch_size: kto needs at least 2 (its KL term pairs each prompt with another "
                        "completion of the batch)")
    if algo == "grpo":
        generation_batch = plan.batch_size * plan.n_gpus * plan.grad_accum
        if generation_batch % plan.num_generations:
            # GRPOConfig.__post_init__: generation_batch_size % num_generations == 0
            others = plan.n_gpus * plan.grad_accum
            fix = plan.num_generations // math.gcd(plan.num_generations, others)
            raise PlanError(f"num_generations: batch_size x n_gpus x grad_accum ({generation_batch}, TRL's "
                            f"generation_batch_size) must be divisible by it, got {plan.num_generations}; "
                            f"use batch_size {fix} (or a multiple){_or_generations(generation_batch, plan.num_generations)}")
        if plan.generation != "vllm-colocate" and plan.vllm_gpu_memory_utilization != _DEFAULTS[
                "vllm_gpu_memory_utilization"]:
            raise PlanError("vllm_gpu_memory_utilization: only used with generation vllm-colocate")


def _or_generations(generation_batch: int, num_generations: int) -> str:
    """", or num_generations D" with D the largest divisor >= 2 of the generation batch below
    num_generations; empty when there is none."""
    d = next((d for d in range(min(num_generations, generation_batch), 1, -1) if generation_batch % d == 0), None)
    return f" or num_generations {d}" if d else ""


def with_algorithm(plan: Plan, algorithm: str) -> Plan:
    """The plan trained with `algorithm` (what choosing one in the editor does, as one edit): the
    reference defaults as in a plan file (default_reference); fields the new algorithm never reads
    go back to their defaults; GRPO gets batch_size = num_generations when its generation batch
    would not divide (as a plan file without batch_size does), KTO at least 2 sequences, and the
    DPO family a prompt shorter than seq_len."""
    changes: dict[str, Any] = {"algorithm": algorithm, "reference": default_reference(algorithm, plan.method)}
    if algorithm != "grpo":
        changes.update({field: _DEFAULTS[field] for field in GRPO_FIELDS})
    if algorithm == "sft":
        changes["prompt_len"] = _DEFAULTS["prompt_len"]
    if algorithm == "grpo" and (plan.batch_size * plan.n_gpus * plan.grad_accum) % plan.num_generations:
        changes["batch_size"] = plan.num_generations
    if algorithm == "kto":
        changes["batch_size"] = max(plan.batch_size, 2)
    if algorithm in PREFERENCE_ALGORITHMS and plan.prompt_len >= plan.seq_len:
        changes["prompt_len"] = max(plan.seq_len // 2, 1)
    return dataclasses.replace(plan, **changes)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as a plan-v1 JSON object (tuples become lists)."""
    out = dataclasses.asdict(plan)
    if isinstance(out["lora_targets"], tuple):
        out["lora_targets"] = list(out["lora_targets"])
    return out


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a *.napkin.json plan file; a relative model path in it is taken from
    the plan's folder (model_beside_plan)."""
    plan = plan_from_dict(read_json_file(path, "plan", MAX_PLAN_BYTES))
    model = model_beside_plan(plan.model, Path(path).parent)
    return plan if model == plan.model else dataclasses.replace(plan, model=model)


def model_beside_plan(model: str, folder: Path) -> str:
    """A relative config.json or model-folder path in a plan file, as an absolute path from the
    plan's folder: the plan means the files beside it, as a relative link in a document does,
    not whatever the current folder holds. Preset ids, absolute and ~ paths stay as they are.
    An explicit path (./x, ../x, *.json) is always joined, so a missing one is reported where
    napkin looked; any other name (a word, an HF-style org/name) only when that file or folder
    exists beside the plan, else it stays a preset name (with the "closest presets" line)."""
    if os.path.isabs(model) or model.startswith("~"):
        return model
    from .model_source import is_preset
    if is_preset(model):
        return model
    candidate = Path(os.path.abspath(folder / model))
    looks_like_path = model.startswith(".") or model.lower().endswith(".json")
    # os.path.exists, not Path.exists: a 5000-character or NUL-holding name is "no", not an OSError
    return str(candidate) if looks_like_path or os.path.exists(candidate) else model


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write the plan atomically: a temp file in the same folder, then rename over the target."""
    write_text_atomic(Path(path), json.dumps(plan_to_dict(plan), indent=2) + "\n")
