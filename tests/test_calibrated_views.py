"""After a probe, the advice and the hardware table use the calibration, as the bars do: every
figure they show equals core.estimate(plan, calibration) of the plan they describe."""
from __future__ import annotations

import dataclasses

import pytest

from napkin_gui.core import calibration as cal
from napkin_gui.core.advise import advise
from napkin_gui.core.calibration import CalibrationProfile
from napkin_gui.core.compare import compare_hardware
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan
from napkin_gui.probe.nvml import NvmlSnapshot
from napkin_gui.probe.runner import ProbeResult
from napkin_gui.ui.estimate_cache import EstimateCache
from napkin_gui.ui.estimate_worker import run_job

MIB = 2**20
PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=4, seq_len=1024, gpu="rtx-4090", dataset_tokens=50e6)
# a 4090 measured slower than its datasheet, with a larger CUDA context and cuBLAS workspace
# than the catalog's: time, memory and fit all move
PROFILE = CalibrationProfile(id=cal.new_profile_id("NVIDIA GeForce RTX 4090", "2026-11-25T10:00:00Z"),
                             gpu_name="NVIDIA GeForce RTX 4090", gpu_id="rtx-4090", created="2026-11-25T10:00:00Z",
                             matmul_tflops=(("bf16", 95.0), ("fp32", 40.0)), memory_bandwidth_gbps=700.0,
                             cuda_context_bytes=1400 * MIB, cublas_workspace_bytes=40 * MIB,
                             total_memory_bytes=24 * 2**30)


def test_the_profile_moves_the_figures():
    """Otherwise the tests below could not tell a calibrated figure from the catalog's."""
    plain, measured = estimate(PLAN), estimate(PLAN, calibration=PROFILE)
    assert measured.time.step_seconds > plain.time.step_seconds * 1.2
    assert measured.memory.device_used_bytes > plain.memory.device_used_bytes + 400 * MIB


def _advice_figures(plan: Plan, items) -> list[tuple]:
    """(memory delta, time delta, fits) of each advice, as core.estimate with PROFILE gives them."""
    before = estimate(plan, calibration=PROFILE)
    out = []
    for a in items:
        after = estimate(a.plan, calibration=PROFILE)
        out.append((after.memory.device_used_bytes - before.memory.device_used_bytes,
                    before.time.tokens_per_second_total / after.time.tokens_per_second_total - 1,
                    after.memory.fits))
    return out


def _assert_rows_are_estimates(plan: Plan, rows) -> None:
    assert rows
    for row in rows:
        est = estimate(dataclasses.replace(plan, gpu=row.gpu_id, n_gpus=row.n_gpus, sharding=row.sharding),
                       calibration=PROFILE)
        assert (row.fits, row.device_used_bytes) == (est.memory.fits, est.memory.device_used_bytes), row.gpu_id
        assert row.step_seconds == pytest.approx(est.time.step_seconds, rel=1e-9), row.gpu_id
        assert row.tokens_per_second == pytest.approx(est.time.tokens_per_second_total, rel=1e-9), row.gpu_id


def test_core_advise_and_compare_take_the_calibration():
    items = advise(PLAN, calibration=PROFILE)
    assert items
    assert [(a.memory_delta_bytes, a.fits_after) for a in items] == [(m, f) for m, _, f in _advice_figures(PLAN, items)]
    assert [a.time_delta_fraction for a in items] == pytest.approx([t for _, t, _ in _advice_figures(PLAN, items)])
    rows = compare_hardware(PLAN, counts=(1, 2), calibration=PROFILE)
    _assert_rows_are_estimates(PLAN, [r for r in rows if r.gpu_id in ("rtx-4090", "h100-80gb-sxm")])


def test_background_advice_job_uses_the_calibration():
    assert run_job("advice", PLAN, PROFILE, EstimateCache()) == advise(PLAN, calibration=PROFILE)


@pytest.fixture
def window(open_window):
    return open_window(PLAN, tab="hardware_table")


def test_after_a_probe_advice_and_hardware_table_equal_calibrated_estimates(window, qtbot):
    def fake_probe(plan, progress, should_stop, nvml_snapshot, **kwargs):
        return ProbeResult("calibrated", NvmlSnapshot(ok=False, status="fake"), profile=PROFILE)

    window.start_probe(fake_probe)
    qtbot.waitUntil(lambda: not window.probe_runner.running, timeout=10_000)
    window.controller.flush()
    assert window.controller.calibration == PROFILE
    # the advice panel: what it lists (the Advice it applies on a click)
    panel = window.advice_panel.list
    shown = [panel.item(i).data(256) for i in range(panel.count())]  # Qt.UserRole
    assert shown and all(a is not None for a in shown)
    figures = _advice_figures(PLAN, shown)
    assert [(a.memory_delta_bytes, a.fits_after) for a in shown] == [(m, f) for m, _, f in figures]
    assert [a.time_delta_fraction for a in shown] == pytest.approx([t for _, t, _ in figures])
    # the hardware table: the rows it shows, and the text of this card's single-GPU row
    table = window.hardware_table
    rows = [table.source_row(i) for i in range(table.model.rowCount())]
    _assert_rows_are_estimates(PLAN, [r for r in rows if r.gpu_id in ("rtx-4090", "a100-80gb-sxm")])
    mine = next(i for i, r in enumerate(rows) if r.gpu_id == "rtx-4090" and r.n_gpus == 1)
    est = estimate(PLAN, calibration=PROFILE)
    texts = table.model.row_text(rows[mine])
    assert texts == table.model.row_text(dataclasses.replace(
        rows[mine], device_used_bytes=est.memory.device_used_bytes, tokens_per_second=est.time.tokens_per_second_total))
    assert f"{est.memory.device_used_bytes / 2**30:.1f} GiB" in texts
