"""The uncalibrated time model stays physical on every card of the catalog, not only the H100
it was fitted on: every fitted constant belongs to a mechanism (resources/time_efficiency.json
says where each comes from) and each card enters only through its datasheet rates.

Checked per card: a step is never faster than its roofline (every FLOP at the card's highest
datasheet matmul rate, every elementwise / dequantization byte at its datasheet bandwidth),
step time grows with the micro-batch, MFU stays below 1, and fp16 is faster than bf16 exactly
where the card lacks bf16 tensor cores (T4, V100: bf16 runs at the fp32 rate).
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from napkin_gui.core.estimate import estimate
from napkin_gui.core.gpu_catalog import gpu_catalog
from napkin_gui.core.memory.model_state import model_state
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import Plan
from napkin_gui.core.step_work import step_work

CARDS = gpu_catalog()
PLANS = {
    "lora-1b": Plan(model="llama-3.2-1b", method="lora", precision="bf16", batch_size=1, seq_len=1024),
    "full-1b": Plan(model="llama-3.2-1b", method="full", precision="bf16", batch_size=1, seq_len=1024, grad_ckpt=True),
    "qlora-8b": Plan(model="llama-3.1-8b", method="qlora", precision="bf16", batch_size=1, seq_len=2048, grad_ckpt=True),
}


def roofline_seconds(plan: Plan, gpu) -> float:
    """The least time a micro-batch can take on the card's datasheet: FLOPs at the highest
    matmul peak, or the bytes it must move at the full memory bandwidth, whichever is longer."""
    spec = resolve_model(plan.model)
    work = step_work(spec, plan, model_state(spec, plan).trainable_params)
    peak = max(gpu.bf16_tflops, gpu.fp16_tflops, gpu.fp32_tflops) * 1e12
    phases = (work.forward, work.backward)
    nbytes = sum(p.elementwise_bytes + p.dequant_bytes for p in phases)
    return max(work.executed_flops / peak, nbytes / (gpu.memory_bandwidth_gbps * 1e9))


@pytest.mark.parametrize("name", PLANS)
@pytest.mark.parametrize("gpu", CARDS, ids=[g.id for g in CARDS])
def test_step_is_physical_on_every_card(gpu, name):
    plan = replace(PLANS[name], gpu=gpu.id)
    times = [estimate(replace(plan, batch_size=bs)).time for bs in (1, 2, 4)]
    for bs, t in zip((1, 2, 4), times):
        assert t.step_seconds >= roofline_seconds(replace(plan, batch_size=bs), gpu), (bs, t.step_seconds)
        assert 0 < t.mfu < 1
    steps = [t.step_seconds for t in times]
    assert steps[0] < steps[1] < steps[2], steps          # more tokens never take less time
    per_token = [s / bs for s, bs in zip(steps, (1, 2, 4))]
    assert per_token[0] >= per_token[1] >= per_token[2]   # fixed costs amortize, nothing else falls


@pytest.mark.parametrize("gpu", CARDS, ids=[g.id for g in CARDS])
def test_fp16_is_faster_than_bf16_only_without_bf16_tensor_cores(gpu):
    """Full fine-tuning of a 1B model at 4k tokens is matmul-bound on every card."""
    plan = Plan(model="llama-3.2-1b", method="full", precision="bf16", batch_size=4, seq_len=1024,
                grad_ckpt=True, gpu=gpu.id)
    bf16 = estimate(plan).time.step_seconds
    fp16 = estimate(replace(plan, precision="fp16")).time.step_seconds
    if gpu.fp16_tflops > 1.5 * gpu.bf16_tflops:   # Turing / Volta: bf16 emulated at the fp32 rate
        assert fp16 < bf16 / 1.5, (fp16, bf16)
    else:
        assert fp16 == pytest.approx(bf16, rel=0.02)
