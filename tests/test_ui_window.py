"""The window driven as a user would: every figure shown must be what core.estimate returns."""
from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGroupBox

from napkin_gui.core.compare import compare_hardware
from napkin_gui.core.estimate import estimate
from napkin_gui.core.errors import PlanError
from napkin_gui.core.names import value_name
from napkin_gui.core.plan import PLAN_FIELDS, Plan, parse_lora_targets
from napkin_gui.core.result import ALLOCATED_COMPONENTS, COMPONENTS
from napkin_gui import palette, units
from napkin_gui.ui.memory_bar_view import ROW_NOW, ROW_PINNED
from napkin_gui.core.stack_defaults import FRAMEWORKS, STACK_FIELDS, with_framework
from napkin_gui.ui.help_text import CHOICE_TIPS, FIELD_TIPS
from napkin_gui.ui.plan_editor import choice_problem, next_plan
from napkin_gui.core.plan import with_algorithm
from napkin_gui.core.sweep import BATCH_GRID, SEQ_GRID, grid_values

GIB = 2**30
PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="rtx-4090",
            dataset_tokens=10e6)


@pytest.fixture
def window(open_window):
    return open_window(PLAN, size=(1400, 900), persist=True)


def settle(w):
    w.controller.flush()
    return w.controller.estimate


def assert_bars_show(view, est, row=ROW_NOW):
    segments = view.segments(row)
    assert [s[0] for s in segments] == list(COMPONENTS)
    x = 0.0
    for (name, x0, width), comp in zip(segments, est.memory.components):
        assert comp.name == name
        assert width == pytest.approx(comp.bytes / GIB)
        assert x0 == pytest.approx(x)
        x += width


def assert_views_show(w, plan):
    settle(w)
    est = estimate(plan)
    assert w.controller.estimate == est
    assert_bars_show(w.memory_view, est)
    assert w.memory_view.capacity_line.value() == pytest.approx(est.memory.capacity_bytes / GIB)
    assert w.memory_view.oom_zone.isVisible() == (not est.memory.fits)
    # timeline: the top band is the allocated total of every phase, the peak marked
    shown = w.tabs.currentIndex()
    w.tabs.setCurrentWidget(w.timeline_view)
    totals = [p.allocated_bytes / GIB for p in est.memory.timeline]
    view = w.timeline_view
    total = view.total_curve.path()  # a step outline: each phase's total held across the phase
    assert np.allclose([total.elementAt(i).y for i in range(total.elementCount())], np.repeat(totals, 2))
    assert [total.elementAt(i).x for i in (0, total.elementCount() - 1)] == [0.0, len(totals)]
    first = ALLOCATED_COMPONENTS[0]  # the bottom band: that component alone, filled down to zero
    band = view.bands[first].path()
    heights = [dict(p.by_component)[first] / GIB for p in est.memory.timeline]
    ys = [band.elementAt(i).y for i in range(band.elementCount())]
    assert np.allclose(ys[1:2 * len(heights) + 1], np.repeat(heights, 2)) and ys[0] == ys[-2] == 0.0
    assert max(totals) == pytest.approx(est.memory.peak_allocated_bytes / GIB)
    phases = [p.phase for p in est.memory.timeline]
    assert w.timeline_view.peak_line.value() == phases.index(est.memory.peak_phase) + 0.5
    assert w.timeline_view.capacity_line.value() == pytest.approx(est.memory.capacity_bytes / GIB)
    # curves: each grid point is core.estimate of the plan with that batch size / seq len
    w.tabs.setCurrentWidget(w.time_view)
    for field, grid in (("batch_size", BATCH_GRID), ("seq_len", SEQ_GRID)):
        xs, ys = w.time_view.curve_data("step", field)  # read from the painted paths
        txs, tps = w.time_view.curve_data("tps", field)
        values = grid_values(grid, getattr(plan, field))
        assert list(xs) == pytest.approx(values) and list(txs) == pytest.approx(values)
        for v, y, t in zip(values, ys, tps):
            e = estimate(dataclasses.replace(plan, **{field: v}))
            assert y == pytest.approx(e.time.step_seconds * 1000)
            assert t == pytest.approx(e.time.tokens_per_second)
        i = values.index(getattr(plan, field))
        assert w.time_view.current_point("step", field) == pytest.approx((values[i], ys[i]))
    assert est.time.bound in w.time_view.caption.text()
    w.tabs.setCurrentIndex(shown)
    return est


