"""ui/figures.py: the sweeps, hardware rows and advice of a plan, each under one key (plan,
calibration; the hardware rows without gpu and n_gpus), sent to the background process once,
computed here without it or when it fails for the plan shown now; and a probe's result
reaching the views through the controller."""
from __future__ import annotations

import dataclasses

from napkin_gui.core import calibration as cal
from napkin_gui.core.advise import advise
from napkin_gui.core.calibration import CalibrationProfile
from napkin_gui.core.compare import compare_hardware
from napkin_gui.core.plan import Plan
from napkin_gui.core.sweep import plan_sweeps, priced_by
from napkin_gui.probe.nvml import NvmlSnapshot
from napkin_gui.probe.runner import ProbeResult
from napkin_gui.ui.controller import PlanController
from napkin_gui.ui.estimate_cache import EstimateCache
from napkin_gui.ui.figures import Figures
from napkin_gui.ui.probe_runner import ProbeRunner

from fakes import FakeEstimator

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="rtx-4090")
PROFILE = CalibrationProfile(id=cal.new_profile_id("NVIDIA GeForce RTX 4090", "2026-11-25T10:00:00Z"),
                             gpu_name="NVIDIA GeForce RTX 4090", gpu_id="rtx-4090", created="2026-11-25T10:00:00Z",
                             matmul_tflops=(("bf16", 95.0),), memory_bandwidth_gbps=700.0,
                             total_memory_bytes=24 * 2**30)


def figures_for(current: list[Plan], background: bool, slow: FakeEstimator | None = None):
    """Figures of current[0], with a curves child (a FakeEstimator) and slow as the low-priority one."""
    figures = Figures(EstimateCache(), lambda: current[0])
    fake = FakeEstimator()
    if background:
        figures.use_background(fake, slow)
    arrived = []
    figures.ready.connect(lambda kind, value: arrived.append((kind, value)))
    return figures, fake, arrived


def test_without_background_each_kind_is_computed_here_once():
    figures, _, arrived = figures_for([PLAN], background=False)
    assert figures.get("sweeps", PLAN) == plan_sweeps(PLAN, priced_by())
    assert figures.get("advice", PLAN) == tuple(advise(PLAN))
    rows = figures.get("hardware", PLAN)
    assert rows == tuple(compare_hardware(PLAN, counts=(1, 2, 4, 8)))
    # the rows replace gpu and n_gpus: another card or count is the same entry
    assert figures.get("hardware", dataclasses.replace(PLAN, gpu="a10", n_gpus=4)) is rows
    assert figures.get("sweeps", dataclasses.replace(PLAN, gpu="a10")) != figures.get("sweeps", PLAN)
    assert arrived == []


def test_the_calibration_is_part_of_the_key():
    figures, _, _ = figures_for([PLAN], background=False)
    plain = figures.get("hardware", PLAN)
    figures.estimates.set_calibration(PROFILE)
    assert figures.key("hardware", PLAN) != (dataclasses.replace(PLAN, gpu="", n_gpus=1), None)
    assert figures.get("hardware", PLAN) == tuple(compare_hardware(PLAN, counts=(1, 2, 4, 8), calibration=PROFILE))
    assert figures.get("hardware", PLAN) != plain


def test_a_background_job_goes_out_once_and_arrives_for_the_current_plan_only():
    current = [PLAN]
    figures, fake, arrived = figures_for(current, background=True)
    assert figures.get("sweeps", PLAN, compute=False) is None
    assert figures.get("sweeps", PLAN) is None  # on its way: not sent again, not computed here
    assert [job[1:3] for job in fake.jobs] == [("sweeps", PLAN)] and figures.pending({"sweeps"})
    assert figures.get("hardware", PLAN) == tuple(compare_hardware(PLAN, counts=(1, 2, 4, 8)))  # never sent
    other = dataclasses.replace(PLAN, batch_size=8)
    current[0] = other
    figures.get("sweeps", other)
    fake.result_ready.emit(1, "ok", "curves of PLAN")  # late: the plan moved on
    assert arrived == [] and figures.get("sweeps", PLAN) == "curves of PLAN"  # kept for later
    fake.result_ready.emit(2, "ok", "curves of other")
    assert arrived == [("sweeps", "curves of other")] and not figures.pending({"sweeps"})


