"""The background process for curves and advice: what it sends back is what the window would
compute; newest job wins; the window computes itself whenever the child cannot."""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import threading

import pytest
from PySide6.QtWidgets import QMessageBox

from napkin_gui.core.advise import advise
from napkin_gui.core.plan import Plan
from napkin_gui.ui.background import BackgroundEstimator
from napkin_gui.ui.controller import PlanController
from napkin_gui.ui.estimate_cache import EstimateCache
from napkin_gui.ui.estimate_worker import READY, serve
from napkin_gui.ui.main_window import MainWindow
from napkin_gui.core.sweep import plan_sweeps

from fakes import FakeEstimator

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="rtx-4090")


def sweeps_here(plan: Plan):
    cache = EstimateCache()
    return plan_sweeps(plan, cache.get_point)


def test_serve_runs_the_newest_job_of_each_kind_curves_first():
    here, there = multiprocessing.Pipe()
    newer = dataclasses.replace(PLAN, batch_size=8)
    # all sent before the loop starts: it takes everything waiting before it chooses
    here.send((1, "advice", dataclasses.replace(PLAN, model="no-such-model"), None))
    here.send((2, "sweeps", PLAN, None))
    here.send((3, "sweeps", newer, None))
    worker = threading.Thread(target=serve, args=(there,), daemon=True)
    worker.start()
    replies = [here.recv() for _ in range(4)]
    here.send(None)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert replies[0] == (READY, "ok", None)
    by_job = {job: (status, payload) for job, status, payload in replies[1:]}
    assert by_job[2] == ("stale", None)  # replaced before it ran
    assert by_job[3] == ("ok", sweeps_here(newer))
    assert by_job[1][0] == "plan-error" and "no-such-model" in by_job[1][1]
    order = [job for job, status, _ in replies[1:] if status != "stale"]
    assert order == [3, 1]  # the curves before the advice that was sent first


def test_serve_answers_jobs_it_computes_like_the_window():
    here, there = multiprocessing.Pipe()
    worker = threading.Thread(target=serve, args=(there,), daemon=True)
    worker.start()
    assert here.recv() == (READY, "ok", None)
    for job, plan in enumerate((PLAN, dataclasses.replace(PLAN, method="qlora", seq_len=4096)), start=1):
        here.send((job, "sweeps", plan, None))
        assert here.recv() == (job, "ok", sweeps_here(plan))
    here.send(None)
    worker.join(timeout=10)


@pytest.fixture
def estimator(qtbot):
    est = BackgroundEstimator()
    yield est
    est.close()


def test_child_process_sends_the_window_figures(estimator, qtbot):
    settled = []
    estimator.settled.connect(lambda: settled.append(estimator.ready))
    assert estimator.wait_ready(60), estimator.failed
    assert settled == [True]  # what waited for the child hears it once it is up
    got = []
    estimator.result_ready.connect(lambda *reply: got.append(reply))
    job = estimator.submit("sweeps", PLAN)
    qtbot.waitUntil(lambda: bool(got), timeout=30_000)  # delivered through the event loop
    assert got == [(job, "ok", sweeps_here(PLAN))]


def test_a_dead_child_answers_error_and_is_not_used_again(estimator):
    assert estimator.wait_ready(60), estimator.failed
    got = []
    estimator.result_ready.connect(lambda *reply: got.append(reply))
    settled = []
    estimator.settled.connect(lambda: settled.append(True))
    estimator._proc.kill()
    estimator._proc.join(timeout=10)
    job = estimator.submit("sweeps", PLAN)
    if job is not None:  # the pipe took it before noticing: the wait sees the end
        estimator.wait(job, timeout_seconds=10)
        assert got == [(job, "error", estimator.failed)]
    assert estimator.failed and not estimator.available
    assert estimator.submit("sweeps", PLAN) is None
    assert settled == []  # it had settled (ready) before it died


