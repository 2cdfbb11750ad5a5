"""Each memory mechanism against a count by hand, on small made-up shapes (not the measured rows)."""
import dataclasses
import math

import pytest

from napkin_gui.core.dtypes import tensor_bytes
from napkin_gui.core.gpu_spec import GpuSpec
from napkin_gui.core.memory import activations as act
from napkin_gui.core.memory import lora, optimizer, weights
from napkin_gui.core.memory.logits import logits_loss_peak_bytes
from napkin_gui.core.memory.model_state import model_state
from napkin_gui.core.memory.summary import memory_estimate
from napkin_gui.core.model_spec import DecoderLayer, LinearShape, ModelSpec
from napkin_gui.core.plan import Plan
from napkin_gui.core.result import ALLOCATED_COMPONENTS

MIB = 2**20


def llama_like(h=256, ff=688, layers=3, heads=8, kv=2, vocab=1000, tied=False, bias=False):
    hd = h // heads
    lins = (LinearShape("q_proj", h, heads * hd, bias), LinearShape("k_proj", h, kv * hd, bias),
            LinearShape("v_proj", h, kv * hd, bias), LinearShape("o_proj", heads * hd, h),
            LinearShape("gate_proj", h, ff), LinearShape("up_proj", h, ff), LinearShape("down_proj", ff, h))
    layer = DecoderLayer(lins, ff, True, 2 * h, 2)
    return ModelSpec("toy", "llama", h, heads, kv, hd, vocab, tied, ((layers, layer),), extra_params=h)


GPU = GpuSpec("toy-gpu", "Toy GPU", "nvidia", "hopper", 80 * 2**30, 800, 800, 50, 400, 1600, 3000,
              "pcie5x16", 64, "nvlink4", 900, 2.0, cuda_context_bytes=1000 * MIB, cublas_workspace_bytes=64 * MIB)


def test_tensor_bytes_rounds_up_sub_byte_dtypes():
    assert tensor_bytes(3, "nf4") == 2
    assert tensor_bytes(10, "bf16") == 20
    assert tensor_bytes(1, "fp32") == 4


def test_parameter_count_by_hand():
    spec = llama_like()
    h, ff, hd = 256, 688, 32
    per_layer = h * h + 2 * h * 2 * hd + h * h + 3 * h * ff + 2 * h
    assert spec.total_params == 3 * per_layer + 2 * 1000 * h + h
    assert llama_like(tied=True).total_params == spec.total_params - 1000 * h


def test_nf4_bytes_codes_absmax_and_nested_absmax():
    params = 64 * 256 * 10
    blocks = params // 64
    assert weights.nf4_weight_bytes(params, 1, double_quant=False) == params // 2 + 4 * blocks + weights.NF4_CODE_BYTES_PER_TENSOR
    assert weights.nf4_weight_bytes(params, 1, double_quant=True) == params // 2 + blocks + 4 * (blocks // 256) + weights.NF4_CODE_BYTES_PER_TENSOR


def test_lora_params_per_target_and_expert():
    lins = (LinearShape("q_proj", 100, 100), LinearShape("v_proj", 100, 20),
            LinearShape("w1", 100, 300, count=8, active=2))
    layer = DecoderLayer(lins, 600)
    assert lora.lora_adapter_params(lora.lora_target_linears(layer, ("q_proj", "v_proj")), 4) == 4 * 200 + 4 * 120
    assert lora.lora_adapter_params(lora.lora_target_linears(layer, "all-linear"), 4) == 4 * 200 + 4 * 120 + 8 * 4 * (100 + 600)
    assert lora.lora_adapter_bytes(10) == 40


def test_optimizer_states():
    assert optimizer.adamw_state_bytes(1000, "bf16") == 4000
    assert optimizer.adamw_foreach_temp_bytes(1000, "fp32") == 4000
    # small tensors keep fp32 states, big ones uint8 + an fp32 absmax per 256 + qmap
    assert optimizer.adam8bit_state_bytes([100]) == 800
    assert optimizer.adam8bit_state_bytes([4096 * 4]) == 2 * (4096 * 4 + 4 * 64 + 1024)
    assert optimizer.sgd_state_bytes(10, "fp32") == 0
    assert optimizer.adafactor_state_bytes([(30, 40), (7,)], "fp32") == 4 * (70 + 7)


def lora_dtypes(stream=2, lo=2, attn=2, r=16, dropout=True):
    return act.ActivationDtypes(stream, lo, attn, base_trainable=False, autocast=False, lora_rank=r, lora_dropout=dropout)