def test_a_failed_job_is_computed_here_only_for_the_current_plan():
    current = [PLAN]
    figures, fake, arrived = figures_for(current, background=True)
    figures.get("advice", PLAN)
    figures.get("sweeps", PLAN)
    current[0] = other = dataclasses.replace(PLAN, batch_size=8)
    figures.get("sweeps", other)
    fake.result_ready.emit(1, "error", "child died")  # PLAN's advice: no longer wanted
    fake.result_ready.emit(2, "error", "child died")
    assert arrived == []
    fake.result_ready.emit(3, "plan-error", "model: only this process resolved it")
    assert arrived == [("sweeps", plan_sweeps(other, priced_by()))]
    assert figures.get("advice", PLAN) is None and len(fake.jobs) == 4  # asked again, sent again


def test_a_probe_reaches_the_views_through_the_controller(qtbot, config_dir):
    """ProbeRunner knows no view: it sets the profile and the result on the controller."""
    c = PlanController(PLAN)
    runner = ProbeRunner(c)
    shown, running = [], []
    c.probe_changed.connect(shown.append)
    runner.running_changed.connect(running.append)
    profile = dataclasses.replace(PROFILE, device="cuda")
    result = ProbeResult("calibrated", NvmlSnapshot(ok=False, status="fake"), profile=profile)

    def fake_probe(plan, progress, should_stop, nvml_snapshot, **kwargs):
        progress(0.5, "trial")
        return result

    with qtbot.waitSignal(c.probe_changed, timeout=10_000):
        runner.start(fake_probe)
    qtbot.waitUntil(lambda: not runner.running, timeout=10_000)
    assert shown == [result] and c.probe_result is result and running == [True, False]
    assert c.calibration == profile and c.estimate.calibration  # the estimate already uses it
    assert list(config_dir.glob("calibration/*.json"))


def figures_with_a_starting_slow_child():
    """Figures of PLAN with a curves child that is up and a low-priority one still starting."""
    slow = FakeEstimator(starting=True)
    figures, curves, arrived = figures_for([PLAN], True, slow)
    return figures, curves, slow, arrived


def test_the_advice_goes_to_the_slow_child_and_waits_for_it_never_to_the_curves_child(qtbot):
    """core.advise runs a plan search (seconds): in the curves' child it held the next edit's
    curves back (search-app's measurement: Time-tab edits p50 2.8 s with the advice firing).
    With a low-priority child it goes there, and while that child starts it is not computed
    in the window's thread."""
    figures, curves, slow, arrived = figures_with_a_starting_slow_child()
    assert figures.get("advice", PLAN) is None          # deferred, not computed here
    assert slow.jobs == [] and curves.jobs == [] and figures.pending({"advice"})
    qtbot.wait(300)                                      # no polling: nothing happens until it is up
    assert slow.jobs == [] and figures.pending({"advice"})
    slow.come_up()                                       # its `settled` sends the advice at once
    assert len(slow.jobs) == 1
    assert slow.jobs[0][1:3] == ("advice", PLAN) and curves.jobs == []
    assert figures.get("sweeps", PLAN, compute=False) is None
    assert [job[1] for job in curves.jobs] == ["sweeps"]
    # both children number their jobs from 1: each answer reaches its own job
    slow.result_ready.emit(1, "ok", ("advice of PLAN",))
    curves.result_ready.emit(1, "ok", "sweeps of PLAN")
    assert arrived == [("advice", ("advice of PLAN",)), ("sweeps", "sweeps of PLAN")]
    assert not figures.pending({"advice", "sweeps"})


def test_a_slow_child_that_fails_to_start_leaves_the_advice_to_this_thread(qtbot):
    figures, curves, slow, arrived = figures_with_a_starting_slow_child()
    assert figures.get("advice", PLAN) is None
    slow.fail_to_start()                                # computed here, in its `settled`
    assert arrived == [("advice", tuple(advise(PLAN)))]
