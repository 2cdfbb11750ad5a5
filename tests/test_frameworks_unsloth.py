"""framework: unsloth (core/frameworks/unsloth.py). Unsloth's kernels are Triton/CUDA only, so
these check the arithmetic of each mechanism against the lines of its source that the module
docstring cites (unsloth 2026.8.19, unsloth_zoo 2026.8.13), and that the estimate uses them."""
from __future__ import annotations

import dataclasses

import pytest

from napkin_gui.core.estimate import estimate
from napkin_gui.core.frameworks import unsloth
from napkin_gui.core.memory.activations import ActivationDtypes
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.model_spec import DecoderLayer, LinearShape
from napkin_gui.core.plan import plan_from_dict

H, I, HEADS, KV, D = 4096, 14336, 32, 8, 128
LLAMA = DecoderLayer(linears=(
    LinearShape("q_proj", H, HEADS * D), LinearShape("k_proj", H, KV * D), LinearShape("v_proj", H, KV * D),
    LinearShape("o_proj", HEADS * D, H), LinearShape("gate_proj", H, I), LinearShape("up_proj", H, I),
    LinearShape("down_proj", I, H)), mlp_width=I)
ALL = frozenset(range(7))
BF16 = ActivationDtypes(stream=2, linear_out=2, attn=2, base_trainable=False, autocast=False,
                        lora_rank=16, lora_dropout=False)


def _components(plan):
    return {c.name: c.bytes for c in plan.memory.components}


def test_fast_lora_paths_need_dropout_zero_whole_groups_and_no_bias():
    assert unsloth.fast_paths(LLAMA, ALL, dropout=False) == (True, True, True)
    assert unsloth.fast_paths(LLAMA, ALL, dropout=True) == (False, False, False)
    no_k = ALL - {1}
    assert unsloth.fast_paths(LLAMA, no_k, dropout=False) == (False, True, True)
    biased = dataclasses.replace(LLAMA, linears=tuple(
        dataclasses.replace(lin, bias=lin.name in unsloth.QKV) for lin in LLAMA.linears))   # Qwen2
    assert unsloth.fast_paths(biased, ALL, dropout=False) == (False, True, True)


def test_layer_saves_what_the_autograd_functions_save():
    per_token = unsloth.block_saved_bytes_per_token(LLAMA, H, HEADS, KV, D, False, BF16, ALL)
    norms = 2 * (H * 2 + 4)                   # Fast_RMS_Layernorm: X, fp32 r
    qkv = H * 2                               # LoRA_QKV: X only
    attn = (HEADS * D + 2 * KV * D + HEADS * D) * 2 + 4 * HEADS   # q, k, v (kv heads), out, lse
    o_copy = HEADS * D * 2                    # SDPA out.transpose(1, 2) reshaped for LoRA_W
    mlp = H * 2 + 2 * I * 2                   # LoRA_MLP: X, e, g
    assert per_token == norms + qkv + attn + o_copy + mlp == 118_920
    flash = unsloth.block_saved_bytes_per_token(LLAMA, H, HEADS, KV, D, True, BF16, ALL)
    assert per_token - flash == o_copy        # flash-attn's [b, s, h, d] output is reshaped as a view


def test_targets_outside_the_fused_groups_go_through_peft():
    qv = frozenset({0, 2})   # q_proj, v_proj: no LoRA_QKV (k has no adapter), HF MLP
    per_token = unsloth.block_saved_bytes_per_token(LLAMA, H, HEADS, KV, D, True, BF16, qv)
    peft = 2 * (H * 4 + 4 * 16)               # peft: each linear's own fp32 copy of x + x @ A (fp32 adapters)
    mlp = 3 * I * 2                           # silu(gate) * up: gate, act, up
    attn = (HEADS * D + 2 * KV * D + HEADS * D) * 2 + 4 * HEADS
    assert per_token == 2 * (H * 2 + 4) + attn + mlp + peft