def test_lora_block_saved_bytes_by_hand():
    """bf16 base, fp32 adapters, flash attention with native GQA (the sdpa default)."""
    spec = llama_like()
    layer = spec.layer_groups[0][1]
    h, ff, r, q, kv = 256, 688, 16, 256, 64
    dt = lora_dtypes(r=r)
    got = act.layer_saved_bytes_per_token(layer, h, 8, 2, 32, 32, "flash", True, dt, frozenset(range(7)))
    norms = 2 * 4 * h                                   # fp32 copy of x in each RMSNorm
    lora_in = 6 * (5 * h + 4 * r) + (5 * ff + 4 * r)    # q k v o gate up, down: mask + fp32 dropout out + A out
    attention = 2 * (q + 2 * kv + q) + 4 * 8           # q, k, v, out in bf16 + fp32 logsumexp
    mlp = 3 * 2 * ff                                    # gate, act(gate), up
    assert got == norms + lora_in + attention + mlp


def test_full_finetune_block_saves_linear_inputs():
    spec = llama_like()
    layer = spec.layer_groups[0][1]
    h, ff = 256, 688
    dt = act.ActivationDtypes(2, 2, 2, base_trainable=True, autocast=False)
    got = act.layer_saved_bytes_per_token(layer, h, 8, 2, 32, 32, "flash", True, dt, frozenset())
    norms = 2 * (4 + 2) * h
    inputs = 2 * h + 2 * h + 2 * h + 2 * ff             # attn in, attn out, mlp in, down in
    attention = 2 * (256 + 128 + 256) + 32
    assert got == norms + inputs + attention + 3 * 2 * ff


def test_eager_scores_grow_with_seq_squared():
    dt = lora_dtypes()
    assert act.attention_scores_bytes(2, 8, 128, "flash", dt) == 0
    assert act.attention_scores_bytes(2, 8, 128, "eager", dt) == 2 * 8 * 128 * 128 * (4 + 2)
    assert act.attention_scores_bytes(2, 8, 256, "eager", dt) == 4 * act.attention_scores_bytes(2, 8, 128, "eager", dt)
    assert act.attention_scores_bytes(1, 8, 128, "math", lora_dtypes(4, 4, 4)) == 8 * 128 * 128 * 4


def test_logits_loss_bytes():
    assert logits_loss_peak_bytes(10, 100, 2) == 10 * 100 * 14
    assert logits_loss_peak_bytes(10, 100, 4) == 10 * 100 * 16


def estimate_toy(**kw):
    spec = llama_like()
    plan = Plan(model="toy", gpu="toy-gpu", **kw)
    return memory_estimate(plan, spec, GPU, model_state(spec, plan)), plan, spec


def test_peak_is_the_timeline_maximum_and_components_add_up():
    mem, _, spec = estimate_toy(method="full", batch_size=2, seq_len=128)
    assert mem.peak_allocated_bytes == max(p.allocated_bytes for p in mem.timeline)
    at_peak = {c.name: c.bytes for c in mem.components}
    assert sum(at_peak[n] for n in ALLOCATED_COMPONENTS) == mem.peak_allocated_bytes
    assert mem.peak_reserved_bytes == mem.peak_allocated_bytes + at_peak["allocator_slack"]
    assert mem.device_used_bytes == mem.peak_reserved_bytes + GPU.cuda_context_bytes
    phases = [p.phase for p in mem.timeline]
    assert phases[0] == "weights loaded" and phases[-1] == "after zero_grad"
    assert phases.count("logits & loss") == 1
    assert len(phases) == 2 * spec.num_layers + 4
    assert mem.peak_phase in phases


def test_full_adamw_state_and_temporaries():
    mem, plan, spec = estimate_toy(method="full", precision="bf16", batch_size=1, seq_len=8)
    n = spec.total_params
    opt = next(p for p in mem.timeline if p.phase == "optimizer step")
    parts = dict(opt.by_component)
    assert parts["weights"] == 2 * n and parts["gradients"] == 2 * n and parts["optimizer_states"] == 4 * n
    assert parts["temporaries"] == 2 * n + GPU.cublas_workspace_bytes
    assert mem.peak_phase == "optimizer step"


def test_mechanisms_move_memory_the_right_way():
    base, *_ = estimate_toy(batch_size=4, seq_len=512)
    ckpt, *_ = estimate_toy(batch_size=4, seq_len=512, grad_ckpt=True)
    bigger, *_ = estimate_toy(batch_size=8, seq_len=512)
    eager, *_ = estimate_toy(batch_size=4, seq_len=512, attention="eager")
    qlora, *_ = estimate_toy(method="qlora", batch_size=4, seq_len=512)
    full, *_ = estimate_toy(method="full", batch_size=1, seq_len=16)
    short, *_ = estimate_toy(batch_size=1, seq_len=16)
    assert ckpt.peak_allocated_bytes < base.peak_allocated_bytes < bigger.peak_allocated_bytes
    assert eager.peak_allocated_bytes > base.peak_allocated_bytes
    assert qlora.component("weights").bytes < base.component("weights").bytes
    assert full.peak_allocated_bytes > short.peak_allocated_bytes  # state-bound: full keeps grads + states


