"""Warnings about a plan on its card: settings that run, but not as the user likely expects.

Each rule reads the catalog card's fields (resources/gpus.json: bf16_tflops, fp16_tflops,
vendor, compute_capability) and the model's config, never a card's name, so a new card in the
catalog gets the right warnings. They land in Estimate.warnings (`napkin estimate`'s
`warnings`, the report's Warnings section). Nothing here changes a figure.
"""
from __future__ import annotations

from .gpu_spec import GpuSpec
from .model_spec import ModelSpec
from .plan import Plan

# precision -> the same recipe in fp16 (the weights keep their role, only the 16-bit type changes)
FP16_COUNTERPART = {"bf16": "fp16", "mixed-bf16": "mixed-fp16", "fsdp-mixed-bf16": "mixed-fp16"}


def bf16_without_tensor_cores(plan: Plan, gpu: GpuSpec) -> str | None:
    """bf16 compute on a card whose bf16 rate is below its fp16 rate (no bf16 tensor cores).

    Volta and Turing have fp16 tensor cores only: torch still runs bf16 matmuls there
    (torch/cuda/__init__.py is_bf16_supported(including_emulation=True) tries a bf16 tensor
    on major < 8), at the card's non-tensor rate, which is what the catalog's bf16_tflops holds
    (V100: 15.7 vs 125 fp16) and what napkin's time model prices (time_model.py picks
    bf16_tflops for bf16 compute).
    """
    counterpart = FP16_COUNTERPART.get(plan.precision)
    if counterpart is None or plan.compute_dtype != "bf16" or not gpu.bf16_tflops < gpu.fp16_tflops:
        return None
    return (f"precision: {plan.precision} on {gpu.name} runs at {gpu.bf16_tflops:g} TFLOP/s against "
            f"{gpu.fp16_tflops:g} for fp16 (no bf16 tensor cores); napkin prices fp16 faster here: use "
            f"precision {counterpart} (with a loss scaler)")


def _cuda_major(gpu: GpuSpec) -> int | None:
    """The compute capability's major version of an NVIDIA card ("7.5" -> 7); None otherwise."""
    if gpu.vendor.upper() != "NVIDIA":
        return None
    head = gpu.compute_capability.split(".")[0]
    return int(head) if head.isdigit() else None


def flash_before_ampere(plan: Plan, gpu: GpuSpec) -> str | None:
    """attention: flash (FlashAttention-2) on an NVIDIA card below compute capability 8.0.

    flash-attn refuses it in mha_fwd: TORCH_CHECK(is_sm90 || is_sm8x, "FlashAttention only
    supports Ampere GPUs or newer.") (Dao-AILab/flash-attention csrc/flash_attn/flash_api.cpp);
    transformers' attn_implementation="flash_attention_2" calls that kernel. AMD cards are left
    alone: flash-attn's ROCm build runs on MI200/MI300 (gfx90a, gfx942).
    """
    major = _cuda_major(gpu)
    if plan.attention != "flash" or major is None or major >= 8:
        return None
    return (f"attention: flash needs compute capability 8.0 or newer (FlashAttention-2 stops with "
            f"'FlashAttention only supports Ampere GPUs or newer'); {gpu.name} is "
            f"{gpu.compute_capability}: use sdpa (its memory-efficient kernel runs there)")


def sequence_beyond_positions(plan: Plan, spec: ModelSpec) -> str | None:
    """A sequence longer than the model's max_position_embeddings (0: the config gives none).

    GRPO's sequences are prompt + completion; every other algorithm's longest is seq_len
    (TRL's max_length for the DPO family).
    """
    limit = spec.max_position_embeddings
    length = plan.prompt_len + plan.completion_len if plan.algorithm == "grpo" else plan.seq_len
    field = "prompt_len + completion_len" if plan.algorithm == "grpo" else "seq_len"
    if limit <= 0 or length <= limit:
        return None
    return (f"{field}: {length:,} is above {spec.name}'s max_position_embeddings {limit:,}: positions "
            f"past it were never trained (learned position embeddings fail outright); shorten it or "
            f"give the config a rope_scaling")


def sharding_on_one_gpu(plan: Plan) -> str | None:
    """fsdp / zero2 / zero3 with n_gpus 1 and nothing offloaded: there is nothing to shard across.

    FSDP1 switches itself to NO_SHARD on a world of one (torch/distributed/fsdp/_init_utils.py,
    _init_core_state: "FSDP is switching to use NO_SHARD ... since the world size is 1"); DeepSpeed
    ZeRO partitions over the data-parallel ranks, one here. With offload the sharded engine is
    what moves state to the host (ZeRO-Offload, FSDP CPUOffload), so that case is not warned.
    """
    if plan.n_gpus != 1 or plan.sharding == "none" or plan.offload != "none":
        return None
    return (f"sharding: {plan.sharding} on 1 GPU shards nothing (one rank holds all the model state); "
            f"use sharding none, add GPUs, or offload to the host")


def plan_warnings(plan: Plan, spec: ModelSpec, gpu: GpuSpec) -> tuple[str, ...]:
    """Every rule above that applies, in a fixed order."""
    found = (bf16_without_tensor_cores(plan, gpu), flash_before_ampere(plan, gpu),
             sequence_beyond_positions(plan, spec), sharding_on_one_gpu(plan))
    return tuple(w for w in found if w is not None)
