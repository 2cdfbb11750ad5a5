"""PDF plan report: built offscreen from core.estimate, read back with pypdf."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from dataclasses import replace

import pytest

pypdf = pytest.importorskip("pypdf")

from napkin_gui.cli import main as cli_main  # noqa: E402
from napkin_gui.core.errors import PlanError  # noqa: E402
from napkin_gui.core.estimate import estimate  # noqa: E402
from napkin_gui.core.plan import PLAN_FIELDS, Plan, plan_to_dict  # noqa: E402
from napkin_gui.report import text  # noqa: E402

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=4, seq_len=1024, gpu="h100-80gb-sxm",
            dataset_tokens=50_000_000)
TOO_BIG = Plan(model="llama-3.1-8b", method="full", precision="fp32", batch_size=8, seq_len=4096,
               gpu="rtx-4090")


def pdf_text(path) -> tuple[int, str, int]:
    """(pages, text, images) with Qt's tabs and ligatures normalised (TOOLCHAIN.md section 3)."""
    reader = pypdf.PdfReader(str(path))
    raw = "\n".join(page.extract_text() for page in reader.pages)
    flat = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", raw))
    return len(reader.pages), flat, sum(len(page.images) for page in reader.pages)


def squash(s: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", s))


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.napkin.json"
    path.write_text(json.dumps(plan_to_dict(PLAN)))
    return path


def test_report_shows_model_peak_and_verdict(tmp_path):
    from napkin_gui.report.pdf import build_report
    out = tmp_path / "report.pdf"
    pages = build_report(PLAN, out)
    est = estimate(PLAN)
    n, body, images = pdf_text(out)
    assert n == pages >= 1
    assert n <= 3
    assert est.model.name in body
    assert text.gib(est.memory.peak_allocated_bytes) in body
    assert squash(text.verdict_text(est.memory)) in body
    assert est.memory.fits and "Fits:" in body
    assert images >= 3  # memory bar, timeline, batch curve
    assert squash(text.total_text(est)) in body


def test_report_lists_every_plan_field_and_formula(tmp_path):
    from napkin_gui.report.pdf import build_report
    out = tmp_path / "report.pdf"
    build_report(PLAN, out)
    _, body, _ = pdf_text(out)
    for field in PLAN_FIELDS:
        assert field in body, field
    est = estimate(PLAN)
    weights = est.memory.component("weights")
    assert squash(weights.formula) in body
    assert est.time.bound in body


def test_report_of_plan_that_does_not_fit_says_by_how_much(tmp_path):
    from napkin_gui.report.pdf import build_report
    est = estimate(TOO_BIG)
    assert not est.memory.fits
    out = tmp_path / "big.pdf"
    build_report(TOO_BIG, out)
    _, body, _ = pdf_text(out)
    assert f"over by {text.gib(-est.memory.headroom_bytes)}" in body
    assert est.memory.peak_phase in body
    assert "no total time or cost" in body  # dataset_tokens = 0


def test_write_is_atomic_and_replaces_old_file(tmp_path):
    from napkin_gui.report.pdf import build_report
    out = tmp_path / "report.pdf"
    out.write_bytes(b"old")
    build_report(PLAN, out)
    assert out.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]  # no temp file left


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    from napkin_gui.report import pdf
    out = tmp_path / "report.pdf"
    out.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(pdf.os, "replace", boom)
    with pytest.raises(OSError):
        pdf.build_report(PLAN, out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]


def test_bad_plan_path_is_plan_error(tmp_path):
    from napkin_gui.report.command import report_command
    args = type("Args", (), {"plan": str(tmp_path / "missing.json"), "output": str(tmp_path / "r.pdf")})
    with pytest.raises(PlanError):
        report_command(args)
    assert not (tmp_path / "r.pdf").exists()