def test_default_views_match_core(window):
    assert_views_show(window, PLAN)
    assert "fits" in window.memory_view.verdict.text()


def test_pick_model_by_typing(window, qtbot):
    combo = window.editor.model_combo
    combo.lineEdit().clear()
    qtbot.keyClicks(combo.lineEdit(), "qwen2.5-0.5b")
    qtbot.keyClick(combo.lineEdit(), Qt.Key.Key_Return)
    assert window.controller.plan.model == "qwen2.5-0.5b"
    settle(window)
    assert_views_show(window, dataclasses.replace(PLAN, model="qwen2.5-0.5b"))
    est = window.controller.estimate
    assert window.editor.model_info.text().startswith(f"{units.params(est.total_params)} params")


def test_pick_model_from_list(window):
    combo = window.editor.model_combo
    combo.setCurrentIndex(combo.findData("llama-3.2-3b"))
    combo.activated.emit(combo.currentIndex())
    assert window.controller.plan.model == "llama-3.2-3b"


def test_lora_to_qlora_changes_bars(window):
    before = settle(window)
    window.editor.combos["method"].setCurrentText(value_name("method", "qlora"))
    assert window.controller.plan.method == "qlora"
    after = assert_views_show(window, dataclasses.replace(PLAN, method="qlora"))
    assert after.memory.component("weights").bytes < before.memory.component("weights").bytes
    # QLoRA options become editable, fp32 is not allowed and says why
    assert window.editor.widgets["quant_double"].isEnabled()
    precision = window.editor.combos["precision"]
    fp32 = precision.findData("fp32")
    assert not precision.model().item(fp32).isEnabled()
    assert "16-bit" in precision.itemData(fp32, Qt.ItemDataRole.ToolTipRole)


def test_raise_batch_until_oom(window, qtbot):
    spin = window.editor.widgets["batch_size"].spin
    while window.controller.estimate.memory.fits:
        qtbot.keyClick(spin, Qt.Key.Key_Up)
        settle(window)
        assert spin.value() < 512, "never ran out of memory"
    plan = window.controller.plan
    assert plan.batch_size == spin.value()
    est = assert_views_show(window, plan)
    over = -est.memory.headroom_bytes / GIB
    assert f"over by {over:.1f} GiB" in window.memory_view.verdict.text()
    assert window.memory_view.oom_zone.isVisible()
    # the curve's OOM zone starts where the core says batch sizes stop fitting
    sweep_plot = window.time_view.plots[("step", "batch_size")]
    assert sweep_plot.oom_zone.isVisible()
    start, _ = sweep_plot.oom_region()
    assert 10 ** start <= plan.batch_size


def test_slider_moves_spin_and_plan(window):
    window.editor.widgets["seq_len"].slider.setValue(12)  # 2**12
    assert window.editor.widgets["seq_len"].spin.value() == 4096
    assert window.controller.plan.seq_len == 4096


def test_controller_to_widgets_without_feedback(window):
    c = window.controller
    commands = c.undo_stack.count()
    new = dataclasses.replace(PLAN, batch_size=16, method="full", precision="mixed-bf16", grad_ckpt=True,
                              gpu="a100-80gb-sxm", n_gpus=2, sharding="fsdp", lora_r=64)
    c.set_plan(new)
    e = window.editor
    assert e.widgets["batch_size"].spin.value() == 16
    assert e.widgets["batch_size"].slider.value() == 4
    assert e.combos["method"].currentData() == "full"
    assert e.combos["precision"].currentData() == "mixed-bf16"
    assert e.combos["sharding"].currentData() == "fsdp"
    assert e.widgets["grad_ckpt"].isChecked()
    assert e.gpu_combo.currentData() == "a100-80gb-sxm"
    assert e.widgets["n_gpus"].value() == 2
    assert e.widgets["lora_r"].value() == 64
    assert not e.widgets["lora_r"].isEnabled()  # full fine-tuning has no adapters
    assert c.plan == new  # no widget wrote back
    assert c.undo_stack.count() == commands + 1
    settle(window)
    assert_views_show(window, new)


