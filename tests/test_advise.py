"""Recommendations: candidates, their measured effect, ranking, largest batch, CLI."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from napkin_gui.cli import main
from napkin_gui.core.advise import FITS_ON_CARD, SEARCH_TITLES, advise, largest_batch_that_fits
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan, load_plan, save_plan

TOO_BIG = Plan(model="llama-3.1-8b", method="full", batch_size=4, seq_len=2048, gpu="rtx-4090")
FITS = Plan(model="llama-3.1-8b", method="lora", batch_size=4, seq_len=2048, grad_ckpt=True)


@pytest.mark.parametrize("plan", [TOO_BIG, FITS, Plan(model="qwen2.5-7b", method="qlora", batch_size=2, gpu="l4"),
                                  Plan(model="gemma-2-9b", batch_size=1, seq_len=4096, gpu="a100-40gb-sxm")])
def test_each_advice_is_what_the_estimate_says(plan):
    before = estimate(plan)
    items = advise(plan)
    assert items
    for item in items:
        after = estimate(item.plan)
        assert item.fits_after == after.memory.fits
        assert item.memory_delta_bytes == after.memory.device_used_bytes - before.memory.device_used_bytes
        expected = before.time.tokens_per_second_total / after.time.tokens_per_second_total - 1
        assert item.time_delta_fraction == pytest.approx(expected)
        assert item.reason.startswith(item.title)
        assert "GiB" in item.reason and ("% time" in item.reason or "% tokens/s" in item.reason)


@pytest.mark.parametrize("example", sorted((Path(__file__).parents[1] / "resources" / "examples").glob("*.napkin.json")),
                         ids=lambda p: p.name)
def test_every_example_plan_gets_advice_also_out_of_memory(example):
    """The 70B QLoRA example offloads its parameters under FSDP: its one-card alternatives
    must keep the sharding that offload needs, not fail the whole advice."""
    plan = load_plan(example)
    for changed in (plan, replace(plan, batch_size=plan.batch_size * 6)):
        items = advise(changed)
        assert items, changed
        assert all(estimate(item.plan) for item in items)
    if plan.offload == "optimizer+params":
        cards = [i for i in advise(plan) if "card that fits" in i.title]
        assert cards and all(i.plan.sharding == plan.sharding and i.plan.n_gpus == 1 for i in cards)


def _single_edits(items):
    """The items after the search's (core.advise: those come first, then single edits)."""
    return tuple(a for a in items if a.title not in SEARCH_TITLES)


def test_not_fitting_plan_gets_fixes_first_cheapest_in_time():
    items = _single_edits(advise(TOO_BIG))
    fixing = [a for a in items if a.fits_after]
    assert fixing and items[: len(fixing)] == tuple(fixing)
    deltas = [a.time_delta_fraction for a in fixing]
    assert deltas == sorted(deltas)
    rest = items[len(fixing):]
    assert all(a.memory_delta_bytes < 0 for a in rest)


def test_not_fitting_plan_gets_a_combined_fix_on_its_own_card():
    items = advise(TOO_BIG)
    combined = [a for a in items if " + " in a.title and a.plan.gpu == TOO_BIG.gpu]
    assert combined and combined[0].fits_after
    assert combined[0].plan.grad_ckpt
    # the effective batch is kept: batch x grad_accum
    p = combined[0].plan
    assert p.batch_size * p.grad_accum == TOO_BIG.batch_size * TOO_BIG.grad_accum


def test_checkpointing_saves_memory_and_costs_time():
    plan = replace(FITS, grad_ckpt=False, batch_size=2)
    assert estimate(plan).memory.fits
    on_l40s = replace(plan, gpu="l40s")
    # the one change may come as the search's "fits on this card" (no two items share a plan)
    on = [a for a in advise(on_l40s, limit=50) if a.plan == replace(on_l40s, grad_ckpt=True)]
    assert on and on[0].memory_delta_bytes < 0 and on[0].time_delta_fraction > 0.1
    assert on[0].title in ("gradient checkpointing on", FITS_ON_CARD)
    assert on[0].reason.startswith(f"{on[0].title}: ") and "GiB" in on[0].reason


def test_fitting_plan_gets_speedups_only_fastest_first():
    items = advise(FITS)
    assert all(a.fits_after for a in items)
    items = _single_edits(items)
    speedups = [a for a in items if a.time_delta_fraction < -0.01]
    assert speedups and items[: len(speedups)] == tuple(speedups)
    deltas = [a.time_delta_fraction for a in speedups]
    assert deltas == sorted(deltas)
    assert all(a.cost_delta_fraction < -0.01 for a in items[len(speedups):])


def test_qlora_advice_names_the_card_it_fits_on():
    items = advise(TOO_BIG, limit=50)
    assert any("fits on a" in a.reason for a in items if a.plan.method in ("lora", "qlora"))


def test_largest_batch_that_fits_is_the_edge():
    for plan, gpu in ((FITS, "h100-80gb-sxm"), (FITS, "rtx-4090"), (replace(FITS, method="qlora"), "rtx-4090"),
                      (Plan(model="qwen2.5-0.5b", method="full", seq_len=1024), "l4")):
        best = largest_batch_that_fits(plan, gpu)
        if best:
            assert estimate(replace(plan, gpu=gpu, batch_size=best)).memory.fits
        assert not estimate(replace(plan, gpu=gpu, batch_size=best + 1)).memory.fits


def test_largest_batch_grows_with_the_card_and_shrinks_with_the_model():
    assert largest_batch_that_fits(FITS, "h200-141gb-sxm") > largest_batch_that_fits(FITS, "h100-80gb-sxm")
    lora = largest_batch_that_fits(FITS, "rtx-4090")          # 16 GB of bf16 weights + 128k-vocab logits
    assert largest_batch_that_fits(replace(FITS, method="qlora"), "rtx-4090") > lora
    assert largest_batch_that_fits(replace(FITS, model="llama-3.2-1b"), "rtx-4090") > lora


def test_cli_advise(tmp_path, capsys):
    path = tmp_path / "p.napkin.json"
    save_plan(TOO_BIG, path)
    assert main(["advise", str(path)]) == 0
    out = capsys.readouterr().out
    assert "does NOT fit" in out and " 1. " in out and "GiB" in out
    assert main(["advise", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False and data["largest_batch_that_fits"] == 0
    assert data["advice"][0]["plan"]["model"] == "llama-3.1-8b"
    assert {"title", "reason", "fits_after", "memory_delta_bytes", "time_delta_fraction"} <= set(data["advice"][0])
