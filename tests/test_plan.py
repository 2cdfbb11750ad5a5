"""Plan-v1: defaults, validation (one line naming the field), atomic save, corrupt files."""
import dataclasses
import json

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.plan import PLAN_FIELDS, Plan, load_plan, plan_from_dict, plan_to_dict, save_plan

CONTRACT_FIELDS = ("model method precision lora_r lora_alpha lora_dropout lora_targets quant_double kbit_prep "
                   "optimizer batch_size seq_len grad_accum grad_ckpt attention gpu n_gpus sharding offload "
                   "dataset_tokens epochs").split()


def test_every_contract_field_is_a_plan_field():
    assert set(CONTRACT_FIELDS) <= set(PLAN_FIELDS)


def test_defaults_follow_the_contract():
    plan = plan_from_dict({"model": "llama-3.1-8b"})
    assert (plan.method, plan.precision, plan.lora_r, plan.lora_alpha, plan.lora_dropout) == ("lora", "bf16", 16, 32, 0.05)
    assert (plan.lora_targets, plan.quant_double, plan.kbit_prep, plan.optimizer) == ("all-linear", True, True, "adamw")
    assert (plan.batch_size, plan.seq_len, plan.grad_accum, plan.grad_ckpt, plan.attention) == (1, 2048, 1, False, "sdpa")
    assert (plan.gpu, plan.n_gpus, plan.sharding, plan.offload, plan.dataset_tokens, plan.epochs) == (
        "h100-80gb-sxm", 1, "none", "none", 0, 1)


def test_plan_is_frozen_and_replaceable():
    plan = Plan(model="gpt2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.batch_size = 3  # type: ignore[misc]
    assert dataclasses.replace(plan, batch_size=8).batch_size == 8
    assert hash(plan) == hash(Plan(model="gpt2"))


@pytest.mark.parametrize("data, field", [
    ({"model": "x", "method": "prefix"}, "method"),
    ({"model": "x", "precision": "int8"}, "precision"),
    ({"model": "x", "lora_r": 0}, "lora_r"),
    ({"model": "x", "lora_r": 2.5}, "lora_r"),
    ({"model": "x", "lora_r": True}, "lora_r"),
    ({"model": "x", "lora_alpha": -1}, "lora_alpha"),
    ({"model": "x", "lora_dropout": 1.5}, "lora_dropout"),
    ({"model": "x", "lora_targets": []}, "lora_targets"),
    ({"model": "x", "lora_targets": ["q proj"]}, "lora_targets"),
    ({"model": "x", "quant_double": "yes"}, "quant_double"),
    ({"model": "x", "optimizer": "lion"}, "optimizer"),
    ({"model": "x", "batch_size": 0}, "batch_size"),
    ({"model": "x", "seq_len": "2048"}, "seq_len"),
    ({"model": "x", "grad_accum": -2}, "grad_accum"),
    ({"model": "x", "attention": "xformers"}, "attention"),
    ({"model": "x", "gpu": ""}, "gpu"),
    ({"model": "x", "n_gpus": 0}, "n_gpus"),
    ({"model": "x", "sharding": "zero1"}, "sharding"),
    ({"model": "x", "offload": "nvme"}, "offload"),
    ({"model": "x", "dataset_tokens": -1}, "dataset_tokens"),
    ({"model": "x", "epochs": 0}, "epochs"),
    ({"model": "x", "epochs": float("nan")}, "epochs"),
    ({"model": "x", "batchsize": 2}, "batchsize"),
    ({"model": ""}, "model"),
    ({}, "model"),
    ({"model": "x", "method": "qlora", "precision": "fp32"}, "precision"),
])
def test_bad_values_name_the_field_in_one_line(data, field):
    with pytest.raises(PlanError) as err:
        plan_from_dict(data)
    message = str(err.value)
    assert message.startswith(field + ":"), message
    assert "\n" not in message


def test_not_an_object():
    with pytest.raises(PlanError, match="^plan:"):
        plan_from_dict(["model"])


def test_targets_list_round_trips(tmp_path):
    plan = plan_from_dict({"model": "x", "lora_targets": ["q_proj", "v_proj"], "batch_size": 4})
    assert plan.lora_targets == ("q_proj", "v_proj")
    path = tmp_path / "a.napkin.json"
    save_plan(plan, path)
    assert json.loads(path.read_text())["lora_targets"] == ["q_proj", "v_proj"]
    assert load_plan(path) == plan
    assert plan_to_dict(load_plan(path)) == plan_to_dict(plan)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "p.napkin.json"
    save_plan(Plan(model="gpt2"), path)
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError):
        save_plan(Plan(model="gpt2", batch_size=9), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.napkin.json"]


@pytest.mark.parametrize("text", ["", "{", "[1,2]", "{\"model\": 3}", "\x00\x01", "{\"model\": \"x\", \"lora_r\": null}"])
def test_corrupt_files_are_reported_not_overwritten(tmp_path, text):
    path = tmp_path / "bad.napkin.json"
    path.write_text(text)
    with pytest.raises(PlanError) as err:
        load_plan(path)
    assert "\n" not in str(err.value)
    assert path.read_text() == text


def test_missing_file(tmp_path):
    with pytest.raises(PlanError, match="not found"):
        load_plan(tmp_path / "nope.json")
