"""The Time view draws what the sweeps say: read back from the painted path, a rejected plan
(nan) is a break in the line, and the OOM zone starts half-way to the first value that does
not fit."""
from __future__ import annotations

import math

import pytest
from PySide6.QtGui import QPainterPath

from napkin_gui.core.sweep import Sweep, Sweeps
from napkin_gui.ui.time_curve_view import TimeCurveView

NAN = math.nan


def _sweep(field: str, values, step, fits, current) -> Sweep:
    tps = tuple(NAN if math.isnan(s) else 1000.0 / s for s in step)
    return Sweep(field, tuple(values), tuple(step), tps, tuple(fits), current, tuple(values))


def test_the_painted_path_breaks_where_a_plan_was_rejected(qtbot):
    view = TimeCurveView()
    qtbot.addWidget(view)
    batch = _sweep("batch_size", (1, 2, 4, 8, 16), (0.1, 0.2, NAN, 0.8, 1.6), (True, True, True, False, False), 2)
    seq = _sweep("seq_len", (512, 1024, 2048), (0.1, 0.2, 0.4), (True, True, True), 1024)
    view.show_sweeps(Sweeps(batch=batch, seq=seq))
    xs, ys = view.curve_data("step", "batch_size")
    assert list(xs) == pytest.approx([1, 2, 8, 16]) and list(ys) == pytest.approx([100, 200, 800, 1600])
    path = view.plots[("step", "batch_size")].curve.path()
    kinds = [path.elementAt(i).type for i in range(path.elementCount())]
    move, line = QPainterPath.ElementType.MoveToElement, QPainterPath.ElementType.LineToElement
    assert kinds == [move, line, move, line]  # two pieces: 1-2 and 8-16
    _, tps = view.curve_data("tps", "batch_size")
    assert list(tps) == pytest.approx([10_000, 5_000, 1_250, 625])
    plot = view.plots[("step", "batch_size")]
    start, _ = plot.oom_region()
    assert plot.oom_zone.isVisible() and start == pytest.approx((math.log10(4) + math.log10(8)) / 2)
    assert view.current_point("step", "batch_size") == pytest.approx((2, 200))
    assert not view.plots[("step", "seq_len")].oom_zone.isVisible()


def test_grpo_plans_offer_curves_against_generations_and_completion_length(qtbot):
    """For a GRPO plan an x-axes choice appears; the drawn paths are core.sweep's GRPO curves
    (read back from the painted path), the OOM zone starts above the exact edge, and an SFT plan
    hides the choice and draws against batch size and sequence length again."""
    from dataclasses import replace
    from test_sweep_grpo import GRPO

    from napkin_gui.core.frontier import axis_of
    from napkin_gui.core.sweep import plan_sweeps, priced_by
    view = TimeCurveView()
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    sft = replace(GRPO, algorithm="sft", reference="none", prompt_len=512, completion_len=256)
    view.show_sweeps(plan_sweeps(sft, priced_by()))
    assert view.axes_row.isHidden() and view.axes == ("batch_size", "seq_len")
    sweeps = plan_sweeps(GRPO, priced_by())
    view.show_sweeps(sweeps)
    assert not view.axes_row.isHidden()
    # GRPO's own axes first: it never reads seq_len, so that curve would be flat
    assert view.axes == ("num_generations", "completion_len")
    flat = {round(s, 9) for s in sweeps.seq.step_seconds}
    assert len(flat) == 1
    for field in view.axes:
        sweep = sweeps.of(field)
        priced = sweep.priced()
        xs, ys = view.curve_data("step", field)
        assert list(xs) == pytest.approx([v for v, *_ in priced])
        assert list(ys) == pytest.approx([s * 1000 for _, s, _, _ in priced])
        _, tps = view.curve_data("tps", field)
        assert list(tps) == pytest.approx([t for _, _, t, _ in priced])
        assert view.current_point("step", field)[0] == pytest.approx(getattr(GRPO, field))
        plot = view.plots[("step", field)]
        start, _ = plot.oom_region()
        step = axis_of(GRPO, field).step
        assert plot.oom_zone.isVisible() and math.log10(sweep.fit_edge) < start < math.log10(sweep.fit_edge + step)
        axis = plot.item.getAxis("bottom")
        assert axis.labelText.startswith({"num_generations": "completions", "completion_len": "completion"}[field])
    view.show_sweeps(plan_sweeps(sft, priced_by()))
    assert view.axes_row.isHidden() and view.axes == ("batch_size", "seq_len")
    view.show_sweeps(sweeps)
    view.axes_choice.setCurrentIndex(0)   # the user picks batch size and sequence length
    assert view.axes == ("batch_size", "seq_len")
    view.show_sweeps(sweeps)   # the next GRPO edit keeps the user's pick
    assert view.axes == ("batch_size", "seq_len")
    xs, _ = view.curve_data("step", "batch_size")
    assert list(xs) == pytest.approx([v for v, *_ in sweeps.batch.priced()])
    view.show_sweeps(plan_sweeps(sft, priced_by()))
    xs, _ = view.curve_data("step", "batch_size")
    assert list(xs) == pytest.approx([1, 2, 4, 8, 16, 32, 64, 128][:len(xs)])
