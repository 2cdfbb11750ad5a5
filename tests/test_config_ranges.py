"""Issue 12 item 3: every config.json field and plan field has a sane range, and a value outside it
gives one line naming the field and the allowed range.

Before: `vocab_size: 1e100` and `hidden_size: 1e20` passed and the estimate read "5e93 B params".
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from napkin_gui.cli import main
from napkin_gui.core import hf_config
from napkin_gui.core.errors import PlanError
from napkin_gui.core.hf_config import MAX_PARAMS, model_spec_from_config
from napkin_gui.core.model_source import list_presets, resolve_model
from napkin_gui.core.plan import Plan, plan_from_dict

from test_hf_config import TINY_FAMILIES, TINY_LLAMA


def config_error(config: dict) -> str:
    with pytest.raises(PlanError) as err:
        model_spec_from_config(config, "bad")
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    return message


def run_cli(tmp_path, capsys, config: dict) -> tuple[int, str, str]:
    (tmp_path / "config.json").write_text(json.dumps(config))
    plan = tmp_path / "p.napkin.json"
    plan.write_text(json.dumps({"model": str(tmp_path / "config.json")}))
    code = main(["estimate", str(plan)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("field, value, allowed", [
    ("vocab_size", 1e100, "from 1 to 16,777,216"),
    ("hidden_size", 1e20, "from 1 to 131,072"),
    ("intermediate_size", 10**12, "from 1 to 1,048,576"),
    ("num_attention_heads", 2**20, "from 1 to 16,384"),
    ("head_dim", 10**9, "from 1 to 16,384"),
    ("num_hidden_layers", 10**5, "from 1 to 10,000"),
])
def test_the_issue_values_stop_at_the_field(tmp_path, capsys, field, value, allowed):
    code, out, err = run_cli(tmp_path, capsys, dict(TINY_LLAMA, **{field: value}))
    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and f"config.json {field}: must be an integer {allowed}" in line, line
    assert "B params" not in line


def _reads(config: dict, field: str) -> bool:
    """Whether the family reads field: doubling it changes some shape."""
    def shapes(c):
        return dataclasses.replace(model_spec_from_config(c, "x"), config_json="")
    try:
        return shapes(config) != shapes(dict(config, **{field: 2 * config[field]}))
    except PlanError:
        return True  # the doubled value broke a rule between fields: it was read


def bounded_fields():
    """(family, field) for every bounded field a tiny config of that family reads."""
    pairs = []
    for family, config in TINY_FAMILIES.items():
        for field, bound in hf_config._UPPER_BOUNDS.items():
            value = config.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and _reads(config, field):
                pairs.append((family, field, bound))
    return pairs


@pytest.mark.parametrize("family, field, bound", bounded_fields())
def test_one_past_each_bound_names_the_field_and_range(family, field, bound):
    config = dict(TINY_FAMILIES[family], **{field: bound + 1})
    message = config_error(config)
    assert message.startswith(f"config.json {field}: must be an integer from ") and f"{bound:,}" in message


def test_every_shipped_model_is_inside_the_ranges():
    for info in list_presets():
        ident = getattr(info, "id", None) or str(info)
        spec = resolve_model(ident)
        assert 0 < spec.total_params < MAX_PARAMS


def test_fields_in_range_whose_product_is_absurd_stop_with_the_parameter_count():
    config = dict(TINY_LLAMA, hidden_size=2**17, intermediate_size=2**20, num_hidden_layers=10_000,
                  num_attention_heads=128, num_key_value_heads=8, vocab_size=2**24)
    message = config_error(config)
    assert message.startswith("config.json: these shapes give ") and "parameters" in message
    assert "hidden_size 131,072" in message


@pytest.mark.parametrize("value", [float("nan"), 1e400, 10**400, 2e6, -1, 0])
def test_softcapping_has_a_range(value):
    config = dict(TINY_FAMILIES["gemma2"], final_logit_softcapping=value)
    message = config_error(config)
    assert "final_logit_softcapping: must be a number above 0 and at most 1e+06" in message


def test_an_odd_max_position_embeddings_is_ignored_not_trusted():
    assert model_spec_from_config(dict(TINY_LLAMA, max_position_embeddings=1e100), "x").max_position_embeddings == 0
    assert model_spec_from_config(dict(TINY_LLAMA, max_position_embeddings=4096), "x").max_position_embeddings == 4096


PLAN_INT_RANGES = [("lora_r", 1, 65536), ("batch_size", 1, 1_000_000), ("seq_len", 1, 100_000_000),
                   ("grad_accum", 1, 1_000_000), ("n_gpus", 1, 100_000), ("prompt_len", 1, 100_000_000)]


@pytest.mark.parametrize("field, low, high", PLAN_INT_RANGES)
@pytest.mark.parametrize("where", ["below", "above", "fraction", "text"])
def test_plan_integers_name_their_range(field, low, high, where):
    value = {"below": low - 1, "above": high + 1, "fraction": 1.5, "text": "many"}[where]
    with pytest.raises(PlanError) as err:
        plan_from_dict({"model": "llama-3.2-1b", field: value})
    assert str(err.value).startswith(f"{field}: must be an integer from {low:,} to {high:,}, got ")


@pytest.mark.parametrize("field, value", [("dataset_tokens", 1e30), ("epochs", float("nan")),
                                          ("lora_alpha", float("inf")), ("lora_dropout", 1.0),
                                          ("vllm_gpu_memory_utilization", 1.0)])
def test_plan_numbers_name_their_range(field, value):
    with pytest.raises(PlanError) as err:
        plan_from_dict({"model": "llama-3.2-1b", field: value})
    message = str(err.value)
    assert message.startswith(f"{field}: must be a number ") and "\n" not in message


def test_the_largest_plan_values_still_give_finite_figures():
    from napkin_gui.core.estimate import estimate
    plan = Plan(model="llama-3.2-1b", batch_size=1_000_000, seq_len=100_000_000, grad_accum=1_000_000,
                n_gpus=100_000, dataset_tokens=1e16, epochs=1e6, sharding="fsdp")
    est = estimate(plan)
    numbers = [est.memory.peak_allocated_bytes, est.time.step_seconds, est.time.tokens_per_second,
               est.total.hours, est.total.cost_usd]
    assert all(0 < float(x) < float("inf") for x in numbers), numbers
    assert dataclasses.replace(plan, batch_size=1) != plan


def test_safetensors_shapes_past_the_parameter_cap_are_refused(tmp_path):
    import struct
    from tests.test_safetensors_header import TINY_LLAMA as HEADER_LLAMA, llama_state_shapes
    (tmp_path / "config.json").write_text(json.dumps(HEADER_LLAMA))
    shapes = dict(llama_state_shapes(HEADER_LLAMA), **{"model.embed_tokens.weight": [10**12, 10**6]})
    # a header alone: napkin reads only the header (no tensor bytes behind these shapes)
    header = json.dumps({n: {"dtype": "BF16", "shape": list(s), "data_offsets": [0, 0]}
                         for n, s in shapes.items()}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(PlanError) as err:
        resolve_model(str(tmp_path))
    assert str(err.value).startswith("model: the safetensors headers in ") and "1e+18 parameters" in str(err.value)