def test_offloaded_checkpoint_keeps_the_last_input_and_two_buffers_on_the_card():
    tokens, layers = 2048, 32
    off = unsloth.offloaded_checkpoint(tokens, H, layers, 2, seq_len=2048)
    assert off.offloaded_layers == 31
    assert off.gpu_buffer_bytes == 2 * tokens * H * 2           # GPU_BUFFER + GPU_BUFFERS_B
    # 31 of the 200 pinned buffers resized to the layer input, 169 left at 128 Ki elements
    assert off.host_bytes == 31 * tokens * H * 2 + 169 * 128 * 1024 * 2
    assert unsloth.offloaded_checkpoint(tokens, H, layers, 2, seq_len=511) is None   # plain checkpointing
    # MINIMUM_SIZE: 2 MiB of bf16 = 1 Mi elements; 256 tokens x 4096 is exactly that, not above
    assert unsloth.offloaded_checkpoint(256, H, layers, 2, seq_len=512) is None
    assert unsloth.offloaded_checkpoint(257, H, layers, 2, seq_len=512) is not None


def test_fused_ce_chunks_follow_get_chunk_size():
    gib = 2**30
    # 8192 x 128256 fp32 logits = 3.91 GiB <= 4 GiB target: one chunk
    assert unsloth.fused_ce_chunks(8192, 128256) == 1
    # 16384 tokens: 7.83 GiB -> exact 1.96 -> rounded up to a multiple of 4
    assert unsloth.fused_ce_chunks(16384, 128256) == 4
    assert unsloth.fused_ce_chunks(16384, 128256, target_bytes=gib // 4) == 32
    loss = unsloth.fused_ce(16384, 128256, H, 2, 2, head_trainable=False, weight_bytes=2)
    rows = 4096
    assert loss.peak_bytes == 16384 * H * 2 + rows * 128256 * 4 + rows * H * 2
    assert loss.held_bytes == 0 and "4 chunks of 4,096 tokens" in loss.formula
    full = unsloth.fused_ce(16384, 128256, H, 2, 2, head_trainable=True, weight_bytes=2)
    assert full.peak_bytes - loss.peak_bytes == 2 * 128256 * H * 2   # grad_lm_head + a chunk's


def test_fast_cross_entropy_keeps_only_the_logits_and_logsumexp():
    small = unsloth.fast_cross_entropy(1000, 32000, 2)          # one logsumexp per row
    assert small.peak_bytes == 1000 * 32000 * 2 + 1000 * 4 + 1000 * 4
    big = unsloth.fast_cross_entropy(1000, 128256, 2)           # ceil(128256 / 65536) = 2 partials per row
    assert big.peak_bytes == 1000 * 128256 * 2 + 1000 * 4 * (2 + 1) + 1000 * 4


def test_estimate_uses_unsloth_modules_loss_and_offload():
    spec = resolve_model("llama-3.1-8b")
    tokens = 2048
    plan = plan_from_dict({"model": "llama-3.1-8b", "framework": "unsloth", "method": "qlora"})
    assert (plan.optimizer, plan.grad_ckpt, plan.activation_offload, plan.loss, plan.lora_dropout) == (
        "adamw-8bit", True, True, "fused-linear-ce", 0.0)
    off = estimate(plan)
    on_card = estimate(dataclasses.replace(plan, activation_offload=False))
    assert "UnslothFusedLoss" in off.memory.components[5].formula or any(
        "UnslothFusedLoss" in c.formula for c in off.memory.components)
    offload = unsloth.offloaded_checkpoint(tokens, spec.hidden_size, spec.num_layers, 2, 2048)
    assert off.memory.host_bytes == offload.host_bytes and on_card.memory.host_bytes == 0
    # at the loss every checkpointed input but the last is on the host
    a_off, a_on = _components(off)["activations"], _components(on_card)["activations"]
    assert a_on - a_off == (spec.num_layers - 1) * tokens * spec.hidden_size * 2
    # unsloth keeps norms and embeddings in bf16 (no peft kbit prep): transformers' QLoRA upcasts
    hf = estimate(dataclasses.replace(plan, framework="transformers", loss="standard", activation_offload=False))
    rest = spec.total_params - sum(n * sum(l.weight_params for l in layer.linears) for n, layer in spec.layer_groups)
    assert _components(hf)["weights"] - _components(off)["weights"] == rest * 2


def test_standard_loss_under_unsloth_is_its_triton_cross_entropy():
    plan = plan_from_dict({"model": "llama-3.2-1b", "framework": "unsloth", "loss": "standard"})
    formulas = {c.name: c.formula for c in estimate(plan).memory.components}
    assert formulas["logits_loss"].startswith("unsloth Fast_CrossEntropyLoss")


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_unsloth_needs_less_than_transformers_for_the_same_run(method):
    base = {"model": "llama-3.1-8b", "method": method, "grad_ckpt": True, "lora_dropout": 0.0,
            "optimizer": "adamw-8bit", "seq_len": 4096}
    hf = estimate(plan_from_dict(base)).memory.peak_reserved_bytes
    us = estimate(plan_from_dict({**base, "framework": "unsloth"})).memory.peak_reserved_bytes
    assert us < hf


def test_stack_defaults_are_unsloths_own():
    """core/stack_defaults.py's unsloth entry says what unsloth's defaults say (get_peft_model and
    studio's default.yaml, kept in frameworks/unsloth.py TRAINING_DEFAULTS)."""
    from napkin_gui.core.stack_defaults import framework_defaults
    src, ours = unsloth.TRAINING_DEFAULTS, framework_defaults("unsloth")
    assert src["gradient_checkpointing"] == "unsloth" and ours["grad_ckpt"] and ours["activation_offload"]
    assert {"adamw_8bit": "adamw-8bit"}[src["optim"]] == ours["optimizer"]
    assert (src["lora_r"], src["lora_alpha"], src["lora_dropout"]) == (
        ours["lora_r"], ours["lora_alpha"], ours["lora_dropout"])
    llama = resolve_model("llama-3.1-8b")
    assert set(src["target_modules"]) == {lin.name for _, layer in llama.layer_groups for lin in layer.linears}


def test_short_sequences_fall_back_to_plain_checkpointing():
    """apply_unsloth_gradient_checkpointing: below 512 tokens "unsloth" becomes True: inputs stay
    on the card and no host buffers exist."""
    short = estimate(plan_from_dict({"model": "llama-3.2-1b", "framework": "unsloth", "seq_len": 511}))
    assert short.memory.host_bytes == 0
    spec = resolve_model("llama-3.2-1b")
    assert _components(short)["activations"] >= spec.num_layers * 511 * spec.hidden_size * 2


# ---------------------------------------------------------------- step time: what the kernels remove

def _block(plan_fields: dict):
    from napkin_gui.core.step_work import block_work
    plan = plan_from_dict({"model": "llama-3.1-8b", "batch_size": 1, "seq_len": 4096, "lora_r": 16,
                           "lora_dropout": 0.0, "lora_targets": "all-linear", **plan_fields})
    spec = resolve_model(plan.model)
    return block_work(spec.layer_groups[0][1], spec, plan), spec, plan


def test_fast_kernels_remove_peft_and_eager_norm_traffic():
    """Per block, unsloth's forward moves exactly what peft's fp32 LoRA path, HF's eager RMSNorm,
    rotate_half RoPE and act(gate) * up moved, less what its own kernels move: matmul_lora's
    16-bit matmuls with the add in addmm_ (only the fp32 A and B are cast), fast_rms_layernorm
    and swiglu_fg_kernel one read and one write per element, fast_rope_embedding in place."""
    from napkin_gui.core import traffic as tr
    from napkin_gui.core.memory import liger
    (hf_f, hf_b), spec, plan = _block({"loss": "standard"})
    (un_f, un_b), _, _ = _block({"framework": "unsloth", "loss": "standard", "activation_offload": False,
                                 "optimizer": "adamw"})
    layer = spec.layer_groups[0][1]
    tokens, r, h = plan.batch_size * plan.seq_len, plan.lora_r, spec.hidden_size
    qk = (spec.num_heads + spec.num_kv_heads) * spec.head_dim
    peft = 0
    for lin in layer.linears:   # peft: fp32 copy of x, fp32 add and scaling, the cast back
        f_in, f_out = tr.lora_forward_bytes(2, 2, False)
        peft += tokens * (f_in * lin.d_in + f_out * lin.d_out)
    own = sum(6 * r * (lin.d_in + lin.d_out) for lin in layer.linears)
    kernels = tokens * (layer.norms * h * (tr.rms_norm_bytes(2) - liger.rms_norm_bytes(2))
                        + qk * (tr.rope_bytes(2) - liger.rope_bytes(2))
                        + layer.mlp_width * (tr.gated_mlp_bytes(2) - liger.glu_bytes(2)))
    assert hf_f.elementwise_bytes - un_f.elementwise_bytes == peft - own + kernels
    # the LoRA matmuls run in bf16, not fp32 (peft casts x to the fp32 adapters' dtype)
    assert {dtype for (dtype, _, _) in un_f.matmuls} == {"bf16"}
    assert "fp32" in {dtype for (dtype, _, _) in hf_f.matmuls}
    assert un_b.elementwise_bytes < hf_b.elementwise_bytes


def test_unsloth_step_is_faster_than_transformers_for_the_same_lora_run():
    base = {"model": "llama-3.1-8b", "batch_size": 1, "seq_len": 4096, "lora_r": 16, "lora_dropout": 0.0,
            "lora_targets": "all-linear", "grad_ckpt": True, "optimizer": "adamw", "gpu": "h100-80gb-sxm"}
    hf = estimate(plan_from_dict(base)).time.step_seconds
    un = estimate(plan_from_dict({**base, "framework": "unsloth", "loss": "standard"})).time.step_seconds
    assert un < 0.8 * hf
    # with dropout the fast paths are off: peft's Linear runs and the LoRA traffic is back
    dropped = estimate(plan_from_dict({**base, "framework": "unsloth", "loss": "standard", "lora_dropout": 0.05}))
    assert dropped.time.step_seconds > un


def test_offloaded_checkpointing_costs_its_copies_back_in_the_time_model():
    """UnslothCheckpointFunction: the layer inputs go to the host beside each layer's forward
    (hidden) and come back before each layer's recompute (exposed): unsloth_offload_*_overlap."""
    from napkin_gui.core.memory.timeline import unsloth_offload
    from napkin_gui.core.time_efficiency import time_efficiency
    base = {"model": "llama-3.1-8b", "batch_size": 1, "seq_len": 8192, "framework": "unsloth", "loss": "standard",
            "optimizer": "adamw", "gpu": "h100-80gb-sxm"}
    on, off = plan_from_dict(base), plan_from_dict({**base, "activation_offload": False})
    spec = resolve_model(on.model)
    layers = unsloth_offload(spec, on).offloaded_layers
    moved = layers * on.batch_size * on.seq_len * spec.hidden_size * 2
    eff = time_efficiency()
    rate = 63e9 * eff.host_link
    t_on, t_off = estimate(on).time, estimate(off).time
    pcie = {t.name: t.seconds for t in t_on.terms}["pcie"] - {t.name: t.seconds for t in t_off.terms}["pcie"]
    assert pcie == pytest.approx(2 * moved / rate, rel=1e-9)
    assert moved / rate <= t_on.step_seconds - t_off.step_seconds <= 1.1 * moved / rate
    assert "UnslothCheckpointFunction" in {t.name: t.formula for t in t_on.terms}["pcie"]
