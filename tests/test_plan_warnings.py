"""Issue 12 item 2: hardware-aware warnings in the estimate's `warnings` (plan-v1 output).

Before: `warnings` was empty for bf16 on a T4 / V100, flash attention on a pre-Ampere card,
seq_len past max_position_embeddings and zero3 / fsdp on one GPU. The rules read the card's
fields, so a card is tested through them, not its name.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from napkin_gui.core.advise import advise
from napkin_gui.core.estimate import estimate
from napkin_gui.core.gpu_catalog import find_gpu, gpu_catalog
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import Plan
from napkin_gui.core.plan_warnings import (bf16_without_tensor_cores, flash_before_ampere, plan_warnings,
                                           sequence_beyond_positions, sharding_on_one_gpu)
from napkin_gui.core.result_json import estimate_to_dict

PLAN = Plan(model="llama-3.2-1b", gpu="h100-80gb-sxm")


def warnings_of(**changes):
    return estimate(dataclasses.replace(PLAN, **changes)).warnings


@pytest.mark.parametrize("gpu", ["t4", "v100-16gb-sxm2", "v100-32gb-pcie"])
@pytest.mark.parametrize("precision, advised", [("bf16", "fp16"), ("mixed-bf16", "mixed-fp16")])
def test_bf16_on_cards_without_bf16_tensor_cores_advises_fp16(gpu, precision, advised):
    found = [w for w in warnings_of(gpu=gpu, precision=precision) if w.startswith("precision:")]
    assert len(found) == 1 and f"use precision {advised}" in found[0], found
    # napkin's own figures agree: the fp16 plan is faster on that card
    bf16 = estimate(dataclasses.replace(PLAN, gpu=gpu, precision=precision))
    fp16 = estimate(dataclasses.replace(PLAN, gpu=gpu, precision=advised))
    assert fp16.time.step_seconds < bf16.time.step_seconds


def test_bf16_warning_follows_the_card_fields_not_the_name():
    h100 = find_gpu("h100-80gb-sxm")
    plan = dataclasses.replace(PLAN, precision="bf16")
    assert bf16_without_tensor_cores(plan, h100) is None
    slow_bf16 = dataclasses.replace(h100, bf16_tflops=h100.fp16_tflops / 8)
    assert bf16_without_tensor_cores(plan, slow_bf16) is not None
    t4 = find_gpu("t4")
    assert bf16_without_tensor_cores(plan, dataclasses.replace(t4, bf16_tflops=t4.fp16_tflops)) is None
    # the whole catalog: exactly the cards whose bf16 rate is below the fp16 rate
    flagged = {g.id for g in gpu_catalog() if bf16_without_tensor_cores(plan, g)}
    assert flagged == {g.id for g in gpu_catalog() if g.bf16_tflops < g.fp16_tflops}
    assert "t4" in flagged and "a100-80gb-sxm" not in flagged


def test_fp16_and_fp32_plans_get_no_precision_warning():
    for precision in ("fp16", "mixed-fp16", "fp32"):
        assert not [w for w in warnings_of(gpu="t4", precision=precision) if w.startswith("precision:")]


def test_advice_offers_fp16_on_a_t4():
    items = advise(dataclasses.replace(PLAN, gpu="t4"))
    fp16 = [a for a in items if a.plan.precision == "fp16"]
    assert fp16 and fp16[0].time_delta_fraction < 0


def test_flash_attention_before_ampere():
    for gpu in ("t4", "v100-32gb-sxm2"):
        found = [w for w in warnings_of(gpu=gpu, attention="flash", precision="fp16") if w.startswith("attention:")]
        assert len(found) == 1 and "8.0" in found[0] and "sdpa" in found[0]
    for gpu in ("a100-80gb-sxm", "rtx-3090", "h100-80gb-sxm", "rtx-5090", "mi300x"):
        assert not [w for w in warnings_of(gpu=gpu, attention="flash") if w.startswith("attention:")], gpu
    assert not [w for w in warnings_of(gpu="t4", attention="sdpa", precision="fp16") if w.startswith("attention:")]
    a100 = find_gpu("a100-80gb-sxm")
    plan = dataclasses.replace(PLAN, attention="flash")
    assert flash_before_ampere(plan, dataclasses.replace(a100, compute_capability="7.5")) is not None
    assert flash_before_ampere(plan, dataclasses.replace(a100, compute_capability="")) is None


def test_seq_len_above_max_position_embeddings():
    spec = resolve_model(PLAN.model)
    limit = spec.max_position_embeddings
    assert limit > 0
    assert sequence_beyond_positions(dataclasses.replace(PLAN, seq_len=limit), spec) is None
    found = [w for w in warnings_of(seq_len=limit + 1) if w.startswith("seq_len:")]
    assert len(found) == 1 and f"{limit:,}" in found[0] and f"{limit + 1:,}" in found[0]
    short = dataclasses.replace(spec, max_position_embeddings=1024)
    assert sequence_beyond_positions(dataclasses.replace(PLAN, seq_len=2048), short) is not None
    assert sequence_beyond_positions(dataclasses.replace(PLAN, seq_len=2048),
                                     dataclasses.replace(spec, max_position_embeddings=0)) is None


@pytest.mark.parametrize("sharding", ["fsdp", "zero3", "zero2"])
def test_sharding_on_one_gpu(sharding):
    found = [w for w in warnings_of(sharding=sharding, method="full") if w.startswith("sharding:")]
    assert len(found) == 1 and f"{sharding} on 1 GPU" in found[0]
    assert not [w for w in warnings_of(sharding=sharding, method="full", n_gpus=2) if w.startswith("sharding:")]
    # on one GPU the sharded engine is how parameters reach the host: not warned
    assert sharding_on_one_gpu(dataclasses.replace(PLAN, sharding=sharding, offload="optimizer")) is None


def test_a_plain_plan_has_no_warnings_and_json_carries_them():
    assert warnings_of() == ()
    data = estimate_to_dict(estimate(dataclasses.replace(PLAN, gpu="t4", sharding="zero3")))
    assert len(data["warnings"]) == 2
    json.dumps(data)


def test_cli_prints_the_warnings(tmp_path, capsys):
    from napkin_gui.cli import main
    path = tmp_path / "t4.napkin.json"
    path.write_text(json.dumps({"model": "llama-3.2-1b", "gpu": "t4", "attention": "flash"}))
    assert main(["estimate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: precision: bf16" in out and "warning: attention: flash" in out
    assert main(["estimate", str(path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["warnings"]) == 2


def test_plan_warnings_order_is_fixed():
    t4 = find_gpu("t4")
    spec = dataclasses.replace(resolve_model(PLAN.model), max_position_embeddings=1024)
    plan = dataclasses.replace(PLAN, attention="flash", sharding="fsdp")
    fields = [w.split(":")[0] for w in plan_warnings(plan, spec, t4)]
    assert fields == ["precision", "attention", "seq_len", "sharding"]
