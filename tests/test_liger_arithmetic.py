"""Liger kernels (core/memory/liger.py) on real model configs: bytes saved per block, the
backward's working set and the time model's traffic and launches, from Liger 0.8.5's source."""
from __future__ import annotations

from dataclasses import replace

from napkin_gui.core.estimate import estimate
from napkin_gui.core.memory import liger
from napkin_gui.core.memory.timeline import block_memories
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import Plan
from napkin_gui.core.step_work import step_work

PLAN = Plan(model="llama-3.1-8b", method="lora", batch_size=2, seq_len=2048)


def test_llama_block_saves_x_and_rstd_per_norm_and_gate_up_in_the_mlp():
    """llama-3.1-8b bf16 LoRA, per token and block: two norms save X (2 B) + rstd (4 B) instead
    of the fp32 x (4 B), and the MLP gate + up instead of gate, act(gate), up:
    2 x (4096 x 4 - 4096 x 2 - 4) + 14336 x 2 = 45,048 B less."""
    spec = resolve_model("llama-3.1-8b")
    tokens = PLAN.batch_size * PLAN.seq_len
    eager = block_memories(spec, PLAN)[0].saved_bytes
    fused = block_memories(spec, replace(PLAN, liger=True))[0].saved_bytes
    assert eager - fused == 45_048 * tokens


def test_liger_backward_allocates_one_mlp_gradient():
    spec = resolve_model("llama-3.1-8b")
    tokens = PLAN.batch_size * PLAN.seq_len
    eager = block_memories(spec, PLAN)[0].backward_work_bytes
    fused = block_memories(spec, replace(PLAN, liger=True))[0].backward_work_bytes
    assert eager - fused == tokens * 14336 * 2


def test_models_liger_does_not_patch_are_unchanged():
    """gpt2 has no apply_liger_kernel_to_gpt2 (MODEL_TYPE_TO_APPLY_LIGER_FN): nothing changes."""
    plan = Plan(model="gpt2", method="lora", batch_size=2, seq_len=512)
    spec = resolve_model("gpt2")
    assert liger.liger_patch(replace(plan, liger=True), spec) is None
    assert block_memories(spec, plan) == block_memories(spec, replace(plan, liger=True))


def test_deepseek_keeps_its_rope():
    assert liger.LIGER_PATCHES["deepseek_v3"].rope is False
    assert liger.LIGER_PATCHES["gemma2"] == liger.LigerPatch(rope=True, rms_norm=True, glu=True)


def test_fused_kernels_move_fewer_bytes_and_launch_fewer_kernels():
    """Per block: each RMSNorm one launch reading X and writing Y (4 B; eager: 8 ops, 36 B with the casts to and from
    fp32), RoPE one in-place kernel (eager: 10), SwiGLU one kernel (eager: silu, mul)."""
    spec = resolve_model("llama-3.1-8b")
    eager = step_work(spec, PLAN, 0)
    fused = step_work(spec, replace(PLAN, liger=True), 0)
    tokens = PLAN.batch_size * PLAN.seq_len
    per_block = (2 * 4096 * (36 - 4) + (32 + 8) * 128 * (20 - 4) + 14336 * (10 - 6)) * tokens
    final_norm = 4096 * (36 - 4) * tokens
    assert eager.forward.elementwise_bytes - fused.forward.elementwise_bytes == 32 * per_block + final_norm
    assert eager.forward.launches - fused.forward.launches == 32 * (2 * 7 + 9 + 1)


def test_liger_is_faster_and_smaller_on_an_h100():
    base, fused = estimate(PLAN), estimate(replace(PLAN, liger=True, loss="fused-linear-ce"))
    assert fused.time.step_seconds < base.time.step_seconds
    assert fused.memory.peak_reserved_bytes < base.memory.peak_reserved_bytes
    assert "LigerRMSNorm saves X + fp32 RSTD" in dict((c.name, c.formula) for c in fused.memory.components)[
        "activations"]
