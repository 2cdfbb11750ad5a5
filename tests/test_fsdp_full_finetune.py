"""FSDP full fine-tuning: the root unit's gradients, each unit's flat gradient copy, and FSDP's
parameter mixed precision (fsdp-mixed-bf16), as torch 2.13 / accelerate 1.16 run them.

The report that started this (issue 13 item 1): llama-3.1-8b full fine-tuning with FSDP on 4x RTX
4090 was called "fits" at 20.85 GiB reserved; the HF Trainer runs it with accelerate, which
holds the parameters in fp32 under bf16 mixed precision.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from napkin_gui.core.comm import link_traffic
from napkin_gui.core.estimate import estimate
from napkin_gui.core.memory import distributed
from napkin_gui.core.memory.model_state import model_state
from napkin_gui.core.memory.sharding import gpu_state
from napkin_gui.core.plan import Plan, plan_from_dict
from napkin_gui.core.time_model import plan_traffic

GIB = 2**30
REPORTED = Plan(model="llama-3.1-8b", method="full", precision="bf16", batch_size=1, seq_len=2048, grad_ckpt=True,
                gpu="rtx-4090", n_gpus=4, sharding="fsdp")


def row(est, phase: str) -> dict[str, int]:
    return dict(next(p for p in est.memory.timeline if p.phase == phase).by_component)


def test_lm_head_gradient_stays_unsharded_through_the_backward():
    """The root unit (embedding, norm, lm_head) is reduced last: lm_head's [V, h] gradient
    waits unsharded from the loss's backward on (old code: 1/4 of the embedding and lm_head
    gradients from the first backward row)."""
    est = estimate(REPORTED)
    spec = est.model
    lm_head_grad = spec.vocab_size * spec.hidden_size * 2
    first_backward = row(est, f"backward L{spec.num_layers}")
    state = model_state(spec, REPORTED)
    layer_shard = -(-state.per_layer_gradient_bytes[-1] // 4)
    assert first_backward["gradients"] == lm_head_grad + layer_shard


def test_root_backward_holds_its_pieces_and_their_flat_copy():
    """At the root's own backward (after block 1's): every layer's gradient shard, the
    embedding + lm_head gradients, their flat copy (split_with_sizes_backward's cat) and the
    reduce-scatter output shard: 7.65 GiB of gradients where old code counted 3.74."""
    est = estimate(REPORTED)
    state = model_state(est.model, REPORTED)
    layers = sum(-(-g // 4) for g in state.per_layer_gradient_bytes)
    root = state.head_gradient_bytes
    last = row(est, "backward L1")
    assert last["gradients"] == layers + 2 * root + -(-root // 4)
    assert est.memory.peak_phase == "backward L1"
    assert est.memory.peak_reserved_bytes > 22.5 * GIB   # old code: 20.85 GiB


def test_each_unit_is_copied_into_one_flat_gradient_before_its_reduce_scatter():
    """Two units awaiting / being produced + the current unit's flat copy + the output shard."""
    plan = Plan(model="llama-3.2-1b", method="full", sharding="fsdp", n_gpus=4, gpu="rtx-4090")
    state = model_state(estimate(plan).model, plan)
    unit = max(state.per_layer_gradient_bytes)
    assert gpu_state(state, plan).grad_bucket_bytes == 3 * unit + -(-unit // 4)


def test_lora_under_fsdp_has_no_root_gradients():
    """Nothing of the root trains under LoRA: no root gradients at all."""
    plan = replace(REPORTED, method="lora")
    state = model_state(estimate(plan).model, plan)
    assert gpu_state(state, plan).root_gradients == distributed.RootGradients(0, 0, 0)


def test_views_of_one_flat_parameter_get_their_gradient_only_after_the_last_view():
    """The torch behaviour the root model rests on, on CPU: parameters that are views of one
    flat tensor (FSDP1 FlatParamHandle._use_unsharded_views: split, then view) see the flat
    tensor's gradient only once every view's gradient exists, and it is a new tensor (a cat),
    not the views' gradients in place."""
    import torch
    vocab, hidden = 64, 16
    flat = torch.zeros(2 * vocab * hidden, requires_grad=True)
    torch.nn.init.normal_(flat.detach())
    emb_w, head_w = (v.view(vocab, hidden) for v in flat.split([vocab * hidden, vocab * hidden]))
    order: list[str] = []
    head_grads: list[torch.Tensor] = []
    head_w.register_hook(lambda g: (order.append("lm_head"), head_grads.append(g))[-1])
    emb_w.register_hook(lambda g: order.append("embedding"))
    flat.register_post_accumulate_grad_hook(lambda p: order.append("flat"))
    ids = torch.randint(0, vocab, (2, 8))
    logits = torch.nn.functional.embedding(ids, emb_w) @ head_w.t()
    torch.nn.functional.cross_entropy(logits.view(-1, vocab), ids.view(-1)).backward()
    assert order == ["lm_head", "embedding", "flat"]
    assert flat.grad.data_ptr() != head_grads[0].data_ptr()
    assert torch.equal(flat.grad[vocab * hidden:].view(vocab, hidden), head_grads[0])


def test_fsdp_mixed_precision_gathers_and_reduces_in_bf16():
    """fsdp-mixed-bf16: fp32 shards (twice the bf16 plan's), units gathered in bf16 (the bf16
    plan's gathered bytes + the bf16 copy of the shard being gathered), bf16 gradients awaiting
    their reduce-scatter, bf16 collectives (old code gathered and reduced fp32)."""
    bf16 = replace(REPORTED, precision="bf16")
    mixed = replace(REPORTED, precision="fsdp-mixed-bf16")
    spec = estimate(bf16).model
    s16, s32 = model_state(spec, bf16), model_state(spec, mixed)
    g16, g32 = gpu_state(s16, bf16), gpu_state(s32, mixed)
    assert g32.weights_bytes == 2 * g16.weights_bytes
    assert g32.optimizer_state_bytes == 2 * g16.optimizer_state_bytes
    unit_shard_bf16 = -(-max(s32.per_layer_weight_bytes) // 4) // 2
    assert g32.gather_bytes == g16.gather_bytes + unit_shard_bf16
    assert g32.grad_bucket_bytes == g16.grad_bucket_bytes
    assert g32.root_gradients == g16.root_gradients
    t16, t32 = plan_traffic(bf16, spec, s16), plan_traffic(mixed, spec, s32)
    assert (t32.forward_bytes, t32.backward_bytes) == pytest.approx((t16.forward_bytes, t16.backward_bytes))


def test_fsdp_mixed_precision_formulas_name_the_mechanism():
    est = estimate(replace(REPORTED, precision="fsdp-mixed-bf16"))
    formulas = {c.name: c.formula for c in est.memory.components}
    assert "MixedPrecision(param_dtype=bf16)" in formulas["weights"]
    assert "root unit" in formulas["gradients"]


def test_the_reported_run_is_flagged_and_its_accelerate_form_does_not_fit():
    """What the HF Trainer runs for the report (bf16=True under accelerate's FSDP) is
    fsdp-mixed-bf16: 16 B a parameter over 4 cards cannot fit 24 GB; the bf16 plan says so."""
    est = estimate(REPORTED)
    assert any("fsdp-mixed-bf16" in w and "accelerate" in w for w in est.warnings)
    assert not estimate(replace(REPORTED, precision="fsdp-mixed-bf16")).memory.fits
    torchtune = plan_from_dict({"model": "llama-3.1-8b", "method": "full", "framework": "torchtune",
                                "sharding": "fsdp", "n_gpus": 4, "gpu": "rtx-4090"})
    assert not any("accelerate" in w for w in estimate(torchtune).warnings)   # FSDP2, no upcast


def test_link_traffic_defaults_to_the_stored_bytes():
    plan = replace(REPORTED, precision="bf16")
    a = link_traffic(plan, 1000, 500, 250, 4)
    b = link_traffic(plan, 1000, 500, 250, 4, collective_weights_bytes=1000, collective_grad_bytes=500)
    assert a == b
    assert math.isclose(link_traffic(plan, 1000, 500, 250, 4, collective_weights_bytes=500).forward_bytes,
                        a.forward_bytes / 2)
