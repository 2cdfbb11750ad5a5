"""Issue 12 item 11's last line, for every command that prices a plan: `--calibrated` on estimate,
search, advise, compare and report applies the saved probe profile of the plan's GPU, so each
command's figures change with a profile and equal `estimate --calibrated`'s for the same plan.
Before, report, compare and advise had no such flag (argparse: 'unrecognized arguments')."""
from __future__ import annotations

import json

import pytest

from napkin_gui.cli import main
from napkin_gui.core import calibration as cal
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan, plan_from_dict, plan_to_dict
from napkin_gui.report.text import verdict_text

from test_calibration import profile

# a 1B LoRA on the profile's card (test_calibration.profile: an H100 measured at 800 bf16 TFLOPS
# and 2,970 GB/s where the catalog says 989 and 3,350)
PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=4, seq_len=1024, gpu="h100-80gb-sxm",
            dataset_tokens=50_000_000)


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.napkin.json"
    path.write_text(json.dumps(plan_to_dict(PLAN)))
    return path


@pytest.fixture
def saved(config_dir):
    """The H100 profile in this test's calibration store."""
    p = profile()
    cal.save_profile(p)
    return p


def run_json(capsys, *argv) -> object:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_estimate_calibrated_changes_the_figures(saved, plan_file, capsys):
    plain = run_json(capsys, "estimate", str(plan_file), "--json")
    calibrated = run_json(capsys, "estimate", str(plan_file), "--json", "--calibrated")
    assert calibrated["calibration"] == cal.profile_label(saved) and plain["calibration"] is None
    assert calibrated["time"]["step_seconds"] != plain["time"]["step_seconds"]
    assert calibrated["time"]["step_seconds"] == estimate(PLAN, calibration=saved).time.step_seconds


def test_compare_calibrated_prices_the_measured_card_as_estimate_does(saved, plan_file, capsys):
    plain = run_json(capsys, "compare", str(plan_file), "--json")
    rows = run_json(capsys, "compare", str(plan_file), "--json", "--calibrated")
    mine = next(r for r in rows if r["gpu_id"] == PLAN.gpu and r["n_gpus"] == 1 and r["sharding"] == "none")
    before = next(r for r in plain if r["gpu_id"] == PLAN.gpu and r["n_gpus"] == 1 and r["sharding"] == "none")
    est = estimate(PLAN, calibration=saved)
    assert mine["step_seconds"] == est.time.step_seconds != before["step_seconds"]
    assert mine["device_used_bytes"] == est.memory.device_used_bytes
    # cards the profile was not measured on keep their catalog figures
    other = [(r["gpu_id"], r["n_gpus"], r["step_seconds"]) for r in rows if r["gpu_id"] != PLAN.gpu]
    assert sorted(other) == sorted((r["gpu_id"], r["n_gpus"], r["step_seconds"]) for r in plain
                                   if r["gpu_id"] != PLAN.gpu)


def test_advise_calibrated_measures_each_change_with_the_profile(saved, plan_file, capsys):
    plain = run_json(capsys, "advise", str(plan_file), "--json")
    out = run_json(capsys, "advise", str(plan_file), "--json", "--calibrated")
    before = estimate(PLAN, calibration=saved)
    assert out["advice"], out
    for item in out["advice"]:
        after = estimate(plan_from_dict(item["plan"]), calibration=saved)
        assert item["memory_delta_bytes"] == after.memory.device_used_bytes - before.memory.device_used_bytes
    deltas = {a["title"]: a["time_delta_fraction"] for a in out["advice"]}
    plain_deltas = {a["title"]: a["time_delta_fraction"] for a in plain["advice"]}
    assert any(deltas[t] != plain_deltas[t] for t in deltas.keys() & plain_deltas.keys())


def test_search_calibrated_baseline_is_estimate_calibrated(saved, plan_file, capsys):
    plain = run_json(capsys, "search", str(plan_file), "--json", "--gpus", PLAN.gpu, "--top", "2")
    out = run_json(capsys, "search", str(plan_file), "--json", "--gpus", PLAN.gpu, "--top", "2", "--calibrated")
    est = estimate(PLAN, calibration=saved)
    assert out["baseline"]["step_seconds"] == est.time.step_seconds != plain["baseline"]["step_seconds"]
    for entry in out["results"]:
        assert entry["step_seconds"] == estimate(plan_from_dict(entry["plan"]), calibration=saved).time.step_seconds


def test_report_calibrated_shows_the_calibrated_figures(qapp, saved, plan_file, tmp_path, capsys):
    """(qapp: the report paints in the tests' QApplication, not a QGuiApplication of its own that
    would stop a later Qt test in this process from making one)"""
    pytest.importorskip("pypdf")
    from test_report import pdf_text
    plain_pdf, calibrated_pdf = tmp_path / "plain.pdf", tmp_path / "calibrated.pdf"
    assert main(["report", str(plan_file), "-o", str(plain_pdf)]) == 0
    assert main(["report", str(plan_file), "-o", str(calibrated_pdf), "--calibrated"]) == 0, capsys.readouterr().err
    _, plain, _ = pdf_text(plain_pdf)
    _, calibrated, _ = pdf_text(calibrated_pdf)
    est, catalog = estimate(PLAN, calibration=saved), estimate(PLAN)
    assert f"Calibrated with probe profile: {cal.profile_label(saved)}" in calibrated
    assert "Calibrated with probe profile" not in plain
    # the verdict line: the profile's measured CUDA context changes what the card uses
    mine, theirs = verdict_text(est.memory), verdict_text(catalog.memory)
    assert mine != theirs and mine in calibrated and theirs in plain and theirs not in calibrated


def test_report_data_prices_every_section_with_the_profile(saved):
    """The report's hardware table and advice, not only its headline, use the profile."""
    from napkin_gui.report.data import collect_report_data
    from napkin_gui.report.extras import advice_lines, hardware_table
    data = collect_report_data(PLAN, saved)
    assert data.estimate.time.step_seconds == estimate(PLAN, calibration=saved).time.step_seconds
    assert data.hardware_rows == hardware_table(PLAN, saved)[1]
    assert data.advice == advice_lines(PLAN, saved)
    assert data.advice != advice_lines(PLAN)  # the modelled effects change with the profile


@pytest.mark.parametrize("command", ["estimate", "search", "advise", "compare", "report"])
def test_every_pricing_command_takes_calibrated(qapp, command, config_dir, plan_file, tmp_path, capsys):
    """No profile saved: --calibrated is accepted and the figures are the catalog's."""
    argv = [command, str(plan_file), "--calibrated"] + (["-o", str(tmp_path / "r.pdf")] if command == "report" else [])
    assert main(argv) == 0, capsys.readouterr().err
