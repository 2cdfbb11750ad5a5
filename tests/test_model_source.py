"""resolve_model: presets, config.json paths, model folders, errors and caching."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napkin_gui.core import model_source
from napkin_gui.core.errors import PlanError
from napkin_gui.core.model_source import resolve_model
from tests.test_safetensors_header import TINY_LLAMA, llama_state_shapes, write_safetensors


def plan_error(model) -> str:
    with pytest.raises(PlanError) as err:
        resolve_model(model)
    message = str(err.value)
    assert "\n" not in message and message.startswith(("model", "config.json"))
    return message


def test_preset_and_hf_id():
    spec = resolve_model("llama-3.1-8b")
    assert spec.source == "preset" and spec.total_params == 8_030_261_248
    assert resolve_model("  Meta-Llama/Llama-3.1-8B ") is spec


def test_unknown_id_names_the_closest_presets():
    message = plan_error("llama-3.1-9b")
    assert message.startswith("model: unknown model 'llama-3.1-9b'; closest presets: llama-3.1-8b")
    assert message.endswith("(or give a config.json path / model folder)")
    assert message.count(",") == 2
    assert "no such file or folder" in plan_error("./missing/config.json")
    plan_error("")
    plan_error(None)


def test_config_json_path(tmp_path):
    folder = tmp_path / "MyModel"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA))
    spec = resolve_model(str(folder / "config.json"))
    assert spec.name == "MyModel" and spec.source == "config" and spec.exact_params is None
    other = tmp_path / "alt.json"
    other.write_text(json.dumps(TINY_LLAMA))
    assert resolve_model(str(other)).name == "alt"


def test_folder_without_weights_counts_from_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    spec = resolve_model(str(tmp_path))
    assert spec.source == "config" and spec.exact_params is None


def test_folder_with_safetensors_gives_exact_count_and_dtype(tmp_path):
    config = dict(TINY_LLAMA, torch_dtype="bfloat16")
    (tmp_path / "config.json").write_text(json.dumps(config))
    shapes = llama_state_shapes(config)
    write_safetensors(tmp_path / "model.safetensors", {n: ("F32", s) for n, s in shapes.items()})
    spec = resolve_model(str(tmp_path))
    assert spec.source == "safetensors" and spec.stored_dtype == "fp32"
    assert spec.exact_params == spec.counted_params == spec.total_params
    assert spec.warnings == ()


def test_tied_checkpoint_storing_lm_head_counts_it_once(tmp_path):
    config = dict(TINY_LLAMA, tie_word_embeddings=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    write_safetensors(tmp_path / "model.safetensors",
                      {n: ("BF16", s) for n, s in llama_state_shapes(config).items()})
    spec = resolve_model(str(tmp_path))
    assert spec.exact_params == spec.counted_params


def test_header_far_from_config_warns(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    shapes = dict(llama_state_shapes(TINY_LLAMA), **{"vision.proj.weight": (1000, 100)})
    write_safetensors(tmp_path / "model.safetensors", {n: ("BF16", s) for n, s in shapes.items()})
    spec = resolve_model(str(tmp_path))
    assert spec.exact_params == spec.counted_params + 100_000
    assert len(spec.warnings) == 1 and "safetensors" in spec.warnings[0]


def test_folder_saved_by_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    kwargs = {k: v for k, v in TINY_LLAMA.items() if k not in ("model_type", "torch_dtype")}
    cfg = transformers.LlamaConfig(**dict(kwargs, tie_word_embeddings=True))
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    spec = resolve_model(str(tmp_path))
    assert spec.source == "safetensors" and spec.stored_dtype == "bf16"
    assert spec.exact_params == spec.counted_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "", "\xff"])
def test_invalid_config_file(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("latin-1"))
    plan_error(str(path))
    plan_error(str(tmp_path))


def test_config_with_bad_field_and_folder_without_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(dict(TINY_LLAMA, hidden_size="abc")))
    assert plan_error(str(tmp_path)).startswith("config.json hidden_size")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no config.json" in plan_error(str(empty))


def test_bad_safetensors_in_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 4)
    plan_error(str(tmp_path))


def test_cached_calls_read_nothing_again(tmp_path, monkeypatch):
    """A repeated model is served from the cache: no config, preset or header is read again
    (this was a timing assertion, < 50 us per call, which failed on a loaded machine; the
    speed itself is in bench/estimate_speed.py)."""
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    for model in ("llama-3.1-8b", str(tmp_path)):
        first = resolve_model(model)
        reads = []
        monkeypatch.setattr(model_source, "read_regular_bytes", lambda *a, **k: reads.append(a) or b"{}")
        monkeypatch.setattr(model_source, "_preset_raw", lambda *a: reads.append(a) or {})
        for _ in range(200):
            assert resolve_model(model) is first
        assert reads == []
        monkeypatch.undo()


def test_edited_config_is_read_again(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_LLAMA))
    before = resolve_model(str(path))
    path.write_text(json.dumps(dict(TINY_LLAMA, num_hidden_layers=3)))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert resolve_model(str(path)).num_layers == 3 != before.num_layers


def test_presets_load_without_the_resources_package(monkeypatch, tmp_path):
    def no_package(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(model_source.importlib.resources, "files", no_package)
    folder = model_source._presets_dir()  # the checkout's resources/presets
    assert isinstance(folder, Path) and (folder / "index.json").is_file()
    assert json.loads((folder / "llama-3.1-8b.json").read_text())["napkin"]["id"] == "llama-3.1-8b"
    bundle = tmp_path / "_MEI" / "napkin_gui"
    monkeypatch.setattr(model_source, "__file__", str(bundle / "core" / "model_source.pyc"))
    assert model_source._presets_dir() == bundle / "resources" / "presets"


def test_presets_load_as_package_data(monkeypatch, tmp_path):
    """Installed (wheel, PyInstaller): no checkout folder, importlib.resources finds them."""
    fake_module = tmp_path / "site" / "napkin_gui" / "core" / "model_source.py"
    monkeypatch.setattr(model_source, "__file__", str(fake_module))
    folder = model_source._presets_dir()
    assert folder.joinpath("index.json").is_file()
    assert "llama-3.1-8b" in json.loads(folder.joinpath("index.json").read_text())["presets"]


def test_core_modules_import_only_the_standard_library():
    code = ("import sys, napkin_gui.core.model_source, napkin_gui.core.hf_config, "
            "napkin_gui.core.safetensors_header; "
            "print(sorted(m for m in ('torch', 'transformers', 'safetensors', 'numpy', 'PySide6') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
