"""Per-GPU memory over the GPU count: what each rank holds beyond its shard.

Removing GPUs never lowers what each one holds: the shards grow, and the layers FSDP / ZeRO-3
bring onto the card (one unit at a time, the root unit from its forward to its backward) are
there whatever the count, CPU offload on one GPU included (issue 12 item 1).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate
from napkin_gui.core.memory.model_state import model_state
from napkin_gui.core.plan import Plan, check_combination, plan_from_dict

GIB = 2**30
EXAMPLE = Path(__file__).parents[1] / "resources" / "examples" / "llama-3.1-70b-qlora-2x4090.napkin.json"


def peer_only_bytes(est, n: int) -> int:
    """What a rank holds only because it has peers, under offloaded parameters: the staging
    copy of the next unit's shard (the all-gather's input) and the reduce-scatter's output
    shard, each 1/n of the largest unit, and under FSDP the root unit's reduce-scatter output
    (1/n of its gradients, made while they are all alive at the end of the backward)."""
    state = model_state(est.model, est.plan)
    layer, grads = max(state.per_layer_weight_bytes), max(state.per_layer_gradient_bytes)
    root = -(-state.head_gradient_bytes // n) if est.plan.sharding == "fsdp" else 0
    return -(-layer // n) + -(-grads // n) + root


def example_plan(**changes) -> Plan:
    return replace(plan_from_dict(json.loads(EXAMPLE.read_text())), **changes)


def test_fsdp_offload_on_one_gpu_keeps_the_gathered_layers_on_the_card():
    """The shipped 70B QLoRA example with n_gpus 1: FSDP clamps to NO_SHARD and still copies
    each offloaded unit to the device, twice at once (the prefetched next one), and keeps the
    root unit (embeddings, norm, lm_head) from its forward to its backward."""
    one = estimate(example_plan(n_gpus=1))
    two = estimate(example_plan(n_gpus=2))
    state = model_state(one.model, one.plan)
    layer = max(state.per_layer_weight_bytes)
    root = state.weights_bytes - sum(state.per_layer_weight_bytes)
    temporaries = dict((c.name, c.bytes) for c in one.memory.components)["temporaries"]
    assert temporaries >= 2 * layer + root
    assert root > 3 * GIB and layer > 0.3 * GIB   # bf16 embeddings + lm_head; one NF4 decoder layer
    assert one.memory.peak_reserved_bytes >= two.memory.peak_reserved_bytes - peer_only_bytes(one, 2)


def test_example_is_not_advised_onto_a_10gb_card():
    """What the bug produced: 'cheapest card that fits: RTX 3080 10GB' for a 70B model."""
    plan = example_plan(n_gpus=1, gpu="rtx-3080-10gb")
    assert not estimate(plan).memory.fits


PLANS = [
    # (model, method, precision, optimizer, batch, seq)
    ("llama-3.2-1b", "full", "bf16", "adamw", 1, 1024),
    ("llama-3.2-1b", "lora", "bf16", "adamw", 2, 2048),
    ("llama-3.1-8b", "full", "mixed-bf16", "adamw", 1, 2048),
    ("llama-3.1-8b", "qlora", "bf16", "adamw", 1, 2048),
    ("gemma-2-2b", "full", "bf16", "adamw-8bit", 1, 1024),
]
SHARDINGS = [(s, o) for s in ("fsdp", "zero3", "zero2") for o in ("none", "optimizer", "optimizer+params")]


@pytest.mark.parametrize("sharding,offload", SHARDINGS, ids=[f"{s}-{o}" for s, o in SHARDINGS])
@pytest.mark.parametrize("row", PLANS, ids=[f"{r[0]}-{r[1]}-{r[2]}" for r in PLANS])
def test_per_gpu_memory_never_falls_as_gpus_are_removed(row, sharding, offload):
    model, method, precision, optimizer, batch, seq = row
    base = Plan(model=model, method=method, precision=precision, optimizer=optimizer, batch_size=batch,
                seq_len=seq, grad_ckpt=True, gpu="rtx-4090", sharding=sharding, offload=offload)
    try:
        check_combination(base)
    except PlanError:
        pytest.skip("combination not allowed")
    # Without offload FSDP on one GPU is NO_SHARD (no gathered copies), while two ranks each
    # hold half the weights *and* the gathered root unit: the fp32 embeddings + lm_head of
    # QLoRA with kbit_prep can outweigh the halved shard (test_two_ranks_can_hold_more_than_
    # no_shard_on_one). With parameters on the host (or unsharded, zero2) one GPU holds all a
    # rank of two holds but the 1/n shards that exist only between peers (peer_only_bytes).
    counts = (2, 3, 4, 8)
    reserved = [estimate(replace(base, n_gpus=n)).memory.peak_reserved_bytes for n in counts]
    assert all(a >= b for a, b in zip(reserved, reserved[1:])), [round(r / GIB, 3) for r in reserved]
    if offload == "optimizer+params" or sharding == "zero2":
        one = estimate(base)
        slack = peer_only_bytes(one, 2) if offload == "optimizer+params" else 0
        assert one.memory.peak_reserved_bytes >= reserved[0] - slack, (one.memory.peak_reserved_bytes / GIB,
                                                                        reserved[0] / GIB)


def test_two_ranks_can_hold_more_than_no_shard_on_one():
    """Llama-3.1-8B QLoRA, prepare_model_for_kbit_training (fp32 embeddings + lm_head, 4 GiB):
    each of two ranks holds half the weights plus the whole gathered root unit, which FSDP does
    not free after the root's forward (_runtime_utils._post_forward_reshard), and two layers."""
    plan = Plan(model="llama-3.1-8b", method="qlora", batch_size=1, seq_len=2048, grad_ckpt=True,
                gpu="rtx-4090", sharding="fsdp")
    one, two = estimate(plan), estimate(replace(plan, n_gpus=2))
    state = model_state(one.model, one.plan)
    root = state.weights_bytes - sum(state.per_layer_weight_bytes)
    held = lambda est: dict((c.name, c.bytes) for c in est.memory.components)
    assert held(one)["temporaries"] < held(two)["temporaries"] - root
    assert two.memory.peak_allocated_bytes > one.memory.peak_allocated_bytes


