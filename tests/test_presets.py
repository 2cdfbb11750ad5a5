"""Presets: real config.json values whose parameter count equals the published one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from napkin_gui.core.hf_config import model_spec_from_config
from napkin_gui.core.model_source import list_presets, preset_ids, resolve_model

PRESETS = Path(__file__).resolve().parents[1] / "resources" / "presets"
GROUNDTRUTH = Path("/work/shared/groundtruth/configs")
REQUIRED = """llama-3.1-8b llama-3.2-1b llama-3.2-3b llama-3.1-70b llama-3.1-405b llama-3.3-70b
mistral-7b mistral-nemo-12b mixtral-8x7b mixtral-8x22b qwen2.5-0.5b qwen2.5-1.5b qwen2.5-3b
qwen2.5-7b qwen2.5-14b qwen2.5-32b qwen2.5-72b qwen3-0.6b qwen3-4b qwen3-8b qwen3-14b qwen3-32b
qwen3-30b-a3b gemma-2-2b gemma-2-9b gemma-2-27b gemma-3-1b gemma-3-4b gemma-3-12b gemma-3-27b
phi-3-mini phi-3-medium phi-4 smollm2-135m smollm2-360m smollm2-1.7b tinyllama-1.1b gpt2 gpt2-xl
falcon-7b olmo-2-7b deepseek-v2-lite pythia-1b""".split()


def load(preset_id: str) -> tuple[dict, dict]:
    raw = json.loads((PRESETS / f"{preset_id}.json").read_text())
    return {k: v for k, v in raw.items() if k != "napkin"}, raw["napkin"]


def test_index_lists_exactly_the_preset_files():
    files = {p.stem for p in PRESETS.glob("*.json")} - {"index"}
    assert set(preset_ids()) == files
    assert len(preset_ids()) == len(set(preset_ids())) >= 30
    assert set(REQUIRED) <= files


@pytest.mark.parametrize("preset_id", preset_ids())
def test_preset_metadata(preset_id):
    config, meta = load(preset_id)
    assert meta["id"] == preset_id == preset_id.lower()
    assert meta["display_name"] and "/" in meta["hf_id"]
    assert isinstance(meta["published_params"], int) and meta["published_params"] > 0
    assert "model_type" in config


@pytest.mark.parametrize("preset_id", preset_ids())
def test_config_count_equals_published(preset_id):
    config, meta = load(preset_id)
    spec = model_spec_from_config(config, preset_id)
    assert spec.total_params == pytest.approx(meta["published_params"], rel=0.005)


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-3.2-1b", "qwen2.5-0.5b", "tinyllama-1.1b"])
def test_measured_configs_are_copied_exactly(name):
    path = GROUNDTRUTH / name / "config.json"
    if not path.is_file():
        pytest.skip("shared groundtruth configs not present")
    assert load(name)[0] == json.loads(path.read_text())


def test_presets_resolve_by_id_and_hf_id_case_insensitively():
    for preset_id in preset_ids():
        _, meta = load(preset_id)
        spec = resolve_model(preset_id.upper())
        assert spec.name == preset_id and spec.source == "preset"
        assert resolve_model(meta["hf_id"]) is spec
        for alias in meta.get("hf_aliases", []):
            assert resolve_model(alias.lower()) is spec


def test_preset_stored_dtype_override():
    assert resolve_model("gpt2").stored_dtype == "fp32"
    assert resolve_model("gemma-2-9b").stored_dtype == "fp32"
    assert resolve_model("llama-3.1-8b").stored_dtype == "bf16"


def test_list_presets_for_the_picker():
    infos = list_presets()
    assert len(infos) == len(preset_ids())
    by_id = {info.id: info for info in infos}
    llama = by_id["llama-3.1-8b"]
    assert llama.display_name == "Llama 3.1 8B" and llama.family == "llama"
    assert llama.params_b == pytest.approx(8.03, abs=0.01) and llama.hf_id == "meta-llama/Llama-3.1-8B"
    assert by_id["mixtral-8x7b"].family == "mixtral"


def test_moe_presets_have_experts():
    spec = resolve_model("qwen3-30b-a3b")
    layer = spec.layer_groups[0][1]
    assert layer.num_experts == 128 and layer.mlp_width == 8 * 768
    lite = resolve_model("deepseek-v2-lite")
    assert [n for n, _ in lite.layer_groups] == [1, 26]
