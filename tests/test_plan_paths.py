"""Issue 12 item 15 (CLI part): relative model paths in a plan are the plan folder's, and
`napkin-gui --screenshot` exits non-zero when the plan's model does not load.

Before: a plan `{"model": "model/config.json"}` beside its model folder worked only when run
from that folder, and read another folder's config.json (or failed) from anywhere else; the
screenshot of a plan whose model is unknown exited 0.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from napkin_gui.cli import main
from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import load_plan, model_beside_plan

from test_app_main import run_app
from test_hf_config import TINY_LLAMA


def write_project(root: Path, hidden: int) -> Path:
    """root/plans/p.napkin.json naming ../model and ./cfg/config.json, with a model of this width."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text(json.dumps(dict(TINY_LLAMA, hidden_size=hidden)))
    plans = root / "plans"
    (plans / "cfg").mkdir(parents=True)
    (plans / "cfg" / "config.json").write_text(json.dumps(dict(TINY_LLAMA, hidden_size=hidden)))
    return plans


@pytest.mark.parametrize("model", ["../model", "./cfg/config.json", "cfg/config.json", "cfg"])
def test_relative_model_paths_are_the_plan_folders(tmp_path, monkeypatch, model):
    plans = write_project(tmp_path / "project", hidden=64)
    plan_file = plans / "p.napkin.json"
    plan_file.write_text(json.dumps({"model": model}))
    decoy = write_project(tmp_path / "elsewhere", hidden=128)  # the same names, another model
    monkeypatch.chdir(decoy)
    plan = load_plan(plan_file)
    assert Path(plan.model).is_absolute() and Path(plan.model).resolve().is_relative_to(tmp_path / "project")
    assert estimate(plan).model.hidden_size == 64


def test_the_cli_reads_the_plan_folders_model_from_anywhere(tmp_path, monkeypatch, capsys):
    plans = write_project(tmp_path / "project", hidden=64)
    (plans / "p.napkin.json").write_text(json.dumps({"model": "../model"}))
    monkeypatch.chdir(tmp_path)
    assert main(["estimate", "project/plans/p.napkin.json", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plan"]["model"] == str(tmp_path / "project" / "model")


def test_a_missing_relative_path_names_where_it_looked(tmp_path, monkeypatch, capsys):
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "p.napkin.json").write_text(json.dumps({"model": "./nothing/config.json"}))
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "config.json").write_text(json.dumps(TINY_LLAMA))  # beside cwd, not the plan
    monkeypatch.chdir(tmp_path)
    assert main(["estimate", "plans/p.napkin.json"]) == 2
    assert str(tmp_path / "plans" / "nothing" / "config.json") in capsys.readouterr().err


def test_presets_absolute_and_home_paths_are_left_alone(tmp_path):
    folder = tmp_path / "plans"
    assert model_beside_plan("llama-3.2-1b", folder) == "llama-3.2-1b"
    assert model_beside_plan("LLaMA-3.2-1B", folder) == "LLaMA-3.2-1B"
    assert model_beside_plan("/abs/model", folder) == "/abs/model"
    assert model_beside_plan("~/models/x", folder) == "~/models/x"
    assert model_beside_plan("no-such-preset", folder) == "no-such-preset"  # gets the closest-presets line
    with pytest.raises(PlanError, match="closest presets"):
        estimate(load_plan(_plan(tmp_path, "no-such-preset")))


def _plan(tmp_path, model):
    path = tmp_path / "x.napkin.json"
    path.write_text(json.dumps({"model": model}))
    return path


def test_the_window_opens_a_plan_with_a_relative_model(qtbot, tmp_path, monkeypatch):
    from napkin_gui.ui.main_window import MainWindow
    plans = write_project(tmp_path / "project", hidden=64)
    (plans / "p.napkin.json").write_text(json.dumps({"model": "../model"}))
    monkeypatch.chdir(tmp_path)
    w = MainWindow(None, restore_session=False, poll_nvml=False, persist=False)
    qtbot.addWidget(w)
    assert w.open_path(plans / "p.napkin.json", ask=False)
    w.controller.flush()
    assert w.controller.error == "" and w.controller.estimate.model.hidden_size == 64


def test_screenshot_of_a_plan_whose_model_fails_exits_2(tmp_path):
    plan = _plan(tmp_path, "foo/bar-13b")
    out = tmp_path / "shot.png"
    done = run_app(["--screenshot", str(out), str(plan)], tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("napkin-gui: model: unknown model") and "bar-13b" in last
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the greyed window, for the record
    assert os.path.getsize(out) > 10_000


@pytest.mark.parametrize("model", ["x" * 5000, "a\x00b", "x" * 300 + "/config.json"])
def test_odd_model_names_are_no_path_errors(tmp_path, capsys, model):
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps({"model": model}))
    assert main(["estimate", str(path)]) == 2  # before this fix: 'File name too long' internal error
    assert capsys.readouterr().err.startswith("napkin: model: ")


# ----------------------------------------------- names as the app writes them (issue 12 item 15)
def test_enum_values_are_read_in_any_case(tmp_path, capsys):
    """The app shows 'LoRA' and 'AdamW'; a plan written that way was refused ('method: "LoRA"
    is not allowed')."""
    from napkin_gui.core.plan import plan_from_dict
    shown = plan_from_dict({"model": "llama-3.2-1b", "method": "LoRA", "precision": "BF16",
                            "optimizer": "AdamW", "attention": "SDPA", "sharding": "None"})
    plain = plan_from_dict({"model": "llama-3.2-1b", "method": "lora", "precision": "bf16",
                            "optimizer": "adamw", "attention": "sdpa", "sharding": "none"})
    assert shown == plain
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps({"model": "llama-3.2-1b", "method": "QLoRA"}))
    assert main(["estimate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["method"] == "qlora"


@pytest.mark.parametrize("gpu", ["RTX 4090", "rtx 4090", "NVIDIA GeForce RTX 4090", "rtx-4090"])
def test_a_gpu_named_as_people_write_it(tmp_path, capsys, gpu):
    """'"gpu": "RTX 4090"' was refused; the catalog card is found by id, NVML name or short name."""
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps({"model": "llama-3.2-1b", "gpu": gpu}))
    assert main(["estimate", str(path), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["gpu"]["id"] == "rtx-4090"
