"""GRPO's Time curves (core.sweep): against num_generations (batch scaled to keep the prompts of a
generation batch) and completion_len, every point is what core.estimate says of the plan
core.frontier.axis_plan makes there, and the OOM edge is a plan that fits with the next plan on
the axis out of memory (core.frontier's bisection over the axis's values)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from napkin_gui.core.estimate import estimate
from napkin_gui.core.frontier import (axis_of, axis_plan, largest_batch_size, largest_num_generations,
                                      longest_completion_len)
from napkin_gui.core.plan import check_combination, load_plan
from napkin_gui.core.sweep import plan_sweeps, priced_by

GRPO = load_plan(Path(__file__).resolve().parents[1] / "resources" / "examples" / "qwen2.5-1.5b-grpo-lora.napkin.json")


def _fits(plan) -> bool:
    return estimate(check_combination(plan)).memory.fits


@pytest.mark.parametrize("plan", [GRPO, replace(GRPO, batch_size=4, grad_accum=4, gpu="a100-40gb-sxm")],
                         ids=["example", "batch4-accum4"])
@pytest.mark.parametrize("field", ["num_generations", "completion_len", "batch_size"])
def test_each_curve_point_is_the_estimate_of_its_plan(plan, field):
    sweep = plan_sweeps(plan, priced_by()).of(field)
    assert sweep.current == getattr(plan, field) and len(sweep.priced()) >= 5
    for value, step, tps, fits in zip(sweep.values, sweep.step_seconds, sweep.tokens_per_second, sweep.fits):
        moved = axis_plan(plan, field, value)
        assert moved is not None and getattr(moved, field) == value
        est = estimate(check_combination(moved))
        assert (step, tps, fits) == (est.time.step_seconds, est.time.tokens_per_second, est.memory.fits)
    if field == "num_generations":   # the prompts per generation batch stay: batch_size scales with it
        for value in sweep.values:
            moved = axis_plan(plan, field, value)
            assert moved.batch_size * plan.num_generations == plan.batch_size * value
    # more completions or longer ones cost more time per micro-batch
    steps = [s for s in sweep.step_seconds if math.isfinite(s)]
    assert steps == sorted(steps) and steps[0] < steps[-1]


@pytest.mark.parametrize("field, frontier", [("num_generations", largest_num_generations),
                                             ("completion_len", longest_completion_len),
                                             ("batch_size", largest_batch_size)])
def test_the_oom_edge_on_the_grpo_axes_is_exact(field, frontier):
    sweep = plan_sweeps(GRPO, priced_by()).of(field)
    edge = sweep.fit_edge
    assert edge is not None and sweep.first_oom_value is not None   # the example runs out of memory on every axis
    axis = axis_of(GRPO, field)
    after = axis.value(axis.index(edge) + 1)
    assert _fits(axis_plan(GRPO, field, edge)) and not _fits(axis_plan(GRPO, field, after))
    assert frontier(GRPO) == edge
    # between the samples: neither the last that fits nor the first that does not
    assert edge not in sweep.values


def test_grpo_batch_axis_keeps_the_generation_batch_divisible():
    """batch_size x grad_accum (2) must divide by num_generations (8): the batch axis steps by 4,
    so its edge is a plan TRL accepts."""
    assert axis_of(GRPO, "batch_size").step == 4
    edge = largest_batch_size(GRPO)
    check_combination(replace(GRPO, batch_size=edge))   # raises PlanError if TRL would refuse it
    assert axis_of(GRPO, "num_generations").step == 1   # batch 8 / 8 generations: every count keeps it whole
    odd = replace(GRPO, batch_size=2, grad_accum=4, num_generations=8)
    assert axis_of(odd, "num_generations").step == 4 and axis_plan(odd, "num_generations", 6) is None


def test_sft_sweeps_have_no_grpo_curves():
    sft = replace(GRPO, algorithm="sft", reference="none", prompt_len=512, completion_len=256, num_generations=8)
    sweeps = plan_sweeps(sft, priced_by())
    assert sweeps.generations is None and sweeps.completion is None
    assert axis_of(sft, "batch_size").step == 1


def test_the_background_child_computes_the_grpo_curves():
    """ui/estimate_worker.py run_job (what the window's child runs for Figures' "sweeps"): the GRPO
    curves arrive with the others, equal to the core's."""
    from napkin_gui.ui.estimate_cache import EstimateCache
    from napkin_gui.ui.estimate_worker import run_job
    sweeps = run_job("sweeps", GRPO, None, EstimateCache())
    assert sweeps == plan_sweeps(GRPO, priced_by())
    assert sweeps.generations.fit_edge == 50 and sweeps.completion.fit_edge == 7752