def test_undo_redo(window):
    c = window.controller
    window.editor.combos["optimizer"].setCurrentText(value_name("optimizer", "adamw-8bit"))
    window.editor.widgets["grad_ckpt"].setChecked(True)
    assert c.plan.optimizer == "adamw-8bit" and c.plan.grad_ckpt
    window.undo_action.trigger()
    assert c.plan == dataclasses.replace(PLAN, optimizer="adamw-8bit")
    assert not window.editor.widgets["grad_ckpt"].isChecked()
    window.undo_action.trigger()
    assert c.plan == PLAN
    assert window.editor.combos["optimizer"].currentData() == "adamw"
    window.redo_action.trigger()
    assert c.plan.optimizer == "adamw-8bit"


def test_slider_drag_undoes_as_one_step(window):
    for position in (2, 3, 4, 5):
        window.editor.widgets["batch_size"].slider.setValue(position)
    assert window.controller.plan.batch_size == 32
    window.undo_action.trigger()
    assert window.controller.plan.batch_size == PLAN.batch_size


def test_edits_coalesce_into_one_recompute(window, qtbot):
    c = window.controller
    count = []
    c.recomputed.connect(lambda: count.append(1))
    with qtbot.waitSignal(c.recomputed, timeout=2000):
        for bs in range(3, 9):
            window.editor.widgets["batch_size"].spin.setValue(bs)
    qtbot.wait(20)
    assert len(count) == 1
    assert c.estimate.plan.batch_size == 8


def test_unknown_model_shows_error_not_crash(window, qtbot):
    combo = window.editor.model_combo
    combo.lineEdit().setText("no-such-model-xyz")
    qtbot.keyClick(combo.lineEdit(), Qt.Key.Key_Return)
    settle(window)
    assert window.editor.error_label.isVisible()
    assert window.editor.error_label.text().startswith("model:")
    assert window.controller.error
    window.undo_action.trigger()
    settle(window)
    assert not window.editor.error_label.isVisible()


def test_hover_tooltip_has_bytes_and_formula(window):
    est = settle(window)
    name, x0, width = window.memory_view.segments()[0]
    text = window.memory_view.tooltip_at(x0 + width / 2, ROW_NOW)
    comp = est.memory.component(name)
    assert f"{comp.bytes:,} bytes" in text
    assert comp.formula in text
    assert window.memory_view.tooltip_at(x0 + width / 2, 5.0) == ""
    phase = est.memory.timeline[3]
    assert phase.phase in window.timeline_view.tooltip_at(3.5)


def test_pin_before_after(window):
    before = settle(window)
    window.pin_action.trigger()
    window.editor.combos["method"].setCurrentText(value_name("method", "qlora"))
    after = settle(window)
    assert_bars_show(window.memory_view, before, ROW_PINNED)
    assert_bars_show(window.memory_view, after, ROW_NOW)
    window.pin_action.trigger()
    assert all(width == 0 for _, _, width in window.memory_view.segments(ROW_PINNED))


def assert_highlight(table, i: int, row) -> None:
    """Table row i is green / blue and bold for the cheapest / fastest row, plain otherwise."""
    background = table.model.data(table.model.index(i, 3), Qt.ItemDataRole.BackgroundRole)
    font = table.model.data(table.model.index(i, 3), Qt.ItemDataRole.FontRole)
    if row.cheapest or row.fastest:
        color = palette.CHEAPEST_BG if row.cheapest else palette.FASTEST_BG
        assert background.color() == QColor(color) and font.bold()
    else:  # plain: no role set, painted with the view's defaults
        assert background is None and font is None


