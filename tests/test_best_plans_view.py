"""The Best plans view: core.best_plans against core.search, the view filled by the search's
background process once edits pause, a clicked plan applied (and undone), stale results never
shown."""
from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from napkin_gui.core.best_plans import best_plans
from napkin_gui.core.estimate import estimate
from napkin_gui.core.gpu_catalog import find_gpu
from napkin_gui.core.plan import Plan
from napkin_gui.core.search import search
from napkin_gui.core.names import short_gpu_name
from napkin_gui.ui.best_plans_search import BestPlansSearch
from napkin_gui.ui.best_plans_view import BestPlansView, entry_cells, hours_cost_frontier
from napkin_gui.ui.controller import PlanController

from fakes import FakeEstimator

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=4, seq_len=1024, grad_ckpt=True, gpu="rtx-4090",
            n_gpus=2, dataset_tokens=50e6)


@pytest.fixture(scope="module")
def best():
    return best_plans(PLAN)


def test_each_objective_is_the_search_with_its_filter(best):
    mine = find_gpu(PLAN.gpu).id
    cases = {("mine", 0): search(PLAN, "fastest", gpus=[mine], max_gpus=PLAN.n_gpus, top=1),
             ("cheapest", 0): search(PLAN, "cheapest", top=1), ("fastest", 0): search(PLAN, "fastest", top=1),
             ("fits", 1): search(PLAN, "cheapest", gpus=[mine], max_gpus=1, top=1),
             ("fits", 4): search(PLAN, "cheapest", gpus=[mine], max_gpus=4, top=1)}
    for (objective, n), result in cases.items():
        entries = best.entries(objective, n)
        assert entries and entries[0] == result.results[0], objective
    for n in range(1, 9):
        assert all(e.plan.gpu == mine and e.plan.n_gpus <= n for e in best.entries("fits", n))
    assert all(e.plan.gpu == mine and e.plan.n_gpus <= PLAN.n_gpus for e in best.entries("mine"))
    assert {e.plan.gpu for e in best.entries("cheapest")} != {mine}   # other cards compete


def test_entries_are_estimates_distinct_and_ranked(best):
    for objective, n in (("mine", 0), ("cheapest", 0), ("fastest", 0), ("fits", 2)):
        entries = best.entries(objective, n)
        hardware = [(e.plan.gpu, e.plan.n_gpus, round(e.tokens_per_second, 3)) for e in entries]
        assert len(set(hardware)) == len(hardware), objective   # no plan as fast on the same hardware twice
        for e in entries:
            est = estimate(e.plan)
            assert e.fits and est.memory.fits
            assert e.tokens_per_second == est.time.tokens_per_second_total
            assert (e.hours, e.cost_usd) == (est.total.hours, est.total.cost_usd)
        speeds = [e.tokens_per_second for e in entries]
        costs = [e.usd_per_million_tokens for e in entries]
        order = costs if objective in ("cheapest", "fits") else [-s for s in speeds]
        assert order == sorted(order), objective


