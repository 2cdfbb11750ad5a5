"""Hardware comparison: every card x 1/2/4/8, flags, sharding choice, cost, speed, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from napkin_gui.cli import main
from napkin_gui.core import calibration as cal
from napkin_gui.core.compare import COUNTS, compare_hardware, sorted_rows
from napkin_gui.core.estimate import estimate, total_estimate
from napkin_gui.core.gpu_catalog import find_gpu, gpu_catalog
from napkin_gui.core.memory.model_state import model_state
from napkin_gui.core.memory.summary import fits_on, step_peak
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import Plan, save_plan
from napkin_gui.core.time_model import step_time

PLAN = Plan(model="llama-3.1-8b", method="lora", batch_size=4, seq_len=2048, grad_ckpt=True,
            dataset_tokens=1e8)
# compare_hardware prices its rows over numpy arrays, estimate in floats: numpy's float64 power
# (a SIMD pow on AVX-512) may differ from Python's ** by an ulp, so times agree to 1e-12 relative
SAME_TIME = 1e-12


@pytest.fixture(scope="module")
def rows():
    return compare_hardware(PLAN)


def test_every_card_and_count(rows):
    assert len(rows) == len(gpu_catalog()) * len(COUNTS)
    assert {(r.gpu_id, r.n_gpus) for r in rows} == {(g.id, n) for g in gpu_catalog() for n in COUNTS}


def test_one_cheapest_and_one_fastest_among_those_that_fit(rows):
    fitting = [r for r in rows if r.fits]
    cheapest = [r for r in rows if r.cheapest]
    fastest = [r for r in rows if r.fastest]
    assert len(cheapest) == len(fastest) == 1
    assert cheapest[0].fits and fastest[0].fits
    assert cheapest[0].usd_per_million_tokens == min(r.usd_per_million_tokens for r in fitting)
    assert fastest[0].tokens_per_second == max(r.tokens_per_second for r in fitting)


def test_row_matches_a_full_estimate(rows):
    row = next(r for r in rows if r.gpu_id == "h100-80gb-sxm" and r.n_gpus == 1)
    est = estimate(replace(PLAN, gpu="h100-80gb-sxm"))
    assert row.fits == est.memory.fits
    assert row.device_used_bytes == est.memory.device_used_bytes
    assert row.step_seconds == pytest.approx(est.time.step_seconds)
    assert row.hours == pytest.approx(est.total.hours)


def test_cost_is_hours_times_price_times_gpus(rows):
    for r in rows:
        assert r.cost_usd == pytest.approx(r.hours * r.price_usd_per_hour * r.n_gpus)
        assert r.hours == pytest.approx(PLAN.dataset_tokens / r.tokens_per_second / 3600)
    assert total_estimate(replace(PLAN, dataset_tokens=0), 1000.0, 2.0) is None


def test_more_gpus_fewer_hours(rows):
    for gpu in gpu_catalog():
        hours = [r.hours for r in rows if r.gpu_id == gpu.id and r.fits]
        assert hours == sorted(hours, reverse=True)


def test_data_parallel_when_it_fits_fsdp_when_not(rows):
    """llama-3.1-8b LoRA (~16 GB bf16 weights) needs FSDP on 32 GB cards, not on 80 GB ones."""
    h100 = {r.n_gpus: r for r in rows if r.gpu_id == "h100-80gb-sxm"}
    assert h100[1].sharding == "none" and h100[8].sharding == "none"
    rtx = {r.n_gpus: r for r in rows if r.gpu_id == "rtx-5090"}
    assert not rtx[1].fits
    assert rtx[8].sharding == "fsdp" and rtx[8].fits
    assert rtx[8].device_used_bytes < rtx[1].device_used_bytes


def test_no_cards_or_no_counts_no_rows():
    assert compare_hardware(PLAN, counts=()) == ()
    assert compare_hardware(PLAN, gpus=()) == ()


def test_sharding_named_in_the_plan_is_kept():
    rows = compare_hardware(replace(PLAN, sharding="zero2"), counts=(2,), gpus=(find_gpu("a100-80gb-sxm"),))
    assert rows[0].sharding == "zero2"


def test_without_dataset_size_hours_are_none_but_cost_per_token_is_there():
    rows = compare_hardware(replace(PLAN, dataset_tokens=0), counts=(1,))
    assert all(r.hours is None and r.cost_usd is None for r in rows)
    assert all(r.usd_per_million_tokens > 0 for r in rows)


def test_sorting(rows):
    by_cost = sorted_rows(rows, "cost")
    by_time = sorted_rows(rows, "time")
    n_fit = sum(r.fits for r in rows)
    assert all(r.fits for r in by_cost[:n_fit]) and not any(r.fits for r in by_cost[n_fit:])
    costs = [r.usd_per_million_tokens for r in by_cost[:n_fit]]
    assert costs == sorted(costs)
    speeds = [r.tokens_per_second for r in by_time[:n_fit]]
    assert speeds == sorted(speeds, reverse=True)


@pytest.mark.parametrize("plan", [
    PLAN,
    replace(PLAN, method="full", precision="mixed-bf16", grad_ckpt=False),  # DDP or FSDP per card
    replace(PLAN, method="qlora", optimizer="paged-adamw-8bit", batch_size=16),
    replace(PLAN, model="qwen2.5-0.5b", method="full", sharding="zero2", attention="eager"),
])
def test_every_row_is_its_own_full_estimate(plan):
    """compare_hardware shares one memory estimate among cards with the same cuBLAS
    workspace; every row must still equal core.estimate of that card, count and sharding."""
    for row in compare_hardware(plan):
        est = estimate(replace(plan, gpu=row.gpu_id, n_gpus=row.n_gpus, sharding=row.sharding))
        where = f"{row.gpu_id} x{row.n_gpus} {row.sharding}"
        assert row.fits == est.memory.fits, where
        assert row.peak_allocated_bytes == est.memory.peak_allocated_bytes, where
        assert row.device_used_bytes == est.memory.device_used_bytes, where
        assert row.capacity_bytes == est.memory.capacity_bytes, where
        assert row.step_seconds == pytest.approx(est.time.step_seconds, rel=SAME_TIME, abs=0), where
        assert row.tokens_per_second == pytest.approx(est.time.tokens_per_second_total, rel=SAME_TIME, abs=0), where


def calibrated_catalog() -> tuple:
    """The catalog with its H100 calibrated by a probe profile (measured rates, env-h100.json
    figures), the other cards as shipped."""
    profile = cal.CalibrationProfile(
        id="h100-test", gpu_name="NVIDIA H100 80GB HBM3", gpu_id="h100-80gb-sxm", created="2026-11-25T03:45:01Z",
        driver_version="580.95.05", cuda_version="13.0", torch_version="2.11.0", transformers_version="5.17.0",
        peft_version="0.21.0", matmul_tflops=(("bf16", 800.4), ("fp16", 765.9), ("fp32", 51.5)),
        memory_bandwidth_gbps=2970.5, h2d_gbps=48.1, d2h_gbps=51.1)
    cards = tuple(cal.apply_calibration(g, profile) for g in gpu_catalog())
    assert sum(g.calibrated for g in cards) == 1
    return cards


LORA = Plan(model="llama-3.1-8b", method="lora", batch_size=4, seq_len=2048, dataset_tokens=1e8)
QLORA_70B = replace(LORA, model="llama-3.1-70b", method="qlora", optimizer="paged-adamw-8bit", grad_ckpt=True,
                    sharding="fsdp", offload="optimizer+params")
SPREAD = [
    LORA,                                                                        # DDP or FSDP per card
    replace(LORA, grad_ckpt=True, grad_accum=4, dataset_tokens=0),
    replace(LORA, model="qwen2.5-7b", method="full", precision="mixed-bf16", grad_ckpt=True, sharding="fsdp"),
    replace(LORA, model="llama-3.2-1b", method="full", optimizer="adamw-8bit", sharding="zero2", grad_accum=8),
    replace(LORA, model="qwen2.5-0.5b", method="full", precision="fp32", optimizer="sgd"),
    replace(LORA, model="qwen2.5-1.5b", batch_size=1, seq_len=1024),           # all four bounds
    QLORA_70B,
    replace(LORA, model="llama-3.1-70b", method="lora", grad_ckpt=True, grad_accum=2, sharding="zero3",
            offload="optimizer"),
    replace(LORA, model="mixtral-8x7b", method="lora", precision="fp16", grad_ckpt=True, offload="optimizer"),
    replace(LORA, model="gemma-2-9b", method="full", precision="mixed-fp16", optimizer="adafactor",
            sharding="zero3", offload="optimizer+params", attention="eager"),
]


@pytest.mark.parametrize("plan, calibrated", [(p, False) for p in SPREAD] + [(LORA, True), (QLORA_70B, True)])
def test_every_row_prices_as_the_scalar_step_time(plan, calibrated):
    """compare_hardware prices its rows at once over numpy arrays; each row must say what the
    scalar path (step_time in floats) says of that row's plan on that card: same bound and fit,
    same seconds, throughput, cost per token, hours and cost."""
    cards = calibrated_catalog() if calibrated else gpu_catalog()
    by_id = {g.id: g for g in cards}
    spec = resolve_model(plan.model)
    for row in compare_hardware(plan, gpus=cards if calibrated else None):
        gpu, where = by_id[row.gpu_id], f"{row.gpu_id} x{row.n_gpus} {row.sharding}"
        row_plan = replace(plan, gpu=gpu.id, n_gpus=row.n_gpus, sharding=row.sharding)
        state = model_state(spec, row_plan)
        t = step_time(row_plan, spec, gpu, state)
        tps = t.tokens_per_second * row.n_gpus
        total = total_estimate(row_plan, tps, gpu.price_usd_per_hour)
        assert row.bound == t.bound, where
        assert row.fits == fits_on(step_peak(row_plan, spec, gpu, state).reserved_bytes, gpu, row.n_gpus), where
        assert row.step_seconds == pytest.approx(t.step_seconds, rel=SAME_TIME, abs=0), where
        assert row.tokens_per_second == pytest.approx(tps, rel=SAME_TIME, abs=0), where
        assert row.usd_per_million_tokens == pytest.approx(
            gpu.price_usd_per_hour * row.n_gpus / (tps * 3600) * 1e6, rel=SAME_TIME, abs=0), where
        assert (row.hours is None) == (total is None), where
        if total is not None:
            assert row.hours == pytest.approx(total.hours, rel=SAME_TIME, abs=0), where
            assert row.cost_usd == pytest.approx(total.cost_usd, rel=SAME_TIME, abs=0), where


def test_spread_covers_every_bound_sharding_and_offload():
    """The spread above reaches each branch the array path must follow row by row."""
    rows = [r for plan in SPREAD for r in compare_hardware(plan)]
    assert {r.bound for r in rows} >= {"compute", "memory", "overhead", "pcie"}
    assert {r.sharding for r in rows} == {"none", "fsdp", "zero2", "zero3"}
    assert {p.offload for p in SPREAD} == {"none", "optimizer", "optimizer+params"}


def test_estimate_and_cli_do_not_import_numpy():
    """numpy comes in only when compare_hardware prices rows as arrays."""
    code = ("import sys, napkin_gui.cli, napkin_gui.core.compare\n"
            "from napkin_gui.core.estimate import estimate, estimate_point\n"
            "from napkin_gui.core.plan import Plan\n"
            "estimate(Plan(model='llama-3.1-8b')); estimate_point(Plan(model='llama-3.1-8b'))\n"
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_table_and_json(tmp_path, capsys):
    path = tmp_path / "p.napkin.json"
    save_plan(PLAN, path)
    assert main(["compare", str(path)]) == 0
    out = capsys.readouterr().out
    assert "<- cheapest" in out and "<- fastest" in out
    assert "H100" in out and "fsdp" in out
    assert main(["compare", str(path), "--json", "--sort", "time"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == len(gpu_catalog()) * len(COUNTS)
    assert data[0]["fastest"] is True
    assert {"gpu_id", "n_gpus", "sharding", "fits", "step_seconds", "tokens_per_second", "hours",
            "cost_usd", "price_usd_per_hour", "cheapest", "fastest"} <= set(data[0])


def test_cli_bad_plan_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.napkin.json"
    path.write_text('{"model": "llama-3.1-8b", "batch_size": 0}')
    assert main(["compare", str(path)]) == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and len(err.strip().splitlines()) == 1