def test_nccl_buffers_from_the_nccl_constants():
    """NCCL src/init.cc: Simple 4 MiB + LL128 120x640x8x8 B + LL 8x512x8x16 B per channel,
    in 2 MiB cuMem granules = 10 MiB; 16 ring channels over NVLink, 2 over PCIe; none alone."""
    from napkin_gui.core.gpu_catalog import find_gpu
    from napkin_gui.core.memory import distributed
    assert distributed.nccl_channel_bytes() == 10 * 2**20
    assert distributed.nccl_buffer_bytes(find_gpu("h100-80gb-sxm"), 8) == 160 * 2**20
    assert distributed.nccl_buffer_bytes(find_gpu("rtx-4090"), 2) == 20 * 2**20
    assert distributed.nccl_buffer_bytes(find_gpu("rtx-4090"), 1) == 0
    plan = Plan(model="llama-3.2-1b", gpu="h100-80gb-sxm", n_gpus=8, sharding="fsdp")
    est = estimate(plan)
    context = dict((c.name, c.bytes) for c in est.memory.components)["cuda_context"]
    assert context == find_gpu("h100-80gb-sxm").cuda_context_bytes + 160 * 2**20
    assert est.memory.device_used_bytes == est.memory.peak_reserved_bytes + context + est.memory.managed_bytes


def test_fsdp2_keeps_three_units_fsdp1_two():
    """torchtune shards with fully_shard (FSDP2): the current unit's parameters, its retained
    all-gather output and the next unit's; FSDP1's limiter allows two flat parameters."""
    from types import SimpleNamespace
    from napkin_gui.core.memory import distributed
    fsdp2 = SimpleNamespace(sharding="fsdp", n_gpus=4, offload="none", framework="torchtune")
    fsdp1 = SimpleNamespace(sharding="fsdp", n_gpus=4, offload="none", framework="litgpt")
    assert distributed.fsdp_version(fsdp2) == 2 and distributed.fsdp_version(fsdp1) == 1
    assert distributed.gathered_bytes(fsdp2, 100, 7) == 3 * 100 + 7
    assert distributed.gathered_bytes(fsdp1, 100, 7) == 2 * 100 + 7
    offloaded = SimpleNamespace(sharding="fsdp", n_gpus=4, offload="optimizer+params", framework="transformers")
    assert distributed.gathered_bytes(offloaded, 100, 7) == 2 * 100 + 7 + 25   # + the staged shard
    # two units' unsharded gradients + the current unit's flat copy + the reduce-scatter output shard
    assert distributed.reduce_buffer_bytes(fsdp1, 100, 999) == 3 * 100 + 25


def test_ddp_keeps_a_bucket_copy_of_every_gradient():
    """DDP (gradient_as_bucket_view=False, torch's and accelerate's default): the Reducer's
    buckets hold as many bytes as the gradients, on every rank, the whole run."""
    plan = Plan(model="llama-3.2-1b", method="full", precision="bf16", batch_size=1, seq_len=512,
                gpu="h100-80gb-sxm")
    one, two = estimate(plan), estimate(replace(plan, n_gpus=2))
    state = model_state(one.model, one.plan)
    first = lambda est: dict(est.memory.timeline[0].by_component)["temporaries"]
    assert first(two) - first(one) == state.gradient_bytes
