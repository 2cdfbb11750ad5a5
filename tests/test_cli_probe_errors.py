"""Issue 12 item 11 (and the CLI part of 15): `napkin probe` goes through the CLI's error handling,
a bad file in the calibration folder is skipped with a warning naming it, profile numbers have
ranges, and `--json` never prints invalid JSON.
"""
from __future__ import annotations

import copy
import json
import os

import pytest

from napkin_gui import cli_common
from napkin_gui.cli import main
from napkin_gui.core import calibration as cal

from test_calibration import profile

PLAN = {"model": "llama-3.2-1b", "gpu": "h100-80gb-sxm"}


def strict_loads(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps(PLAN))
    return path


def test_probe_errors_are_caught_by_main(monkeypatch, capsys):
    from napkin_gui.probe import command

    def broken(_as_json):
        raise RuntimeError("boom")
    monkeypatch.setattr(command, "_list", broken)
    assert main(["probe", "--list"]) == 1  # before: the RuntimeError escaped main with a traceback
    assert one_line(capsys.readouterr().err) == "napkin: internal error: RuntimeError: boom (please report)"


def test_probe_keyboard_interrupt_is_130(monkeypatch):
    from napkin_gui.probe import command

    def interrupted(_as_json):
        raise KeyboardInterrupt
    monkeypatch.setattr(command, "_list", interrupted)
    assert main(["probe", "--list"]) == 130


@pytest.mark.parametrize("flag", ["--trial", "--import"])
def test_deeply_nested_files_are_one_line_exit_2(tmp_path, capsys, flag):
    path = tmp_path / "nested.json"
    path.write_text("[" * 5000 + "]" * 5000)
    argv = ["probe", flag, str(path)] + (["--cpu"] if flag == "--trial" else [])
    assert main(argv) == 2
    assert "nested deeper" in one_line(capsys.readouterr().err)


@pytest.fixture
def store_with_a_bad_file(config_dir):
    good = profile()
    cal.save_profile(good)
    (cal.profiles_dir() / "broken.json").write_text("{not json")
    os.mkfifo(cal.profiles_dir() / "fifo.json")
    return good


def test_list_skips_bad_files_with_a_warning(store_with_a_bad_file, capsys):
    assert main(["probe", "--list"]) == 0
    out, err = capsys.readouterr()
    assert store_with_a_bad_file.id in out
    assert "broken.json" in err and "fifo.json" in err
    assert main(["probe", "--list", "--json"]) == 0
    data = strict_loads(capsys.readouterr().out)
    assert [p["id"] for p in data["profiles"]] == [store_with_a_bad_file.id] and len(data["warnings"]) == 2


def test_estimate_calibrated_skips_bad_files_with_a_warning(store_with_a_bad_file, plan_file, capsys):
    assert main(["estimate", str(plan_file), "--calibrated"]) == 0
    out, err = capsys.readouterr()
    assert f"calibrated: {cal.profile_label(store_with_a_bad_file)}" in out
    assert "napkin: warning: skipped calibration: " in err and "broken.json" in err and "fifo.json" in err


def test_jsonl_calibrated_uses_the_profile_and_warns_once(store_with_a_bad_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_common, "_warned", set())
    lines = tmp_path / "plans.jsonl"
    lines.write_text("\n".join(json.dumps(dict(PLAN, batch_size=b)) for b in (1, 2, 3)) + "\n")
    assert main(["estimate", "--jsonl", str(lines), "--calibrated"]) == 0
    out, err = capsys.readouterr()
    rows = [strict_loads(line) for line in out.splitlines()]
    assert [r["calibration"] for r in rows] == [cal.profile_label(store_with_a_bad_file)] * 3
    assert err.count("broken.json") == 1


BAD_NUMBERS = [("memory_bandwidth_gbps", float("nan")), ("memory_bandwidth_gbps", -1),
               ("memory_bandwidth_gbps", 1e308), ("kernel_launch_us", float("inf")),
               ("cuda_context_bytes", 10**400), ("cuda_context_bytes", -1), ("sms", 2**70)]


@pytest.mark.parametrize("field, value", BAD_NUMBERS)
def test_bad_profile_numbers_are_refused_naming_the_field(tmp_path, capsys, config_dir, field, value):
    data = cal.profile_to_dict(profile())
    data[field] = value
    path = tmp_path / "shared.json"
    path.write_text(json.dumps(data))  # json writes NaN / Infinity, as a careless tool would
    assert main(["probe", "--import", str(path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert field in line and "malformed profile" in line
    assert not cal.profiles_dir().exists() or not list(cal.profiles_dir().iterdir())


@pytest.mark.parametrize("where, value", [("timeline", -5), ("timeline", "12"), ("layers_run", -4),
                                          ("layers_run", "2")])
def test_bad_trial_numbers_are_refused(tmp_path, capsys, config_dir, where, value):
    data = cal.profile_to_dict(profile())
    trial = data["trials"][0]
    if where == "timeline":
        trial["timeline"].append({"phase": "x", "allocated_bytes": value})
    else:
        trial["layers_run"] = [2, value]
    path = tmp_path / "shared.json"
    path.write_text(json.dumps(data))
    assert main(["probe", "--import", str(path)]) == 2
    assert "malformed profile" in one_line(capsys.readouterr().err)


def test_a_nan_profile_in_the_store_never_reaches_the_json(config_dir, plan_file, capsys):
    data = cal.profile_to_dict(profile())
    data["memory_bandwidth_gbps"] = float("nan")
    cal.profiles_dir().mkdir(parents=True)
    (cal.profiles_dir() / f"{data['id']}.json").write_text(json.dumps(data))
    assert main(["probe", "--list", "--json"]) == 0
    listed = strict_loads(capsys.readouterr().out)
    assert listed["profiles"] == [] and "memory_bandwidth_gbps" in listed["warnings"][0]
    assert main(["estimate", str(plan_file), "--calibrated", "--json"]) == 0
    out = capsys.readouterr().out
    assert strict_loads(out)["calibration"] is None


def test_estimate_json_never_prints_nan(monkeypatch, plan_file, tmp_path, capsys):
    from napkin_gui.core import result_json
    real = result_json.estimate_to_dict

    def with_nan(est):
        out = copy.deepcopy(real(est))
        out["time"]["mfu"] = float("nan")
        return out
    monkeypatch.setattr(result_json, "estimate_to_dict", with_nan)
    assert main(["estimate", str(plan_file), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "internal error" in one_line(err)
    lines = tmp_path / "plans.jsonl"
    lines.write_text(json.dumps(PLAN) + "\n" + "{bad\n")
    assert main(["estimate", "--jsonl", str(lines)]) == 0
    rows = [strict_loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["error"].startswith("line 1: internal error") and rows[1]["error"].startswith("line 2:")


def test_help_lists_probe(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "probe" in out and "calibration profiles" in out
    assert main([]) == 2
    assert "probe" in capsys.readouterr().out
