"""model_state is cached by STATE_FIELDS: no other plan field may change its result."""
from __future__ import annotations

import dataclasses

import pytest

from napkin_gui.core.memory import model_state as ms
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import Plan

OTHER_VALUES = {  # every field outside STATE_FIELDS, set away from its default
    "lora_alpha": 64, "lora_dropout": 0.0, "batch_size": 7, "seq_len": 333, "grad_accum": 5,
    "grad_ckpt": True, "attention": "eager", "gpu": "a100-40gb-sxm", "n_gpus": 4, "sharding": "fsdp",
    "offload": "optimizer", "dataset_tokens": 1e9, "epochs": 3,
    "loss": "cut-ce", "liger": True, "compile": True, "activation_offload": True, "optimizer_in_backward": True,
    "algorithm": "grpo", "reference": "copy", "prompt_len": 100, "completion_len": 50, "num_generations": 4,
    "generation": "vllm-colocate", "vllm_gpu_memory_utilization": 0.5,
}


def test_other_values_cover_every_field_outside_the_key():
    names = {f.name for f in dataclasses.fields(Plan)}
    assert set(OTHER_VALUES) == names - set(ms.STATE_FIELDS) - {"model"}


@pytest.mark.parametrize("method,optimizer,precision", [
    ("full", "adamw", "mixed-bf16"), ("lora", "adamw-8bit", "bf16"), ("qlora", "paged-adamw-8bit", "bf16"),
    ("full", "adafactor", "fp32"), ("lora", "sgd", "fp16")])
@pytest.mark.parametrize("field", sorted(OTHER_VALUES))
def test_fields_outside_the_key_leave_model_state_unchanged(method, optimizer, precision, field):
    spec = resolve_model("qwen2.5-0.5b")
    plan = Plan(model="qwen2.5-0.5b", method=method, optimizer=optimizer, precision=precision)
    changed = dataclasses.replace(plan, **{field: OTHER_VALUES[field]})
    assert ms._model_state(spec, changed) == ms._model_state(spec, plan)


def test_key_fields_do_change_it_and_the_cache_tells_them_apart():
    spec = resolve_model("qwen2.5-0.5b")
    plan = Plan(model="qwen2.5-0.5b")
    for field, value in (("method", "full"), ("lora_r", 64), ("optimizer", "adamw-8bit"),
                         ("lora_targets", ("q_proj", "v_proj")), ("precision", "fp32")):
        changed = dataclasses.replace(plan, **{field: value})
        assert ms.model_state(spec, changed) != ms.model_state(spec, plan), field
        assert ms.model_state(spec, changed) == ms._model_state(spec, changed)
