"""Step time: a roofline per kind of work, summed, with efficiencies fitted to measured runs.

Terms: matmul FLOPs at the card's achievable tensor-core rate, memory traffic of elementwise
work (norms, activations, casts, LoRA's fp32 path, loss) at the card's bandwidth, NF4
dequantization, optimizer update traffic, and a fixed launch overhead per kernel.
"""
from __future__ import annotations

from .gpu_spec import GpuSpec
from .model_spec import ModelSpec
from .plan import Plan
from .result import MemoryEstimate, TimeEstimate, TimeTerm
from .memory.model_state import ModelState

# datasheet dense bf16 -> achievable large-GEMM rate: 800 of 989 TFLOP/s measured on H100 SXM
# (shared/groundtruth/env-h100.json, 8192^3 bf16 matmul, 2026-11)
MATMUL_ACHIEVABLE_FRACTION = 0.81
# device copy measured 2.97 TB/s (read+write) of 3.35 TB/s datasheet on the same card
BANDWIDTH_ACHIEVABLE_FRACTION = 0.89
# fraction of the achievable GEMM rate that training-shaped matmuls reach
MATMUL_EFFICIENCY = 0.55
# kernels launched per decoder block per step (forward + backward) and per-launch cost
KERNELS_PER_BLOCK = 60
LAUNCH_SECONDS = 8e-6


def _matmul_tflops(gpu: GpuSpec, dtype: str) -> float:
    peak = {"bf16": gpu.bf16_tflops, "fp16": gpu.fp16_tflops, "fp32": gpu.fp32_tflops}[dtype]
    return peak if gpu.calibrated else peak * MATMUL_ACHIEVABLE_FRACTION


def _bandwidth(gpu: GpuSpec) -> float:
    bw = gpu.memory_bandwidth_gbps * 1e9
    return bw if gpu.calibrated else bw * BANDWIDTH_ACHIEVABLE_FRACTION


def training_flops(spec: ModelSpec, plan: Plan, state: ModelState) -> float:
    """Forward 2·N·tokens, backward 2x forward (1x for frozen weights: input grads only),
    +1 forward with checkpointing, + causal attention 2·2·s²·h per layer forward."""
    tokens = plan.batch_size * plan.seq_len
    active = spec.total_params - spec.embedding_params
    forward = 2 * active * tokens
    attn = sum(2 * 2 * plan.batch_size * plan.seq_len ** 2 * spec.num_heads * spec.head_dim / 2
               for _ in range(spec.num_layers))
    forward += attn
    backward = 2 * forward if plan.method == "full" else forward + attn
    recompute = forward if plan.grad_ckpt else 0
    return forward + backward + recompute


def time_estimate(plan: Plan, spec: ModelSpec, gpu: GpuSpec, state: ModelState,
                  memory: MemoryEstimate) -> TimeEstimate:
    """Seconds per micro-batch and per optimizer step, and which term dominates."""
    flops = training_flops(spec, plan, state)
    compute = flops / (_matmul_tflops(gpu, plan.compute_dtype) * 1e12 * MATMUL_EFFICIENCY)
    traffic = (memory.component("activations").bytes + memory.component("logits_loss").bytes) * 4
    memory_s = traffic / _bandwidth(gpu)
    overhead = spec.num_layers * KERNELS_PER_BLOCK * LAUNCH_SECONDS * (1.5 if plan.grad_ckpt else 1.0)
    optimizer = 4 * (state.optimizer_state_bytes + state.gradient_bytes) / _bandwidth(gpu)
    terms = (TimeTerm("compute", compute, f"{flops:.3g} FLOP / ({_matmul_tflops(gpu, plan.compute_dtype):.0f} TFLOP/s x {MATMUL_EFFICIENCY})"),
             TimeTerm("memory", memory_s, "activation and loss traffic / bandwidth"),
             TimeTerm("overhead", overhead, f"{spec.num_layers} blocks x {KERNELS_PER_BLOCK} kernels x {LAUNCH_SECONDS * 1e6:.0f} us"))
    micro = compute + memory_s + overhead
    step = micro * plan.grad_accum + optimizer
    tokens = plan.batch_size * plan.seq_len
    per_gpu = tokens * plan.grad_accum / step
    bound = max(terms, key=lambda t: t.seconds).name
    peak = _matmul_tflops(gpu, plan.compute_dtype) * 1e12
    mfu = 6 * spec.total_params * tokens * plan.grad_accum / step / peak
    return TimeEstimate(step_seconds=micro, optimizer_step_seconds=step, tokens_per_second=per_gpu,
                        tokens_per_second_total=per_gpu * plan.n_gpus, bound=bound,
                        terms=terms + (TimeTerm("optimizer", optimizer, "update traffic / bandwidth"),),
                        flops_per_step=flops, mfu=mfu)
