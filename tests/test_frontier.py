"""core.frontier: the exact largest micro-batch / longest sequence that fit, by bisection on the
model, and the Time view's OOM zone drawn from it (issue 11: the zone started at 11.3, between
the samples 8 and 16, where batch 13 fits)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from napkin_gui.core.estimate import estimate, estimate_point
from napkin_gui.core.frontier import card_frontiers, largest_batch_size, largest_true, longest_seq_len
from napkin_gui.core.plan import Plan

LLAMA_H100 = Plan(model="llama-3.1-8b", method="lora", batch_size=4, seq_len=2048, grad_accum=4, grad_ckpt=True,
                  gpu="h100-80gb-sxm", dataset_tokens=1e8)
SMALL = Plan(model="qwen2.5-0.5b", method="full", batch_size=2, seq_len=1024, gpu="rtx-3080-10gb")


@pytest.mark.parametrize("edge", [0, 1, 2, 3, 7, 8, 13, 100, 4095, 4096, 10_000])
def test_largest_true_finds_the_edge_of_any_monotone_predicate(edge):
    calls = []
    fits = lambda n: calls.append(n) or n <= edge  # noqa: E731
    assert largest_true(fits, 4096) == min(edge, 4096)
    assert len(calls) <= 2 * 13 + 1   # doubling then halving: log2 steps, not a scan
    assert all(1 <= n <= 4096 for n in calls)
    if 8 <= edge < 16:   # between two samples of a curve: bisection inside them only
        calls.clear()
        assert largest_true(fits, 15, known_true=8, known_false=16) == edge
        assert len(calls) <= 3 and all(8 < n < 16 for n in calls)


@pytest.mark.parametrize("plan, gpu", [(LLAMA_H100, None), (LLAMA_H100, "rtx-4090"), (SMALL, None),
                                       (SMALL, "a100-80gb-sxm"), (replace(SMALL, grad_ckpt=True), "l4")])
def test_largest_batch_is_where_estimate_stops_fitting(plan, gpu):
    on = plan if gpu is None else replace(plan, gpu=gpu)
    largest = largest_batch_size(plan, gpu)
    if largest:
        assert estimate(replace(on, batch_size=largest)).memory.fits
    else:
        assert not estimate(replace(on, batch_size=1)).memory.fits
    assert not estimate(replace(on, batch_size=largest + 1)).memory.fits


def test_the_llama_example_fits_13_on_its_h100():
    """The issue's case: the sampled curve put the OOM zone at 11.3; batch 13 fits, 14 does not."""
    assert largest_batch_size(LLAMA_H100) == 13


@pytest.mark.parametrize("plan", [LLAMA_H100, SMALL])
def test_longest_sequence_is_where_estimate_stops_fitting(plan):
    longest = longest_seq_len(plan)
    assert longest > 0
    assert estimate(replace(plan, seq_len=longest)).memory.fits
    assert not estimate(replace(plan, seq_len=longest + 1)).memory.fits


def test_nothing_fits_is_zero_not_one():
    plan = Plan(model="llama-3.1-8b", method="full", batch_size=1, seq_len=2048, gpu="rtx-3080-10gb")
    assert not estimate(plan).memory.fits
    assert largest_batch_size(plan) == 0


def test_card_frontiers_per_card():
    rows = card_frontiers(LLAMA_H100, ("rtx-4090", "h100-80gb-sxm", "b200-180gb"))
    assert [r.gpu_id for r in rows] == ["rtx-4090", "h100-80gb-sxm", "b200-180gb"]
    assert rows[1].largest_batch_size == 13
    assert rows[0].largest_batch_size <= rows[1].largest_batch_size <= rows[2].largest_batch_size
    assert rows[0].longest_seq_len <= rows[1].longest_seq_len <= rows[2].longest_seq_len


def test_sweep_carries_the_exact_edge():
    from napkin_gui.core.sweep import plan_sweeps
    sweeps = plan_sweeps(LLAMA_H100, estimate_point)
    assert sweeps.batch.first_oom_value == 16   # the samples: 8 fits, 16 does not
    assert sweeps.batch.fit_edge == 13
    assert sweeps.seq.fit_edge == longest_seq_len(LLAMA_H100)


def test_oom_zone_starts_above_the_largest_batch_that_fits(qtbot):
    """Drawn from the exact edge: above log10(13) (13 fits) and below log10(14) (14 does not),
    not at the midpoint of the samples 8 and 16 (11.3)."""
    from napkin_gui.core.sweep import plan_sweeps
    from napkin_gui.ui.time_curve_view import TimeCurveView
    view = TimeCurveView()
    qtbot.addWidget(view)
    sweeps = plan_sweeps(LLAMA_H100, estimate_point)
    view.show_sweeps(sweeps)
    for key, plot in view.plots.items():
        if key[1] != "batch_size":
            continue
        assert plot.oom_zone.isVisible()
        start, _ = plot.oom_region()
        assert math.log10(13) < start < math.log10(14)


def test_card_frontiers_of_a_grpo_plan_report_its_own_axes():
    """GRPO never reads seq_len (prompt_len + completion_len): a card's frontier is the longest
    completion and the most completions per prompt, each a plan that fits with the next one out
    of memory, and no "longest sequence" at all."""
    from napkin_gui.core.frontier import axis_plan
    from napkin_gui.core.plan import load_plan
    from pathlib import Path
    plan = load_plan(Path(__file__).resolve().parents[1] / "resources" / "examples" / "qwen2.5-1.5b-grpo-lora.napkin.json")
    (row,) = card_frontiers(plan, ("rtx-4090",))
    assert row.longest_seq_len is None
    assert row.longest_completion_len and row.largest_num_generations
    assert estimate(replace(plan, gpu="rtx-4090", completion_len=row.longest_completion_len)).memory.fits
    assert not estimate(replace(plan, gpu="rtx-4090", completion_len=row.longest_completion_len + 1)).memory.fits
    assert estimate(axis_plan(replace(plan, gpu="rtx-4090"), "num_generations", row.largest_num_generations)).memory.fits
    (sft,) = card_frontiers(LLAMA_H100, ("h100-80gb-sxm",))
    assert sft.longest_seq_len and sft.longest_completion_len is None and sft.largest_num_generations is None