def test_hardware_table_rows_match_core(window, qtbot):
    window.tabs.setCurrentWidget(window.hardware_table)
    settle(window)
    table = window.hardware_table
    rows = compare_hardware(PLAN, counts=(1, 2, 4, 8))
    assert table.model.rows == rows
    assert table.model.rowCount() == len(rows)
    cheapest = [r for r in rows if r.cheapest]
    # the rows in view are written at once, the others once edits pause
    first, last = table.visible_rows()
    assert 0 < last - first + 1 < len(rows)
    assert table.model.stale_rows == len(rows) - (last - first + 1)
    qtbot.waitUntil(lambda: table.model.stale_rows == 0, timeout=2000)
    assert cheapest and "cheapest" in table.model.data(
        table.model.index(table.model.shown.index(cheapest[0]), 0))
    # every cell shows its row's text, greyed when the row does not fit
    for i, row in enumerate(table.model.shown):
        assert [table.model.data(table.model.index(i, c)) for c in range(12)] == table.model.row_text(row)
        grey = table.model.data(table.model.index(i, 3), Qt.ItemDataRole.ForegroundRole)
        assert (grey is not None and grey.style() != Qt.BrushStyle.NoBrush) == (not row.fits)
        assert_highlight(table, i, row)
    # sorted by cost per token, rows that fit first: the first row is the cheapest
    assert table.source_row(0) == cheapest[0]
    # sort by step time (both ways), then double-click the fastest fitting row
    for order in (Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder):
        table.view.sortByColumn(6, order)
        shown = [table.source_row(i) for i in range(table.model.rowCount())]
        fits = [r.fits for r in shown]
        assert fits == sorted(fits, reverse=True)  # every fitting row before the others
        for group in ([r for r in shown if r.fits], [r for r in shown if not r.fits]):
            steps = [r.step_seconds for r in group]
            assert steps == sorted(steps, reverse=order == Qt.SortOrder.DescendingOrder)
        first, last = table.visible_rows()  # re-sorted rows in view: the old highlights are gone
        for i in range(first, last + 1):
            assert_highlight(table, i, table.source_row(i))
    # rows scrolled into view are written before they are painted, not on the idle timer
    assert table.model.stale_rows > 0
    table.view.scrollToBottom()
    first, last = table.visible_rows()
    assert last == len(rows) - 1
    for i in (first, last):
        assert [table.model.data(table.model.index(i, c)) for c in range(12)] == table.model.row_text(table.source_row(i))
    fastest = next(r for r in rows if r.fastest)
    table_row = next(i for i in range(table.model.rowCount()) if table.source_row(i) == fastest)
    index = table.model.index(table_row, 0)
    table.view.scrollTo(index)
    rect = table.view.visualRect(index)
    qtbot.mouseClick(table.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    plan = window.controller.plan
    assert (plan.gpu, plan.n_gpus, plan.sharding) == (fastest.gpu_id, fastest.n_gpus, fastest.sharding)


def test_hardware_table_follows_edits(window):
    window.tabs.setCurrentWidget(window.hardware_table)
    window.editor.widgets["batch_size"].spin.setValue(8)
    settle(window)
    assert window.hardware_table.model.rows == compare_hardware(window.controller.plan, counts=(1, 2, 4, 8))


def test_hardware_table_repaints_the_cells_an_edit_changed_in_runs(window, qtbot):
    window.tabs.setCurrentWidget(window.hardware_table)
    settle(window)
    model = window.hardware_table.model
    first, last = window.hardware_table.visible_rows()
    before = [[model.data(model.index(i, c)) for c in range(12)] for i in range(first, last + 1)]
    announced = []
    model.dataChanged.connect(lambda a, b: announced.append((a.row(), a.column(), b.row(), b.column())))
    window.editor.widgets["batch_size"].spin.setValue(PLAN.batch_size + 3)
    settle(window)
    after = [[model.data(model.index(i, c)) for c in range(12)] for i in range(first, last + 1)]
    assert after == [model.row_text(row) for row in model.shown[first:last + 1]]
    changed = {(first + i, c) for i, (old, new) in enumerate(zip(before, after)) for c in range(12) if old[c] != new[c]}
    assert changed  # batch size moves step time, tokens/s and cost
    covered = {(r, c) for r0, c0, r1, c1 in announced for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
    assert changed <= covered
    assert all(r0 == r1 for r0, _, r1, _ in announced)  # a row's runs, never the whole range
    assert len(announced) < len(changed) / 2  # runs of columns, not a signal per cell
    tip = model.data(model.index(first, 0), Qt.ItemDataRole.ToolTipRole)
    assert model.shown[first].gpu_name in tip and f"{model.shown[first].bound}-bound" in tip


def test_hardware_model_keeps_one_record_per_row(window, qtbot):
    """Each table row holds one ShownRow (texts, tooltip, style) of the core row it shows;
    the same rows again write nothing."""
    from napkin_gui.ui.hardware_table import shown_row
    window.tabs.setCurrentWidget(window.hardware_table)
    settle(window)
    model = window.hardware_table.model
    qtbot.waitUntil(lambda: model.stale_rows == 0, timeout=2000)
    for i, row in enumerate(model.shown):
        record = model.table[i].written
        assert record == shown_row(row) and record.row is row
        assert model.data(model.index(i, 0), Qt.ItemDataRole.ToolTipRole) == record.tooltip
        assert record.style == (row.fits, row.cheapest, row.fastest)
    announced = []
    model.dataChanged.connect(lambda a, b: announced.append(a.row()))
    model.set_rows(model.rows)
    assert announced == [] and model.stale_rows == 0


def test_advice_click_applies_plan(window):
    window.editor.widgets["batch_size"].spin.setValue(64)
    settle(window)
    panel = window.advice_panel
    assert panel.list.count() > 0
    advice = panel.list.item(0).data(Qt.ItemDataRole.UserRole)
    assert advice.reason in panel.list.item(0).text()
    panel.apply_row(0)
    assert window.controller.plan == advice.plan


def test_refcount_of_none_does_not_fall(window):
    """PySide6 6.12 drops a reference to None per call on Python < 3.12 (TOOLCHAIN.md section 0)."""
    if sys.version_info >= (3, 12):
        pytest.skip("None is immortal on 3.12+")
    before = sys.getrefcount(None)
    for _ in range(1000):
        window.resize(900, 700)
    assert sys.getrefcount(None) >= before - 10


def test_tooltips_on_every_option(window):
    e = window.editor
    assert set(e.widgets) <= set(PLAN_FIELDS)
    for w in (e.model_combo, *e.widgets.values()):
        tip = w.toolTip()
        assert tip.endswith(".") and tip.count(". ") == 0, tip


# a value other than PLAN's for each row that is neither a choice nor a check box
EDITED_VALUES = {"model": "llama-3.1-8b", "lora_r": 64, "lora_alpha": 8.5, "lora_dropout": 0.1,
                 "lora_targets": ("q_proj", "v_proj"), "batch_size": 8, "seq_len": 4096, "grad_accum": 4,
                 "gpu": "a100-80gb-sxm", "n_gpus": 4, "dataset_tokens": 25_000_000, "epochs": 2.5,
                 "prompt_len": 256, "completion_len": 512, "num_generations": 4, "vllm_gpu_memory_utilization": 0.5}


def test_every_row_binds_both_ways(window):
    """Each row of the binding table: the plan's value shows in the widget, and a user edit of
    the widget (its `edited` signal, with what the widget shows) sets exactly that plan field
    (or, for a row with `apply`, makes the plan that apply makes: a framework and its defaults)."""
    e, c = window.editor, window.controller
    qlora = dataclasses.replace(PLAN, method="qlora")  # every row but the torchtune-only one enabled
    for field, bound in e.bound.items():
        row = e.rows[field]
        before = next(p for p in (qlora, with_framework(dataclasses.replace(PLAN, method="full"), "torchtune"),
                                  dataclasses.replace(with_algorithm(qlora, "grpo"), generation="vllm-colocate"))
                      if row.enabled(p))
        c.reset_plan(before)
        if bound.choices:
            value = next(v for v in bound.choices if v != getattr(before, field)
                         and choice_problem(before, field, v, row.apply) is None)
        elif isinstance(getattr(before, field), bool):
            value = not getattr(before, field)
        else:
            assert field in EDITED_VALUES, f"add a sample value for the new row {field}"
            value = EDITED_VALUES[field]
        assert e.widgets[field].isEnabled(), field
        bound.show(value)  # a user edit: the widget emits, unblocked, unless it only emits on commit
        if c.plan == before:
            # search combos and spin sliders show silently; the text field commits on editingFinished
            bound.edited.emit(*(() if field == "lora_targets" else (value,)))
        assert c.plan == next_plan(before, field, value, row.apply), field


def test_choosing_a_framework_fills_its_defaults_as_one_undoable_edit(window):
    e, c = window.editor, window.controller
    before = dataclasses.replace(PLAN, lora_r=64, grad_ckpt=False)
    c.reset_plan(before)
    combo = e.combos["framework"]
    commands = c.undo_stack.count()
    combo.setCurrentIndex(combo.findData("unsloth"))
    assert c.plan == with_framework(before, "unsloth")
    assert (c.plan.loss, c.plan.grad_ckpt, c.plan.activation_offload, c.plan.optimizer, c.plan.lora_r) == (
        "fused-linear-ce", True, True, "adamw-8bit", 16)
    assert c.undo_stack.count() == commands + 1
    # the other rows show the framework's values, and what it cannot run is greyed out
    assert e.combos["loss"].currentData() == "fused-linear-ce" and e.widgets["activation_offload"].isChecked()
    assert not e.widgets["liger"].isEnabled() and not e.widgets["optimizer_in_backward"].isEnabled()
    c.set_plan(dataclasses.replace(c.plan, method="qlora"))   # unsloth runs no peft kbit prep
    assert e.widgets["quant_double"].isEnabled() and not e.widgets["kbit_prep"].isEnabled()
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert c.plan == before and e.combos["framework"].currentData() == "transformers"
    assert not e.widgets["activation_offload"].isChecked() and e.widgets["liger"].isEnabled()


def assert_rows_have_one_sentence_tips(window, group: str, fields) -> None:
    """Each field's row sits in the editor's group box and carries its one-sentence FIELD_TIPS line."""
    box = next(b for b in window.editor.findChildren(QGroupBox) if b.title() == group)
    for field in fields:
        tip = window.editor.widgets[field].toolTip()
        assert tip == FIELD_TIPS[field] and tip.count(". ") == 0 and tip.endswith(".")
        assert box.isAncestorOf(window.editor.widgets[field])


def test_stack_rows_have_one_sentence_tips(window):
    assert_rows_have_one_sentence_tips(window, "Stack", STACK_FIELDS)
    combo = window.editor.combos["framework"]
    assert [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())] == [
        CHOICE_TIPS["framework"][f] for f in FRAMEWORKS]


def test_bad_lora_targets_show_the_core_line(window):
    line = window.editor.widgets["lora_targets"]
    line.setText("q proj, v_proj")
    line.editingFinished.emit()
    with pytest.raises(PlanError) as err:
        parse_lora_targets("q proj, v_proj")
    assert window.editor.error_label.text() == str(err.value)
    assert window.controller.plan.lora_targets == PLAN.lora_targets


def test_totals_follow_dataset_tokens(window):
    window.editor.widgets["dataset_tokens"].setValue(250.0)
    est = settle(window)
    assert window.controller.plan.dataset_tokens == 250e6
    assert est.total is not None and math.isfinite(est.total.hours)
    assert units.hours(est.total.hours) in window.memory_view.summary.text()