def test_a_child_that_cannot_start_settles_as_failed(qtbot, monkeypatch):
    est = BackgroundEstimator()
    settled = []
    est.settled.connect(lambda: settled.append(est.failed))
    est._proc.kill()  # before it said it is ready
    assert est.wait_ready(10) is False
    assert settled == [est.failed] and est.failed
    est.close()


def controller_with_fake(signal: str):
    """A PlanController on PLAN using a FakeEstimator, and the list of what `signal` emits."""
    c = PlanController(PLAN)
    fake = FakeEstimator()
    c.use_background(fake)
    shown = []
    getattr(c, signal).connect(shown.append)
    return c, fake, shown


def test_controller_shows_background_curves_only_for_the_current_plan(qtbot):
    c, fake, shown = controller_with_fake("sweeps_changed")
    c.schedule()
    qtbot.waitUntil(lambda: len(fake.jobs) == 1)  # the recompute runs on the event loop
    first = fake.jobs[-1]
    assert first[1:3] == ("sweeps", PLAN) and c.busy(hardware=False)
    c.set_plan(dataclasses.replace(PLAN, batch_size=4))
    assert len(fake.jobs) == 2  # sent with the edit, before the recompute
    with qtbot.waitSignal(c.recomputed):
        pass
    assert len(fake.jobs) == 2  # which does not send it again
    second = fake.jobs[-1]
    fake.result_ready.emit(first[0], "ok", sweeps_here(PLAN))  # late: the plan moved on
    assert shown == []
    fake.result_ready.emit(second[0], "ok", sweeps_here(c.plan))
    assert shown == [sweeps_here(c.plan)] and not c.busy(hardware=False)
    c.undo_stack.undo()  # back to PLAN: its curves came back once, so they are cached
    qtbot.waitUntil(lambda: len(shown) == 2)
    assert shown[-1] == sweeps_here(PLAN) and fake.jobs[-1] == second


@pytest.mark.parametrize("status", ["error", "plan-error"])
def test_controller_computes_curves_itself_when_the_child_cannot(qtbot, status):
    c, fake, shown = controller_with_fake("sweeps_changed")
    c.recompute()
    fake.result_ready.emit(fake.jobs[-1][0], status, "no")
    assert shown == [sweeps_here(PLAN)]


def test_controller_advice_from_the_child_or_here(qtbot):
    c, fake, shown = controller_with_fake("advice_changed")

    def advice_jobs():
        return [job for job, kind, _, _ in fake.jobs if kind == "advice"]

    c.schedule()  # the advice follows once edits pause
    qtbot.waitUntil(lambda: len(advice_jobs()) == 1)
    fake.result_ready.emit(advice_jobs()[0], "error", "child died")
    assert shown == [tuple(advise(PLAN))]  # computed here instead
    other = dataclasses.replace(PLAN, batch_size=8)
    c.set_plan(other)
    qtbot.waitUntil(lambda: len(advice_jobs()) == 2)
    fake.result_ready.emit(advice_jobs()[1], "ok", ("from the child",))
    assert shown[-1] == ("from the child",)


def test_window_with_background_shows_what_the_core_computes(qtbot):
    w = MainWindow(PLAN, restore_session=False, poll_nvml=False, background=True)
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    qtbot.addWidget(w)
    w.tabs.setCurrentWidget(w.time_view)
    w.show()
    assert w.background.wait_ready(60), w.background.failed
    plan = dataclasses.replace(PLAN, batch_size=16, seq_len=2048)
    w.controller.set_plan(plan)
    qtbot.waitUntil(lambda: not w.controller.busy(hardware=False), timeout=30_000)
    expected = sweeps_here(plan)
    xs, ys = w.time_view.curve_data("step", "batch_size")  # the painted path: priced points only
    priced = [(v, s * 1000) for v, s in zip(expected.batch.values, expected.batch.step_seconds) if math.isfinite(s)]
    assert list(xs) == pytest.approx([v for v, _ in priced])
    assert list(ys) == pytest.approx([y for _, y in priced])
    w.close()
    assert w.background._proc is None  # the child is stopped with the window
