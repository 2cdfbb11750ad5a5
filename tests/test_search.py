"""core.search against a brute-force pass over core.estimate, and its figures against estimate."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy
import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate
from napkin_gui.core.gpu_catalog import find_gpu
from napkin_gui.core.plan import FRAMEWORK_LOSSES, OFFLOADS, SHARDINGS, Plan, check_combination
from napkin_gui.core.search import TIE, plan_changes, same_training, search, search_table
from napkin_gui.core.search_space import ADAMW_FAMILY, global_batch, parse_allow

LORA = Plan(model="llama-3.2-1b", method="lora", batch_size=2, grad_accum=2, seq_len=1024, grad_ckpt=True,
            gpu="rtx-3080-10gb", dataset_tokens=1e7)
FULL = Plan(model="qwen2.5-0.5b", method="full", batch_size=4, seq_len=2048, gpu="rtx-3080-10gb",
            dataset_tokens=1e7)
CARDS = ("rtx-3080-10gb", "rtx-4090", "a100-80gb-sxm")
# algorithm plans: GRPO's generation (transformers' generate, host-bound; vLLM, decode memory-bound)
# is priced per optimizer step, the DPO family runs chosen + rejected and a reference forward
GRPO = Plan(model="llama-3.2-1b", method="lora", batch_size=4, grad_accum=1, seq_len=768, grad_ckpt=True,
            gpu="rtx-4090", dataset_tokens=1e7, algorithm="grpo", reference="none", prompt_len=512,
            completion_len=256, num_generations=4)
GRPO_VLLM = replace(GRPO, generation="vllm-server")
DPO = Plan(model="llama-3.2-1b", method="lora", batch_size=2, grad_accum=2, seq_len=1024, grad_ckpt=True,
           gpu="rtx-4090", dataset_tokens=1e7, algorithm="dpo", reference="adapter-off", prompt_len=512)
ALGORITHM_PLANS = [GRPO, GRPO_VLLM, DPO]
ALGORITHM_IDS = ["grpo", "grpo-vllm", "dpo"]


def _stack_choices(plan: Plan) -> list[dict]:
    """Every (loss, liger, activation_offload, optimizer_in_backward) of the plan's framework
    (plan.FRAMEWORK_LOSSES; check_combination throws out what cannot run)."""
    in_backward = (False, True) if plan.framework == "torchtune" else (False,)
    return [{"loss": loss, "liger": liger, "activation_offload": off, "optimizer_in_backward": bwd}
            for loss in FRAMEWORK_LOSSES[plan.framework] for liger in {plan.liger, plan.framework == "transformers"}
            for off in (False, True) for bwd in in_backward]


def _brute_force(plan: Plan, cards: tuple[str, ...], max_gpus: int) -> list[tuple[Plan, float, float, float]]:
    """Every plan that trains the same thing, estimated one by one: (plan, tokens/s, $/token,
    headroom) of those that fit. Independent of search_space: every sharding on every count,
    every stack choice of the framework."""
    sequences = global_batch(plan)
    optimizers = ADAMW_FAMILY if plan.optimizer in ADAMW_FAMILY else (plan.optimizer,)
    out = []
    for gpu, n, sharding, offload, optimizer, ckpt, stack in itertools.product(
            cards, range(1, max_gpus + 1), SHARDINGS, OFFLOADS, optimizers, (False, True), _stack_choices(plan)):
        if sequences % n:
            continue
        for bs in range(1, sequences // n + 1):
            if (sequences // n) % bs:
                continue
            try:
                candidate = check_combination(replace(plan, gpu=gpu, n_gpus=n, sharding=sharding, offload=offload,
                                                      optimizer=optimizer, grad_ckpt=ckpt, batch_size=bs,
                                                      grad_accum=sequences // n // bs, **stack))
            except PlanError:
                continue
            est = estimate(candidate)
            if est.memory.fits:
                tps = est.time.tokens_per_second_total
                usd = est.gpu.price_usd_per_hour * n / 3600 / tps
                out.append((candidate, tps, usd, est.memory.headroom_bytes))
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-8 * max(abs(a), abs(b))


def _front_points(points: list[tuple[float, float, float]]) -> set[tuple[float, float, float]]:
    """The Pareto front (larger tokens/s, smaller $/token, larger headroom) by brute force,
    rounded so that equal points collapse."""
    def key(p):
        return (float(f"{p[0]:.7e}"), float(f"{p[1]:.7e}"), float(p[2]))
    pts = {key(p) for p in points}
    return {p for p in pts if not any(q != p and q[0] >= p[0] and q[1] <= p[1] and q[2] >= p[2] for q in pts)}


# the torchtune plans: its chunked loss, activation offload and (full) optimizer_in_backward
TORCHTUNE_FULL = Plan(model="qwen2.5-0.5b", method="full", optimizer="sgd", batch_size=2, grad_accum=2, seq_len=1024,
                      gpu="rtx-3080-10gb", dataset_tokens=1e7, framework="torchtune", loss="chunked-ce", grad_ckpt=True)


@pytest.mark.parametrize("plan, cards", [(LORA, CARDS), (FULL, CARDS[:2]), (TORCHTUNE_FULL, CARDS)],
                         ids=["lora", "full", "torchtune-full"])
def test_search_equals_brute_force(plan, cards):
    brute = _brute_force(plan, cards, max_gpus=2)
    assert len(brute) > 20   # a space worth searching
    for objective, key in (("fastest", lambda r: (-r[1], r[2])), ("cheapest", lambda r: (r[2], -r[1]))):
        expected = min(brute, key=key)
        got = search(plan, objective, gpus=cards, max_gpus=2, top=1).results[0]
        assert _close(got.tokens_per_second, expected[1])
        assert _close(got.usd_per_hour / 3600 / got.tokens_per_second, expected[2])
    table = search_table(plan, cards, max_gpus=2)
    front = [(table.tokens_per_second[r], table.usd_per_token[r], table.headroom_bytes[r]) for r in table.front()]
    assert _front_points(front) == _front_points([r[1:] for r in brute])


@pytest.mark.parametrize("plan, cards", [(LORA, CARDS)] + [(p, CARDS[::2]) for p in ALGORITHM_PLANS],
                         ids=["lora"] + ALGORITHM_IDS)
def test_every_figure_of_the_table_is_estimates(plan, cards):
    """The array path (pruned memory shifted per card, priced_step over arrays) against
    core.estimate of each row's plan: for GRPO its generation time is in every row (it was
    missing from the search's per-row work: 5024 of 5024 rows off)."""
    table = search_table(plan, cards, max_gpus=2)
    assert len(table) > 50
    for row in range(len(table)):
        est = estimate(table.plan(row))
        assert est.memory.fits
        assert table.device_used_bytes[row] == est.memory.device_used_bytes
        assert _close(table.tokens_per_second[row], est.time.tokens_per_second_total)
        assert _close(table.step_seconds[row], est.time.step_seconds)