def test_lora_saves_more_activations_than_full_on_narrow_models():
    """peft's fp32 dropout copy per targeted linear (5 B per input element) outweighs the
    shared bf16 input that full fine-tuning saves (the H100 runs show the same on llama-3.2-1b)."""
    lora_mem, *_ = estimate_toy(batch_size=4, seq_len=512)
    full_mem, *_ = estimate_toy(method="full", batch_size=4, seq_len=512)
    loss = lambda m: next(p for p in m.timeline if p.phase == "logits & loss")
    assert dict(loss(lora_mem).by_component)["activations"] > dict(loss(full_mem).by_component)["activations"]


def test_sharding_divides_state_and_offload_moves_it_to_host():
    one, *_ = estimate_toy(method="full", batch_size=1, seq_len=64)
    z3, *_ = estimate_toy(method="full", batch_size=1, seq_len=64, n_gpus=4, sharding="zero3")
    off, *_ = estimate_toy(method="full", batch_size=1, seq_len=64, n_gpus=4, sharding="zero3", offload="optimizer")
    w1 = dict(one.timeline[0].by_component)["weights"]
    w4 = dict(z3.timeline[0].by_component)["weights"]
    assert w4 == math.ceil(w1 / 4)
    assert z3.peak_allocated_bytes < one.peak_allocated_bytes
    assert off.host_bytes > 0 and off.peak_allocated_bytes < z3.peak_allocated_bytes


def test_paged_optimizer_states_are_managed_not_allocated():
    adam8, *_ = estimate_toy(method="full", optimizer="adamw-8bit", batch_size=1, seq_len=64)
    paged, *_ = estimate_toy(method="full", optimizer="paged-adamw-8bit", batch_size=1, seq_len=64)
    assert paged.managed_bytes == dict(adam8.timeline[0].by_component)["optimizer_states"]
    assert dict(paged.timeline[0].by_component)["optimizer_states"] == 0
    assert paged.device_used_bytes - paged.peak_reserved_bytes == GPU.cuda_context_bytes + paged.managed_bytes


def test_grad_accumulation_keeps_gradients_through_the_forward():
    one, *_ = estimate_toy(method="full", batch_size=1, seq_len=64)
    acc, *_ = estimate_toy(method="full", batch_size=1, seq_len=64, grad_accum=4)
    assert dict(acc.timeline[1].by_component)["gradients"] > 0
    assert dict(one.timeline[1].by_component)["gradients"] == 0


def test_fits_against_capacity():
    small = dataclasses.replace(GPU, memory_bytes=2 * 2**30)
    spec = llama_like()
    plan = Plan(model="toy", gpu="toy-gpu", batch_size=64, seq_len=4096)
    mem = memory_estimate(plan, spec, small, model_state(spec, plan))
    assert not mem.fits and mem.headroom_bytes < 0


def test_activation_offload_moves_block_inputs_to_pinned_host_ram():
    """torchtune's OffloadActivations: the device figure falls by what it copies, the host RAM
    figure holds the copies, and the activations formula names the module."""
    from napkin_gui.core.estimate import estimate
    from napkin_gui.core.memory.timeline import activation_offload, block_memories
    from napkin_gui.core.model_source import resolve_model
    plan = Plan(model="llama-3.1-8b", batch_size=1, seq_len=8192, grad_ckpt=True, framework="torchtune",
                loss="chunked-ce", lora_dropout=0.0, gpu="h100-80gb-sxm")
    on = dataclasses.replace(plan, activation_offload=True)
    spec = resolve_model(plan.model)
    moved = activation_offload(spec, on)
    assert activation_offload(spec, plan) is None
    tokens = plan.batch_size * plan.seq_len
    block_input = tokens * spec.hidden_size * 2
    # 32 block inputs + the final norm's fp32 x (saved by pow and by mul: two copies) and rstd twice
    assert moved.offloaded_tensors == spec.num_layers + 4
    assert moved.host_bytes == spec.num_layers * block_input + 2 * tokens * spec.hidden_size * 4 + 2 * tokens * 4
    # the last block's input is still in the stash (5 ids) at the loss; every other one left the card
    kept_on, kept_off = (sum(b.kept_bytes for b in block_memories(spec, p)) for p in (on, plan))
    assert (kept_off, kept_on) == (spec.num_layers * block_input, block_input)
    before, after = estimate(plan).memory, estimate(on).memory
    acts = {c.name: c for c in after.components}["activations"]
    assert acts.formula.startswith("torchtune OffloadActivations, 36 tensors >= 1024 B")
    assert after.host_bytes == before.host_bytes + moved.host_bytes
    assert before.peak_allocated_bytes - after.peak_allocated_bytes == kept_off - kept_on
