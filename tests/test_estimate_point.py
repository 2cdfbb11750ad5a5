"""core.estimate_point: the figures of a curve point are exactly those of core.estimate."""
import dataclasses
import itertools

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate, estimate_point
from napkin_gui.core.plan import Plan, check_combination
from napkin_gui.ui.estimate_cache import EstimateCache
from napkin_gui.core.sweep import plan_sweeps

from test_calibration import profile

PLANS = [
    Plan(model=model, method=method, batch_size=bs, seq_len=seq, grad_ckpt=ckpt, precision=precision,
         attention=attention, gpu=gpu, n_gpus=n, sharding=sharding)
    for model, method, (bs, seq), ckpt, precision, attention, (gpu, n, sharding) in itertools.product(
        ("llama-3.1-8b", "qwen2.5-0.5b", "mixtral-8x7b", "gemma-2-9b"), ("full", "lora", "qlora"),
        ((1, 512), (8, 4096), (64, 8192)), (True, False), ("bf16", "mixed-bf16"), ("sdpa", "eager"),
        (("h100-80gb-sxm", 1, "none"), ("rtx-4090", 4, "fsdp"), ("a100-80gb-sxm", 8, "zero2")))
][::7]


def _checked(plan):
    try:
        return check_combination(plan)
    except PlanError:
        return None


@pytest.mark.parametrize("plan", [p for p in PLANS if _checked(p)], ids=str)
def test_point_is_the_estimate(plan):
    est = estimate(plan)
    point = estimate_point(plan)
    assert (point.step_seconds, point.tokens_per_second, point.fits) == (
        est.time.step_seconds, est.time.tokens_per_second, est.memory.fits)


def test_point_applies_the_calibration_like_the_estimate():
    plan = Plan(model="llama-3.1-8b", gpu="h100-80gb-sxm")
    calibrated = estimate(plan, calibration=profile())
    assert calibrated.time.step_seconds != estimate(plan).time.step_seconds  # the profile matters
    point = estimate_point(plan, calibration=profile())
    assert (point.step_seconds, point.tokens_per_second, point.fits) == (
        calibrated.time.step_seconds, calibrated.time.tokens_per_second, calibrated.memory.fits)


def test_cache_points_agree_with_estimates_and_reject_like_core():
    cache = EstimateCache()
    plan = Plan(model="qwen2.5-0.5b", batch_size=4)
    point = cache.get_point(plan)  # computed with estimate_point
    est = cache.get(plan)
    assert point == cache.get_point(plan) == (est.time.step_seconds, est.time.tokens_per_second, est.memory.fits)
    assert cache.get_point(dataclasses.replace(plan, model="no-such-model")) is None


def test_sweeps_show_what_estimate_says():
    cache = EstimateCache()
    plan = Plan(model="llama-3.1-8b", batch_size=4, seq_len=2048)
    sweeps = plan_sweeps(plan, cache.get_point)
    for sweep in (sweeps.batch, sweeps.seq):
        for value, step, tps, fits in zip(sweep.values, sweep.step_seconds, sweep.tokens_per_second, sweep.fits):
            est = estimate(dataclasses.replace(plan, **{sweep.field: value}))
            assert (step, tps, fits) == (est.time.step_seconds, est.time.tokens_per_second, est.memory.fits)
    assert not all(sweeps.batch.fits) and any(sweeps.batch.fits)  # the grid reaches out of memory


@pytest.mark.parametrize("plan", [p for p in PLANS if _checked(p)][::3], ids=str)
def test_fits_alone_is_the_estimates_fits(plan):
    """The fit edge's bisection asks only whether a plan fits (core.frontier.plan_fits through
    EstimateCache.get_fits / sweep.fitting_by): the same answer as the estimate, calibrated or not."""
    from napkin_gui.core.sweep import fitting_by
    for calibration in (None, profile()):
        cache = EstimateCache()
        cache.set_calibration(calibration)
        fits = estimate(plan, calibration=calibration).memory.fits
        assert cache.get_fits(plan) == fitting_by(calibration)(plan) == fits


def test_fit_edges_from_fits_alone_equal_those_from_points():
    """plan_sweeps with the cache's get_fits bisects to the same edges as with points (each a
    value that fits, the next on its axis one that does not), for SFT and GRPO plans."""
    from napkin_gui.core.frontier import axis_of
    plans = (Plan(model="llama-3.1-8b", batch_size=4, seq_len=2048),
             Plan(model="qwen2.5-7b", method="full", batch_size=2, seq_len=1024, gpu="a100-80gb-sxm"),
             check_combination(Plan(model="qwen2.5-1.5b", algorithm="grpo", reference="adapter-off", batch_size=8,
                                    num_generations=8, completion_len=1024, gpu="rtx-4090")))
    for plan in plans:
        by_points = plan_sweeps(plan, EstimateCache().get_point)
        cache = EstimateCache()
        by_fits = plan_sweeps(plan, cache.get_point, cache.get_fits)
        assert by_points == by_fits
        edges = [s for s in (by_fits.batch, by_fits.seq, by_fits.generations, by_fits.completion)
                 if s is not None and s.fit_edge is not None]
        assert edges  # the grids reach out of memory
        for s in edges:
            if s.fit_edge == 0:  # not even the axis's first value fits
                assert not any(s.fits)
            elif s.field != "num_generations":
                step = axis_of(plan, s.field).step
                assert estimate(dataclasses.replace(plan, **{s.field: s.fit_edge})).memory.fits
                assert not estimate(dataclasses.replace(plan, **{s.field: s.fit_edge + step})).memory.fits