@pytest.mark.parametrize("plan", [LORA] + ALGORITHM_PLANS, ids=["lora"] + ALGORITHM_IDS)
def test_results_are_estimate_of_their_plan_and_train_the_same_thing(plan):
    """Every figure the search claims for its best plans (the table it ranked by and the entry
    it prints) is napkin estimate's of the plan it returns."""
    result = search(plan, "cheapest", top=5)
    assert len(result.results) == 5
    table = search_table(plan)
    claimed = {table.plan(int(r)): int(r) for r in table.distinct(table.ranked("cheapest", table.rows()))[:5]}
    assert set(claimed) == {e.plan for e in result.results}
    for entry in result.results:
        est, row = estimate(entry.plan), claimed[entry.plan]
        assert _close(table.tokens_per_second[row], est.time.tokens_per_second_total)
        assert _close(table.step_seconds[row], est.time.step_seconds)
        assert table.device_used_bytes[row] == est.memory.device_used_bytes
        assert _close(table.usd_per_token[row] * est.total.tokens, est.total.cost_usd)
    for entry in (result.baseline, *result.results):
        est = estimate(entry.plan)
        assert entry.fits == est.memory.fits
        assert entry.tokens_per_second == est.time.tokens_per_second_total
        assert entry.step_seconds == est.time.step_seconds
        assert entry.cost_usd == est.total.cost_usd and entry.hours == est.total.hours
        assert entry.device_used_bytes == est.memory.device_used_bytes
        assert entry.capacity_bytes == est.memory.capacity_bytes
        assert same_training(plan, entry.plan)
        assert global_batch(entry.plan) == global_batch(plan)
    assert all(e.fits for e in result.results)
    costs = [e.cost_usd for e in result.results]
    assert costs == sorted(costs)