def test_front_points_are_the_estimates_hours_and_cost(best):
    front = best.front("cheapest")
    assert len(front) > 3
    for point in front[:: max(1, len(front) // 6)]:
        est = estimate(point.plan)
        assert est.memory.fits
        assert point.hours == pytest.approx(est.total.hours, rel=1e-9)
        assert point.cost_usd == pytest.approx(est.total.cost_usd, rel=1e-9)
    assert hours_cost_frontier([(1, 5), (2, 3), (3, 4), (4, 1)]) == [(1, 5), (2, 3), (4, 1)]


@pytest.fixture
def faked(qtbot):
    controller = PlanController(PLAN)
    view = BestPlansView()
    qtbot.addWidget(view)
    fake = FakeEstimator()
    runner = BestPlansSearch(controller, parent=controller, estimator=fake)
    runner.results_changed.connect(view.show_results)
    runner.status_changed.connect(view.show_status)
    view.plan_chosen.connect(controller.set_plan)
    runner.set_wanted(True)
    return controller, view, fake


def searcher_with_a_starting_child(qtbot):
    controller = PlanController(PLAN)
    fake = FakeEstimator(starting=True)
    runner = BestPlansSearch(controller, parent=controller, estimator=fake)
    shown = []
    runner.results_changed.connect(shown.append)
    runner.set_wanted(True)
    return controller, runner, fake, shown


def test_a_search_waits_for_the_child_to_start_then_goes_there(qtbot):
    """One mechanism with ui/figures.py's deferred advice: the child's `settled`, not a timer."""
    controller, runner, fake, shown = searcher_with_a_starting_child(qtbot)
    runner.start()
    assert fake.jobs == [] and runner.busy() and shown == []   # not searched here either
    qtbot.wait(300)
    assert fake.jobs == []                                     # nothing polls
    fake.come_up()
    assert [job[1:3] for job in fake.jobs] == [("search", PLAN)] and runner.busy()


def test_a_search_whose_child_fails_to_start_runs_here(qtbot):
    controller, runner, fake, shown = searcher_with_a_starting_child(qtbot)
    runner.start()
    fake.fail_to_start()
    assert fake.jobs == [] and len(shown) == 1 and not runner.busy()
    assert shown[0].entries("mine") == best_plans(PLAN).entries("mine")


def test_a_result_for_a_plan_edited_since_is_never_shown(faked, qtbot, best):
    controller, view, fake = faked
    controller.recompute()
    qtbot.waitUntil(lambda: len(fake.jobs) == 1, timeout=10_000)   # once edits pause
    assert fake.jobs[0][1:3] == ("search", PLAN)
    edited = dataclasses.replace(PLAN, seq_len=2048)
    controller.set_plan(edited)
    with qtbot.waitSignal(controller.recomputed):
        pass
    fake.result_ready.emit(1, "ok", best)   # PLAN's result arrives after the edit
    assert view.best is None and view.model.rowCount() == 0
    assert "searching" in view.caption.text()
    qtbot.waitUntil(lambda: len(fake.jobs) == 2, timeout=10_000)
    assert fake.jobs[1][2] == edited
    fake.result_ready.emit(2, "stale", None)   # the child replaced it: nothing shown either
    assert view.model.rowCount() == 0
    controller.undo_stack.undo()   # back to PLAN: its result came, so it shows at once
    with qtbot.waitSignal(controller.recomputed):
        pass
    assert view.best is best and view.model.entries == best.entries("mine")
    assert len(fake.jobs) == 2


def test_results_for_an_older_plan_cannot_be_applied(faked, qtbot, best):
    controller, view, fake = faked
    controller.recompute()
    qtbot.waitUntil(lambda: len(fake.jobs) == 1, timeout=10_000)
    fake.result_ready.emit(1, "ok", best)
    assert view.model.rowCount() == len(best.entries("mine")) and view.current
    controller.set_plan(dataclasses.replace(PLAN, seq_len=512))
    with qtbot.waitSignal(controller.recomputed):
        pass
    assert not view.current and view.model.flags(view.model.index(0, 0)) == Qt.ItemFlag.NoItemFlags
    view.apply_row(0)
    assert controller.plan.seq_len == 512   # the old list's plan was not applied


def test_objective_selector_switches_lists_without_a_new_search(faked, qtbot, best):
    controller, view, fake = faked
    controller.recompute()
    qtbot.waitUntil(lambda: len(fake.jobs) == 1, timeout=10_000)
    fake.result_ready.emit(1, "ok", best)
    view.objective.setCurrentIndex(view.objective.findData("fits"))
    assert view.max_gpus.isEnabled()
    view.max_gpus.setValue(1)
    assert view.model.entries == best.entries("fits", 1)
    cells = [view.model.data(view.model.index(0, c)) for c in range(view.model.columnCount())]
    assert tuple(cells) == entry_cells(1, best.entries("fits", 1)[0])
    view.objective.setCurrentIndex(view.objective.findData("cheapest"))
    assert not view.max_gpus.isEnabled() and view.model.entries == best.entries("cheapest")
    xs, ys = view.front.getData()
    assert len(xs) == len([p for p in best.front("cheapest") if p.hours > 0 and p.cost_usd > 0])
    assert len(fake.jobs) == 1


@pytest.fixture
def window(open_window):
    w = open_window(PLAN, background=True)
    yield w
    w.close()


def test_view_fills_after_an_edit_pause_and_a_click_applies_undoably(window, qtbot):
    view, c = window.best_plans_view, window.controller
    window.tabs.setCurrentWidget(view)
    window.editor.widgets["grad_ckpt"].click()   # the user edits
    edited = c.plan
    assert edited.grad_ckpt is False
    qtbot.waitUntil(lambda: view.best is not None and view.current and view.best.plan == edited, timeout=120_000)
    assert window.best_plans.estimator.available   # searched in its own child process
    assert view.model.entries == best_plans(edited).entries("mine")
    view.objective.setCurrentIndex(view.objective.findData("cheapest"))
    chosen = view.model.entries[0]
    assert chosen.plan != edited
    index = view.model.index(0, 1)
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=view.table.visualRect(index).center())
    assert c.plan == chosen.plan
    assert window.editor.widgets["batch_size"].spin.value() == chosen.plan.batch_size
    assert window.editor.gpu_combo.currentData() == chosen.plan.gpu or chosen.plan.gpu in window.editor.gpu_combo.currentText() \
        or short_gpu_name(find_gpu(chosen.plan.gpu).name) in window.editor.gpu_combo.currentText()
    window.undo_action.trigger()
    assert c.plan == edited
    assert window.editor.widgets["batch_size"].spin.value() == edited.batch_size
    assert short_gpu_name(find_gpu(edited.gpu).name) in window.editor.gpu_combo.currentText()


def test_advice_and_best_plans_share_one_search(monkeypatch, qtbot):
    """The app asks for one plan's advice (Figures, core.advise) and its Best plans
    (BestPlansSearch, core.best_plans), in the window's process or in the one child they share
    (ui/estimate_worker.run_job): the plan is searched once, not once per view; a second request
    searches nothing; another calibration or plan searches again."""
    from napkin_gui.core import search as search_module
    from napkin_gui.core.calibration import CalibrationProfile
    from napkin_gui.ui.estimate_cache import EstimateCache
    from napkin_gui.ui.estimate_worker import run_job
    from napkin_gui.ui.figures import Figures
    calls = []
    real = search_module.search_table
    monkeypatch.setattr(search_module, "search_table", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    search_module._SHARED.clear()
    plan = dataclasses.replace(PLAN, batch_size=2)   # fits its card: advise searches only the shared table
    figures = Figures(EstimateCache(), lambda: plan)
    assert figures.get("advice", plan)                      # computed here (no child)
    assert BestPlansSearch._search_here(plan, None).entries("cheapest")
    assert len(calls) == 1
    figures.clear()
    figures.get("advice", plan)
    best_plans(plan)
    assert len(calls) == 1                                  # a second request: no search
    estimates = EstimateCache()
    run_job("advice", plan, None, estimates)                # the child: the same cache
    run_job("search", plan, None, estimates)
    assert len(calls) == 1
    profile = CalibrationProfile(id="t", gpu_name="NVIDIA GeForce RTX 4090", gpu_id="rtx-4090",
                                 created="2026-11-25T00:00:00Z", matmul_tflops=(("bf16", 100.0),))
    best_plans(plan, profile)
    best_plans(dataclasses.replace(plan, seq_len=512))
    assert len(calls) == 3
