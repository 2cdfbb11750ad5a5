"""The training-stack plan fields (issue 13): defaults per framework, combinations that cannot
run, LoRA targets checked against the model, and old plans' estimates unchanged."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate, estimate_point
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import Plan, plan_from_dict, plan_to_dict
from napkin_gui.core.stack_defaults import (FILLED_FIELDS, FRAMEWORK_DEFAULTS, FRAMEWORKS, STACK_FIELDS,
                                            framework_defaults, with_framework)

from stack_baseline import SNAPSHOT, estimate_without_plan


def test_plans_without_the_stack_fields_keep_their_stored_estimates():
    rows = json.loads(SNAPSHOT.read_text())
    assert len(rows) >= 10
    for row in rows:
        assert estimate_without_plan(row["plan"]) == row["estimate"], row["plan"]


def test_transformers_defaults_are_the_plan_dataclass_defaults():
    plan = Plan(model="m")
    assert framework_defaults("transformers") == {k: getattr(plan, k) for k in FILLED_FIELDS}
    for method in ("full", "lora", "qlora"):
        assert framework_defaults("transformers", method) == framework_defaults("transformers")
    assert plan_from_dict({"model": "m"}) == plan


def test_a_framework_fills_what_the_plan_leaves_out_and_the_plan_wins():
    tt = plan_from_dict({"model": "m", "framework": "torchtune"})
    assert (tt.loss, tt.grad_ckpt, tt.lora_r, tt.lora_alpha, tt.lora_dropout) == ("chunked-ce", True, 8, 16, 0.0)
    said = plan_from_dict({"model": "m", "framework": "torchtune", "loss": "standard", "grad_ckpt": False})
    assert (said.loss, said.grad_ckpt) == ("standard", False)
    un = plan_from_dict({"model": "m", "framework": "unsloth"})
    assert (un.loss, un.activation_offload, un.grad_ckpt, un.lora_r, un.lora_alpha) == (
        "fused-linear-ce", True, True, 16, 16)
    full = plan_from_dict({"model": "m", "framework": "torchtune", "method": "full"})
    assert (full.optimizer, full.optimizer_in_backward) == ("paged-adamw-8bit", True)
    # torchtune refuses optimizer_in_bwd with accumulation, so its default follows grad_accum
    assert not plan_from_dict({"model": "m", "framework": "torchtune", "method": "full",
                               "grad_accum": 4}).optimizer_in_backward
    assert plan_from_dict({"model": "m", "liger": True}).loss == "fused-linear-ce"
    assert plan_from_dict({"model": "m", "framework": "litgpt"}).loss == "chunked-ce"
    # litgpt/finetune/lora.py: --quantize bnb.* swaps the optimizer for bnb PagedAdamW
    assert plan_from_dict({"model": "m", "framework": "litgpt", "method": "qlora"}).optimizer == "paged-adamw"
    assert plan_from_dict({"model": "m", "framework": "litgpt"}).optimizer == "adamw"


def test_with_framework_sets_every_filled_field_and_back():
    plan = Plan(model="m", grad_ckpt=True, lora_r=64)
    tt = with_framework(plan, "torchtune")
    assert tt.framework == "torchtune" and tt.lora_r == 8 and tt.loss == "chunked-ce"
    back = with_framework(tt, "transformers")
    assert back == dataclasses.replace(plan, grad_ckpt=False, lora_r=16)
    assert set(FILLED_FIELDS) >= set(STACK_FIELDS) - {"framework"}
    assert set(FRAMEWORK_DEFAULTS) == set(FRAMEWORKS)


@pytest.mark.parametrize("data,field", [
    ({"framework": "unsloth", "liger": True}, "liger"),
    ({"framework": "torchtune", "liger": True}, "liger"),
    ({"optimizer_in_backward": True}, "optimizer_in_backward"),
    ({"framework": "torchtune", "method": "full", "grad_accum": 2, "optimizer_in_backward": True},
     "optimizer_in_backward"),
    ({"framework": "torchtune", "optimizer_in_backward": True}, "optimizer_in_backward"),
    ({"precision": "fsdp-mixed-bf16"}, "precision"),
    ({"precision": "fsdp-mixed-bf16", "sharding": "zero3", "n_gpus": 2}, "precision"),
    ({"loss": "chunked-ce"}, "loss"),
    ({"loss": "fused-linear-ce"}, "loss"),
    ({"framework": "torchtune", "loss": "cut-ce"}, "loss"),
    ({"framework": "litgpt", "activation_offload": True}, "activation_offload"),
    ({"framework": "litgpt", "method": "qlora", "precision": "mixed-bf16"}, "precision"),
    ({"framework": "litgpt", "method": "qlora", "n_gpus": 2}, "n_gpus"),
    ({"framework": "litgpt", "method": "qlora", "optimizer": "adamw-8bit"}, "optimizer"),
    ({"framework": "unsloth", "grad_ckpt": False}, "activation_offload"),
    ({"framework": "torchtune", "grad_ckpt": False, "activation_offload": True}, "activation_offload"),
    ({"algorithm": "grpo", "activation_offload": True}, "activation_offload"),
    ({"framework": "torchtune", "sharding": "zero3", "n_gpus": 2}, "sharding"),
    ({"framework": "jax"}, "framework"),
    ({"loss": "fancy"}, "loss"),
    ({"compile": "yes"}, "compile"),
])
def test_combinations_that_cannot_run_are_one_line_errors(data, field):
    with pytest.raises(PlanError) as err:
        plan_from_dict({"model": "llama-3.2-1b", **data})
    text = str(err.value)
    assert text.startswith(f"{field}:") and "\n" not in text


def test_combinations_that_run_are_accepted():
    for data in ({"framework": "torchtune", "method": "full", "optimizer_in_backward": True},
                 {"precision": "fsdp-mixed-bf16", "sharding": "fsdp", "n_gpus": 2, "method": "full"},
                 {"liger": True, "loss": "standard"}, {"loss": "cut-ce"}, {"optimizer": "paged-adamw"},
                 {"framework": "unsloth", "loss": "standard"}, {"activation_offload": True, "grad_ckpt": True},
                 {"activation_offload": True, "grad_ckpt": False},
                 {"framework": "torchtune", "activation_offload": True}):
        plan = plan_from_dict({"model": "llama-3.2-1b", **data})
        assert plan_from_dict(plan_to_dict(plan)) == plan


def test_a_lora_target_that_matches_no_module_names_it_and_the_modules():
    plan = Plan(model="llama-3.2-1b", lora_targets=("q_proj", "qkv_proj"))
    with pytest.raises(PlanError) as err:
        estimate(plan)
    text = str(err.value)
    assert text.startswith("lora_targets: 'qkv_proj' matches no module")
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"):
        assert name in text
    with pytest.raises(PlanError):
        estimate_point(plan)
    estimate(dataclasses.replace(plan, method="full"))  # full fine-tuning has no targets


def test_lm_head_as_a_target_adds_its_adapter():
    spec = resolve_model("llama-3.2-1b")
    base = estimate(Plan(model="llama-3.2-1b", lora_targets=("q_proj", "v_proj")))
    head = estimate(Plan(model="llama-3.2-1b", lora_targets=("q_proj", "v_proj", "lm_head")))
    extra = 16 * (spec.hidden_size + spec.vocab_size)   # lora_A [16, h] + lora_B [V, 16]
    assert head.trainable_params - base.trainable_params == extra
    comps = {c.name: c.bytes for c in head.memory.components}
    before = {c.name: c.bytes for c in base.memory.components}
    assert comps["adapters"] - before["adapters"] == 4 * extra   # fp32 adapters (peft)


def test_paged_adamw_keeps_two_fp32_states_in_managed_memory():
    est = estimate(Plan(model="llama-3.2-1b", method="full", optimizer="paged-adamw"))
    assert est.memory.managed_bytes == 2 * 4 * est.trainable_params
    assert "optimizer_states" not in {c.name for c in est.memory.components if c.bytes}


def test_fsdp_mixed_bf16_holds_fp32_parameters_and_computes_in_bf16():
    plan = plan_from_dict({"model": "llama-3.2-1b", "method": "full", "precision": "fsdp-mixed-bf16",
                           "sharding": "fsdp", "n_gpus": 2})
    assert (plan.param_dtype, plan.compute_dtype) == ("fp32", "bf16")
    assert estimate(plan).memory.peak_allocated_bytes > 0


def _napkin(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napkin_gui.cli", *args], capture_output=True,
                          text=True, input=stdin, timeout=120)


def test_cli_reads_and_echoes_the_stack_fields(tmp_path):
    data = {"model": "llama-3.2-1b", "framework": "torchtune", "seq_len": 512}
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps(data))
    out = _napkin("estimate", str(path), "--json")
    assert out.returncode == 0, out.stderr
    echo = json.loads(out.stdout)["plan"]
    assert (echo["framework"], echo["loss"], echo["grad_ckpt"], echo["optimizer_in_backward"]) == (
        "torchtune", "chunked-ce", True, False)
    text = _napkin("estimate", str(path))
    assert "torchtune · loss chunked-ce" in text.stdout.splitlines()[0]
    lines = json.dumps(data) + "\n" + json.dumps({**data, "liger": True}) + "\n"
    rows = [json.loads(x) for x in _napkin("estimate", "--jsonl", "-", stdin=lines).stdout.splitlines()]
    assert rows[0]["plan"]["framework"] == "torchtune"
    assert rows[1]["error"].startswith("line 2: liger:")
    path.write_text(json.dumps({**data, "framework": "keras"}))
    bad = _napkin("estimate", str(path))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "framework" in bad.stderr


def test_report_plan_rows_and_advice_keep_the_stack_fields():
    from napkin_gui.core.advise import advise
    from napkin_gui.report.text import plan_rows
    plan = plan_from_dict({"model": "llama-3.2-1b", "framework": "torchtune", "gpu": "rtx-4090"})
    rows = dict(plan_rows(plan))
    assert rows["framework"] == "torchtune" and rows["loss"] == "Chunked cross-entropy"  # names.py
    for advice in advise(plan):
        assert advice.plan.framework == "torchtune"
