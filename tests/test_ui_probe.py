"""The status strip (NVML sparklines or the no-driver line), the Probe action in a QThread,
and the calibration profiles dialog; fake NVML and a fake probe, no GPU, no torch."""
from __future__ import annotations

import json

import pytest

from napkin_gui.core import calibration as cal
from napkin_gui.core.calibration import CalibrationProfile, TrialRecord
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan, plan_to_dict
from napkin_gui.probe.fake_nvml import MIB, FakeGpu, FakeNvml
from napkin_gui.probe.nvml import NvmlBackend, NvmlSnapshot
from napkin_gui.probe.runner import ProbeResult
from napkin_gui.probe.trial import TrialOutcome
from napkin_gui.ui.calibration_dialog import CalibrationDialog

GIB = 2**30
PLAN = Plan(model="llama-3.2-1b", batch_size=2, seq_len=1024, gpu="rtx-4090")


@pytest.fixture
def window(open_window):
    w = open_window(PLAN, persist=True)
    yield w
    if w.poller is not None:
        w.poller.stop()


def profile(record: TrialRecord | None = None, created: str = "2026-11-25T10:00:00Z") -> CalibrationProfile:
    return CalibrationProfile(id=cal.new_profile_id("NVIDIA GeForce RTX 4090", created),
                              gpu_name="NVIDIA GeForce RTX 4090", gpu_id="rtx-4090", created=created,
                              matmul_tflops=(("bf16", 120.0),), memory_bandwidth_gbps=900.0,
                              total_memory_bytes=24 * GIB, trials=(record,) if record else ())


def trial_record(plan: Plan) -> TrialRecord:
    est = estimate(plan)
    return TrialRecord(
        plan_json=json.dumps(plan_to_dict(plan)), device="cuda:0", full_layers=est.model.num_layers,
        layers_run=(1, 2), total_params=est.total_params, trainable_params=est.trainable_params,
        peak_allocated_bytes=est.memory.peak_allocated_bytes + 100 * MIB,
        peak_reserved_bytes=est.memory.peak_reserved_bytes + 200 * MIB,
        device_used_bytes=est.memory.device_used_bytes + 300 * MIB, step_seconds=0.25,
        optimizer_step_seconds=0.25, tokens_per_second=8000.0, memory_measured=True, points=(),
        timeline=tuple((p.phase, p.allocated_bytes + 50 * MIB) for p in est.memory.timeline))


def test_no_driver_line(window):
    window.start_nvml_poller(NvmlBackend(FakeNvml(init_error="LibraryNotFound")))
    assert window.nvml_strip.status.isVisible()
    assert "No NVIDIA driver" in window.nvml_strip.status.text()


def test_sparkline_per_gpu(window):
    fake = FakeNvml([FakeGpu(used_bytes=10 * GIB, uuid="GPU-a"),
                     FakeGpu(name="NVIDIA A100-SXM4-80GB", used_bytes=30 * GIB, uuid="GPU-b")])
    window.start_nvml_poller(NvmlBackend(fake))
    fake.gpus[0].used_bytes = 12 * GIB
    window.poller.poll()
    strip = window.nvml_strip
    assert not strip.status.isVisible()
    labels = [label.text() for label, _ in strip.gpu_widgets]
    assert labels[0].startswith("GPU0 NVIDIA H100 80GB HBM3: 12.0/")
    assert "A100" in labels[1]
    assert strip.gpu_widgets[0][1].values == (10 * GIB, 12 * GIB)


def test_probe_shows_estimated_and_measured(window, qtbot, config_dir):
    record = trial_record(PLAN)
    calls = []

    def fake_probe(plan, progress, should_stop, nvml_snapshot, **kwargs):
        calls.append(plan)
        nvml_snapshot(NvmlSnapshot(ok=False, status="fake NVML"))
        progress(0.5, "trial")
        return ProbeResult("calibrated", NvmlSnapshot(ok=False, status="fake"),
                           trial=TrialOutcome("trial done", record), profile=profile(record))

    with qtbot.waitSignal(window.controller.estimate_changed, timeout=10_000):
        window.start_probe(fake_probe)
    qtbot.waitUntil(lambda: not window.probe_runner.running, timeout=10_000)
    assert calls == [PLAN]
    est = window.controller.estimate
    assert est.calibration and "RTX 4090" in est.calibration  # the profile applies to this card
    text = window.probe_panel.result.full_text
    assert f"estimated {est.memory.device_used_bytes / GIB:.1f} GiB" in text
    assert f"measured {record.device_used_bytes / GIB:.1f} GiB" in text
    xs, ys = window.timeline_view.measured_curve.getData()
    assert list(ys) == pytest.approx([b / GIB for _, b in record.timeline])
    assert list(config_dir.glob("calibration/*.json"))  # saved for next time


def test_probe_failure_is_a_status_line(window, qtbot):
    def no_gpu(plan, **kwargs):
        return ProbeResult("No NVIDIA driver found — estimates use the catalog", NvmlSnapshot(ok=False, status="x"))

    window.start_probe(no_gpu)
    qtbot.waitUntil(lambda: not window.probe_runner.running, timeout=10_000)
    assert "No NVIDIA driver" in window.probe_panel.result.full_text
    assert window.probe_panel.button.isEnabled()


def test_probe_cancel(window, qtbot):
    def slow(plan, progress, should_stop, **kwargs):
        while not should_stop():
            progress(0.1, "waiting")
            QThreadSleep()
        return ProbeResult("probe cancelled", NvmlSnapshot(ok=False, status="x"), cancelled=True)

    window.start_probe(slow)
    assert window.probe_panel.cancel.isVisible()
    window.probe_panel.cancel.click()
    qtbot.waitUntil(lambda: not window.probe_runner.running, timeout=10_000)
    assert "cancelled" in window.probe_panel.result.full_text


def QThreadSleep():  # noqa: N802 - a short yield inside the worker thread
    from PySide6.QtCore import QThread
    QThread.msleep(5)


def test_calibration_dialog_use_delete_export_import(window, qtbot, tmp_path):
    cal.save_profile(profile())
    dialog = CalibrationDialog(None, window)
    qtbot.addWidget(dialog)
    chosen = []
    dialog.profile_chosen.connect(chosen.append)
    dialog.profile_chosen.connect(window.controller.set_calibration)
    assert dialog.list.count() == 1
    dialog.list.setCurrentRow(0)
    dialog.use_button.click()
    assert chosen[-1].gpu_id == "rtx-4090"
    window.controller.flush()
    assert window.controller.estimate.calibration
    out = tmp_path / "shared.json"
    dialog.export_selected(str(out))
    assert cal.read_profile(out).id == chosen[-1].id
    dialog.delete_selected()
    assert chosen[-1] is None and not list(cal.profiles_dir().glob("*.json"))
    window.controller.flush()
    assert window.controller.estimate.calibration is None
    dialog.import_path(str(out))
    assert [p.id for p in cal.load_profiles()[0]] == [cal.read_profile(out).id]
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    dialog.import_path(str(bad))
    assert "not valid JSON" in dialog.message.text()