def test_cli_report_writes_pdf_and_exits_0(plan_file, tmp_path, capsys):
    out = tmp_path / "sub" / "cli.pdf"
    assert cli_main(["report", str(plan_file), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    assert "wrote" in capsys.readouterr().out


def test_cli_report_bad_plan_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "llama-3.2-1b", "lora_r": 0}')
    assert cli_main(["report", str(bad), "-o", str(tmp_path / "x.pdf")]) == 2
    err = capsys.readouterr().err
    assert "lora_r" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pdf").exists()


def test_cli_report_to_folder_exits_2(plan_file, tmp_path, capsys):
    assert cli_main(["report", str(plan_file), "-o", str(tmp_path)]) == 2
    assert "output" in capsys.readouterr().err


def test_plan_rows_cover_the_contract():
    rows = dict(text.plan_rows(replace(PLAN, lora_targets=("q_proj", "v_proj"))))
    assert tuple(rows) == PLAN_FIELDS
    assert rows["lora_targets"] == "q_proj, v_proj"
    assert rows["grad_ckpt"] == "false"


def test_a_section_the_core_rejects_becomes_a_note(monkeypatch):
    from napkin_gui.core.errors import PlanError
    from napkin_gui.report import extras

    def reject(*_args, **_kwargs):
        raise PlanError("gpu: not in the catalog")
    monkeypatch.setattr(extras, "compare_hardware", reject)
    monkeypatch.setattr(extras, "advise", reject)
    assert extras.hardware_table(PLAN) == ((), (), "Hardware comparison unavailable: gpu: not in the catalog")
    assert extras.advice_lines(PLAN) == ("Advice unavailable: gpu: not in the catalog",)


def test_charts_paint_images():
    from napkin_gui.core.sweep import batch_sweep, priced_by
    from napkin_gui.report import charts, pdf
    pdf.ensure_gui_app()
    est = estimate(PLAN)
    sweep = batch_sweep(PLAN, priced_by())
    assert PLAN.batch_size in [value for value, *_ in sweep.priced()]
    for image in (charts.memory_bar_image(est.memory), charts.timeline_image(est.memory),
                  charts.batch_curve_image(sweep)):
        assert not image.isNull() and image.width() > 1000


def test_report_sweep_is_the_time_views_batch_curve(monkeypatch):
    """One sweep (core.sweep) on one grid: the report's batch curve is the Time view's, each
    point one core.estimate_point call."""
    from napkin_gui.core import sweep as core_sweep
    from napkin_gui.ui.estimate_cache import EstimateCache
    view = core_sweep.plan_sweeps(PLAN, EstimateCache().get_point).batch
    calls = []
    point = core_sweep.estimate_point
    monkeypatch.setattr(core_sweep, "estimate_point", lambda plan, cal=None: calls.append(plan) or point(plan, cal))
    from napkin_gui.report.data import collect_report_data
    data = collect_report_data(PLAN)
    assert data.sweep == view and view.values == core_sweep.grid_values(core_sweep.BATCH_GRID, PLAN.batch_size)
    sizes = [p.batch_size for p in calls]
    assert sizes[:len(view.values)] == list(view.values)   # each grid value priced once
    # then only core.frontier's bisection for the exact edge, between the samples around it
    first = view.first_oom_value
    assert all(first // 2 < b < first for b in sizes[len(view.values):]) and view.fit_edge is not None


def test_report_needs_no_widgets(tmp_path):
    """QtGui only: no ui module at all (the colour table is napkin_gui/palette.py)."""
    code = ("import sys; from napkin_gui.report.pdf import build_report; from napkin_gui.core.plan import Plan;"
            f"build_report(Plan(model='llama-3.2-1b'), {str(tmp_path / 'r.pdf')!r});"
            "bad = [m for m in sys.modules if m == 'napkin_gui.ui' or m.startswith('napkin_gui.ui.')"
            " or m in ('torch', 'pyqtgraph', 'PySide6.QtWidgets')];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ,
                                                                  "QT_QPA_PLATFORM": "offscreen"})


def test_calibration_label_and_warnings_are_printed(tmp_path):
    from napkin_gui.report.data import collect_report_data
    from napkin_gui.report.pdf import write_report
    data = collect_report_data(PLAN)
    est = replace(data.estimate, calibration="NVIDIA H100 80GB HBM3, probed 2026-11-20",
                  warnings=("config.json has no torch_dtype; assuming bf16",))
    out = tmp_path / "cal.pdf"
    write_report(replace(data, estimate=est), out)
    _, body, _ = pdf_text(out)
    assert "NVIDIA H100 80GB HBM3, probed 2026-11-20" in body
    assert "no torch_dtype; assuming bf16" in body


def test_hardware_comparison_and_advice_sections(tmp_path):
    compare = pytest.importorskip("napkin_gui.core.compare")
    advise = pytest.importorskip("napkin_gui.core.advise")
    from napkin_gui.report.pdf import build_report
    out = tmp_path / "hw.pdf"
    build_report(PLAN, out)
    _, body, _ = pdf_text(out)
    rows = compare.compare_hardware(PLAN)
    cheapest = next(r for r in rows if r.cheapest)
    fastest = next(r for r in rows if r.fastest)
    assert "Hardware that fits" in body
    assert squash(cheapest.gpu_name) in body and squash(fastest.gpu_name) in body
    items = advise.advise(PLAN)
    if items:
        assert squash(items[0].reason) in body


def test_best_plans_section_is_the_search_best_per_objective():
    """The report's "Best plans": core.search's best per objective (figures of core.estimate),
    and what fits the plan's own card from core.frontier."""
    from napkin_gui.core.search import search
    from napkin_gui.report import extras
    from napkin_gui.report.html import report_html
    from napkin_gui.units import count
    plan = replace(PLAN, grad_accum=2)
    header, rows, note = extras.best_plans(plan)
    assert header == extras.BEST_HEADER
    for objective in ("fastest", "cheapest"):
        mine = [r for r in rows if r[0] == objective]
        assert 1 <= len(mine) <= extras.BEST_PER_OBJECTIVE
        best = search(plan, objective, top=1).results[0]
        assert mine[0][5] == count(best.tokens_per_second) and mine[0][8] == "; ".join(best.changes)
    assert "micro-batch up to" in note and "train the same thing" in note
    from napkin_gui.report.data import collect_report_data
    html = report_html(collect_report_data(plan))
    assert "Best plans" in html and note in html.replace("&#x27;", "'")


def test_best_plans_the_search_rejects_become_a_note(monkeypatch):
    """(The section's except-ImportError guard around core.search went with issue 14.7.)"""
    from napkin_gui.core.errors import PlanError
    from napkin_gui.report import extras

    def reject(*_args, **_kwargs):
        raise PlanError("model: not a preset")
    monkeypatch.setattr(extras, "shared_search_table", reject)
    assert extras.best_plans(PLAN) == ((), (), "Plan search unavailable: model: not a preset")