def test_results_are_at_least_as_good_as_the_plan():
    """The user's plan is in the space: the best is never worse."""
    for plan in (LORA, replace(FULL, gpu="a100-80gb-sxm"), replace(LORA, gpu="a100-80gb-sxm", n_gpus=2, grad_accum=1)):
        base = estimate(plan)
        assert base.memory.fits
        fastest = search(plan, "fastest", top=1).results[0]
        cheapest = search(plan, "cheapest", top=1).results[0]
        assert fastest.tokens_per_second >= base.time.tokens_per_second_total * (1 - TIE)
        assert cheapest.cost_usd <= base.total.cost_usd * (1 + TIE)


def test_pruning_skips_micro_batches_that_cannot_fit(monkeypatch):
    """Full fine-tuning of 1.5B on a 10 GB card: once a micro-batch does not fit, the larger ones of
    that layout are not estimated (only the split without accumulation still is)."""
    from napkin_gui.core import search as search_module
    calls = []
    real = search_module.step_peak
    monkeypatch.setattr(search_module, "step_peak", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    table = search_table(replace(FULL, model="qwen2.5-1.5b", batch_size=16), ("rtx-3080-10gb",), max_gpus=2)
    assert len(calls) < 0.75 * table.configs_in_space   # measured 1964 of 2880 (197 of 360 before the loss kernels)
    assert len(table) > 0


def test_fewest_changes_win_ties():
    """8-bit and paged AdamW of LoRA adapters price alike: the plan's own optimizer is kept."""
    best = search(LORA, "cheapest", top=1).results[0]
    assert best.plan.optimizer == LORA.optimizer


def test_allow_method_and_seq_len():
    plan = replace(FULL, gpu="rtx-3080-10gb")
    fixed = search(plan, "fastest", gpus=("rtx-3080-10gb",), max_gpus=1, top=50)
    assert all(e.plan.method == "full" and e.plan.seq_len == 2048 for e in fixed.results)
    table = search_table(plan, ("rtx-3080-10gb",), max_gpus=1, allow=parse_allow("method,seq_len"))
    free = [table.plan(r) for r in range(len(table))]
    assert {p.method for p in free} == {"full", "lora", "qlora"}
    assert len({p.seq_len for p in free}) > 1
    for p in free:
        assert p.seq_len * global_batch(p) == plan.seq_len * global_batch(plan)
        assert same_training(plan, p, frozenset({"method", "seq_len"}))


def test_changes_name_each_field():
    changed = replace(LORA, grad_ckpt=False, gpu="rtx-4090", batch_size=4, grad_accum=1)
    assert plan_changes(LORA, changed) == ("batch_size: 2 -> 4", "grad_accum: 2 -> 1", "grad_ckpt: true -> false",
                                           "gpu: rtx-3080-10gb -> rtx-4090")
    assert plan_changes(replace(LORA, gpu="NVIDIA GeForce RTX 3080"), LORA) == ()


@pytest.mark.parametrize("kwargs, field", [({"objective": "slowest"}, "objective"), ({"max_gpus": 0}, "max_gpus"),
                                           ({"top": 0}, "top"), ({"gpus": ("nope",)}, "gpu")])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(PlanError, match=field):
        search(LORA, **kwargs)
    with pytest.raises(PlanError, match="allow"):
        parse_allow("method,precision")


def test_search_on_a_calibrated_card_prices_as_calibrated_estimate():
    """A probe profile of one card: the search's figures on it are estimate(..., calibration)'s,
    and differ from the datasheet's."""
    from napkin_gui.core.calibration import CalibrationProfile
    profile = CalibrationProfile(id="h100-test", gpu_name="NVIDIA H100 80GB HBM3", gpu_id="h100-80gb-sxm",
                                 created="2026-11-25T00:00:00Z", matmul_tflops=(("bf16", 300.0),),
                                 memory_bandwidth_gbps=1500.0, cuda_context_bytes=600 * 2**20)
    plan = replace(LORA, gpu="h100-80gb-sxm")
    plain = search_table(plan, ("h100-80gb-sxm", "rtx-4090"), max_gpus=1)
    calibrated = search_table(plan, ("h100-80gb-sxm", "rtx-4090"), max_gpus=1, calibration=profile)
    assert not numpy.allclose(plain.tokens_per_second, calibrated.tokens_per_second[:len(plain)])
    for row in range(len(calibrated)):
        est = estimate(calibrated.plan(row), calibration=profile)
        assert _close(calibrated.tokens_per_second[row], est.time.tokens_per_second_total)
        assert calibrated.device_used_bytes[row] == est.memory.device_used_bytes
    entry = search(plan, "fastest", gpus=("h100-80gb-sxm",), max_gpus=1, top=1, calibration=profile).results[0]
    assert entry.tokens_per_second == estimate(entry.plan, calibration=profile).time.tokens_per_second_total


def test_the_split_without_accumulation_is_tried_past_the_bound():
    """Without accumulation the gradients are not held through the forward: 1.5B full
    fine-tuning at 448 tokens fits a 12 GB card as 2 x 1 but not as 1 x 2 (estimate says so),
    so the bound must not cut micro-batch 2 when micro-batch 1 fails."""
    plan = Plan(model="qwen2.5-1.5b", method="full", optimizer="adamw-8bit", batch_size=2, seq_len=448,
                gpu="rtx-3060-12gb", dataset_tokens=1e6)
    small = replace(plan, batch_size=1, grad_accum=2)
    assert estimate(plan).memory.fits and not estimate(small).memory.fits
    fits = {(e.plan.batch_size, e.plan.grad_accum, e.plan.optimizer, e.plan.grad_ckpt, e.plan.offload)
            for e in search(plan, "fastest", gpus=("rtx-3060-12gb",), max_gpus=1, top=100).results}
    assert (2, 1, "adamw-8bit", False, "none") in fits


# paged optimizer states (bitsandbytes PagedAdamW): CUDA managed memory the driver pages out
PAGED = Plan(model="qwen2.5-1.5b", method="full", optimizer="paged-adamw", batch_size=1, seq_len=1024,
             grad_ckpt=True, gpu="rtx-3080-10gb", dataset_tokens=1e7)


def test_paged_states_that_do_not_fit_live_in_host_ram_and_cross_pcie_each_step():
    """11.5 GiB of fp32 states beside a 7.1 GiB reserve on a 10 GiB card: the run fits, the card
    shows no more than it has (was 17.8 GiB used of 10), 9.3 GiB are in host RAM, and each
    optimizer step pages every state in and out over the host link (UVM's LRU and a cyclic walk)."""
    from napkin_gui.core.memory.summary import outside_torch_bytes
    from napkin_gui.core.memory.model_state import model_state
    from napkin_gui.core.model_source import resolve_model
    from napkin_gui.core.time_model import time_estimate
    from napkin_gui.core.comm import host_bytes_per_second
    from napkin_gui.core.time_efficiency import time_efficiency
    est = estimate(PAGED)
    mem = est.memory
    room = mem.capacity_bytes - outside_torch_bytes(est.gpu) - mem.peak_reserved_bytes
    assert mem.fits and 0 < room < mem.managed_bytes
    assert mem.paged_out_bytes == mem.managed_bytes - room
    assert mem.device_used_bytes == mem.capacity_bytes
    assert mem.paged_traffic_bytes == 2 * mem.managed_bytes
    spec = resolve_model(PAGED.model)
    unpaged = time_estimate(PAGED, spec, est.gpu, model_state(spec, PAGED))
    paged_seconds = 2 * mem.managed_bytes / host_bytes_per_second(est.gpu, time_efficiency())
    assert _close(est.time.optimizer_step_seconds, unpaged.optimizer_step_seconds + paged_seconds)
    assert est.time.bound == "pcie"
    from napkin_gui.core.estimate import estimate_point
    for bs in (1, 2):   # the curves' path: the same step time and fit
        point, full = estimate_point(replace(PAGED, batch_size=bs)), estimate(replace(PAGED, batch_size=bs))
        assert (point.step_seconds, point.fits) == (full.time.step_seconds, full.memory.fits)
    roomy = estimate(replace(PAGED, gpu="rtx-4090"))   # 16 GiB free beside the reserve: all on the card
    assert roomy.memory.paged_out_bytes == roomy.memory.paged_traffic_bytes == 0
    assert roomy.memory.device_used_bytes < roomy.memory.capacity_bytes


def test_paged_plan_fits_only_with_one_tensors_states_on_the_card():
    """bitsandbytes prefetches one parameter's state1 and state2 before its update: micro-batch 2
    leaves 0.92 GiB beside the reserve, less than the embedding's 1.74 GiB of states."""
    from napkin_gui.core.memory.summary import outside_torch_bytes
    for gpu in ("rtx-3080-10gb", "rtx-3060-12gb", "rtx-a4000"):
        for bs in range(1, 6):
            est = estimate(replace(PAGED, gpu=gpu, batch_size=bs))
            mem = est.memory
            beside = mem.peak_reserved_bytes + outside_torch_bytes(est.gpu)
            assert mem.fits == (beside + mem.paged_tensor_bytes <= mem.capacity_bytes)
            assert not mem.fits or mem.device_used_bytes <= mem.capacity_bytes
    tight = estimate(replace(PAGED, batch_size=2))
    room = tight.memory.capacity_bytes - tight.memory.peak_reserved_bytes - outside_torch_bytes(tight.gpu)
    assert 0 < room < tight.memory.paged_tensor_bytes and not tight.memory.fits


def test_search_compare_and_advice_agree_on_paged_plans():
    """Every paged row of the search (8-bit and 32-bit, spilled or not) is estimate's; no plan that
    fits claims more than its card (seen: 121.6 GiB on an 80 GiB card); the hardware table's rows
    and the advice's items are estimate's too."""
    from napkin_gui.core.advise import advise
    from napkin_gui.core.compare import compare_hardware
    table = search_table(PAGED, ("rtx-3080-10gb", "rtx-3060-12gb", "rtx-4090"), max_gpus=2)
    capacity = numpy.array([estimate(replace(PAGED, gpu=g.id)).memory.capacity_bytes for g in table.cards])
    assert numpy.all(table.device_used_bytes <= capacity[table.card_of_row])
    paged = [r for r in range(len(table)) if table.plan(r).optimizer.startswith("paged")]
    spilled = 0
    for row in paged:
        est = estimate(table.plan(row))
        assert est.memory.fits and table.device_used_bytes[row] == est.memory.device_used_bytes
        assert _close(table.tokens_per_second[row], est.time.tokens_per_second_total)
        spilled += est.memory.paged_out_bytes > 0
    assert spilled > 10 and len(paged) - spilled > 10
    for row in compare_hardware(PAGED):
        est = estimate(replace(PAGED, gpu=row.gpu_id, n_gpus=row.n_gpus, sharding=row.sharding))
        assert row.fits == est.memory.fits and row.device_used_bytes == est.memory.device_used_bytes
        assert _close(row.tokens_per_second, est.time.tokens_per_second_total)
    for item in advise(PAGED):
        est = estimate(item.plan)
        assert item.fits_after == est.memory.fits
        assert not item.fits_after or est.memory.device_used_bytes <= est.memory.capacity_bytes


def test_front_of_a_large_table_is_the_pairwise_front(monkeypatch):
    """Past 8 x 1024 rows the front is first thinned by the front of a spread-out sample (its
    points rule out those they beat): the same rows as the pairwise pass over every row."""
    from napkin_gui.core import search as search_module
    table = search_table(LORA)
    assert len(table) > 8 * 1024
    fast = table.front()
    plain = search_module._unbeaten
    monkeypatch.setattr(search_module, "_unbeaten", lambda points, chunk=256, sample=10**9: plain(points, chunk, sample))
    assert numpy.array_equal(fast, table.front())
