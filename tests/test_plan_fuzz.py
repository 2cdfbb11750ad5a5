"""A hostile and a careless user's pass over the plan fields (plan-v1, the training stack and
the preference / RL additions mixed with the old fields): a seeded random loop of valid and
invalid plans through plan_from_dict and estimate, and a small sample through the CLI.

Every plan either gives one PlanError line naming its field, or an estimate that is physical:
no negative or NaN bytes or seconds, the components add up to the peak, fits agrees with what
NVML would show, and three monotonic rules hold (fewer GPUs never lower per-GPU memory under
FSDP / ZeRO, more GRPO completions never lower the peak or the step, lm_head in lora_targets
never lowers the trainable parameters). The loop is deterministic (fixed seed) and short.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import subprocess
import sys

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import PLAN_FIELDS, plan_from_dict, plan_to_dict
from napkin_gui.core.result import ALLOCATED_COMPONENTS

SEED = 20261203
MODELS = ("llama-3.2-1b", "llama-3.1-8b", "mixtral-8x7b", "gemma-2-9b", "qwen2.5-0.5b", "qwen3-30b-a3b",
          "gemma-2-2b", "deepseek-v2-lite", "phi-3-mini", "gpt2", "qwen1.5-moe-a2.7b")
VALID = {
    "method": ["full", "lora", "qlora"],
    "precision": ["bf16", "fp16", "fp32", "mixed-bf16", "mixed-fp16", "fsdp-mixed-bf16"],
    "lora_r": [1, 8, 16, 64],
    "lora_targets": ["all-linear", ["q_proj", "v_proj"], ["q_proj", "lm_head"], ["lm_head"], "q_proj,v_proj,lm_head",
                     ["gate_proj", "up_proj", "down_proj"], ["c_attn"], ["w1", "w2"]],
    "optimizer": ["adamw", "adamw-8bit", "paged-adamw-8bit", "paged-adamw", "sgd", "adafactor"],
    "batch_size": [1, 2, 4, 8, 16, 64],
    "seq_len": [128, 512, 1024, 2048, 8192, 32768],
    "grad_accum": [1, 2, 4, 8],
    "grad_ckpt": [True, False],
    "attention": ["sdpa", "eager", "flash"],
    "gpu": ["h100-80gb-sxm", "rtx-4090", "a100-40gb-sxm", "l4", "t4", "mi300x", "NVIDIA H100 80GB HBM3",
            "rtx-3080-10gb", "b200-180gb"],
    "n_gpus": [1, 2, 3, 4, 8, 16],
    "sharding": ["none", "fsdp", "zero2", "zero3"],
    "offload": ["none", "optimizer", "optimizer+params"],
    "dataset_tokens": [0, 1e6, 1e9],
    "epochs": [1, 2, 0.5],
    "framework": ["transformers", "torchtune", "litgpt", "unsloth"],
    "loss": ["standard", "chunked-ce", "fused-linear-ce", "cut-ce"],
    "liger": [True, False], "compile": [True, False], "activation_offload": [True, False],
    "optimizer_in_backward": [True, False],
    "algorithm": ["sft", "dpo", "orpo", "simpo", "kto", "grpo"],
    "reference": ["copy", "adapter-off", "precomputed", "none"],
    "prompt_len": [1, 64, 256, 512, 1024, 4096],
    "completion_len": [1, 32, 256, 1024, 4096],
    "num_generations": [2, 4, 8, 16, 64],
    "generation": ["transformers", "vllm-colocate", "vllm-server"],
    "vllm_gpu_memory_utilization": [0.1, 0.3, 0.5, 0.9, 0.99],
    "quant_double": [True, False], "kbit_prep": [True, False],
}
JUNK = (None, -1, 0, -0.0, 10**30, 1e308, float("nan"), float("inf"), -float("inf"), "12", "abc", "", [], {},
        True, False, 1.5, 2**63, "LoRA", " bf16 ", ["q_proj", 3], "x" * 5000, {"a": 1}, -10**9, 1e-300)
# what an error line may start with: a plan field, or the plan itself
ERROR_HEADS = set(PLAN_FIELDS) | {"plan"}


def random_plan(rng: random.Random, junk: float) -> dict:
    """A plan dict: each field present with probability 0.45, junk in it with probability `junk`."""
    data = {"model": rng.choice(MODELS) if rng.random() > junk / 3 else rng.choice(JUNK)}
    for field, values in VALID.items():
        if rng.random() < 0.45:
            data[field] = rng.choice(JUNK) if rng.random() < junk else rng.choice(values)
    return data


def outcome(data: dict):
    """('ok', Estimate) or ('error', message): anything but PlanError propagates (a defect)."""
    try:
        return "ok", estimate(plan_from_dict(data))
    except PlanError as err:
        return "error", str(err)


def repaired(data: dict, tries: int = 12):
    """Drop the field each error names until the plan estimates (valid plans that still vary)."""
    kind, got = outcome(data)
    for _ in range(tries):
        field = got.split(":")[0].strip() if kind == "error" else None
        if field not in data or field == "model":
            break
        data = {k: v for k, v in data.items() if k != field}
        kind, got = outcome(data)
    return kind, got


def error_problems(message: str) -> list[str]:
    out = []
    if "\n" in message:
        out.append("more than one line")
    if message.split(":")[0].strip() not in ERROR_HEADS:
        out.append("does not start with the field")
    return out


def physical_problems(est) -> list[str]:
    """What no estimate may say: negative / NaN figures, a peak below a component's live part,
    components that do not add up, fits that disagrees with the bytes NVML would show."""
    m, t, out = est.memory, est.time, []
    comps = {c.name: c.bytes for c in m.components}
    out += [f"{n} = {b}" for n, b in comps.items() if not isinstance(b, int) or b < 0]
    for name in ("peak_allocated_bytes", "peak_reserved_bytes", "device_used_bytes", "capacity_bytes",
                 "host_bytes", "managed_bytes", "paged_out_bytes"):
        value = getattr(m, name)
        if not isinstance(value, int) or value < 0:
            out.append(f"{name} = {value!r}")
    if m.peak_reserved_bytes < m.peak_allocated_bytes:
        out.append("reserved below allocated")
    if sum(comps[n] for n in ALLOCATED_COMPONENTS) != m.peak_allocated_bytes:
        out.append("allocated components do not add up to the peak")
    timeline = m.timeline
    if max(p.allocated_bytes for p in timeline) != m.peak_allocated_bytes:
        out.append("timeline maximum is not the peak")
    if any(v < 0 for p in timeline for v in p.values):
        out.append("negative timeline value")
    if any(max(p.values[i] for p in timeline) > m.peak_allocated_bytes for i in range(len(ALLOCATED_COMPONENTS))):
        out.append("a component's live part above the peak")
    if m.managed_bytes == 0 and m.fits != (m.device_used_bytes <= m.capacity_bytes):
        out.append(f"fits {m.fits} but used {m.device_used_bytes} of {m.capacity_bytes}")
    if m.managed_bytes and m.fits and m.device_used_bytes > m.capacity_bytes:
        out.append("fits with more used than the card holds")
    for name in ("step_seconds", "optimizer_step_seconds", "tokens_per_second", "tokens_per_second_total",
                 "flops_per_step", "mfu"):
        value = getattr(t, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            out.append(f"time.{name} = {value!r}")
    if not (t.step_seconds > 0 and t.tokens_per_second > 0):
        out.append("no time or no throughput")
    if t.optimizer_step_seconds < t.step_seconds * (1 - 1e-12):
        out.append("optimizer step shorter than its micro-batch")
    out += [f"term {x.name} = {x.seconds}" for x in t.terms if not (math.isfinite(x.seconds) and x.seconds >= 0)]
    if est.total is not None and not all(math.isfinite(v) and v >= 0 for v in (est.total.hours, est.total.cost_usd)):
        out.append("total not finite")
    if not 0 < est.trainable_params <= est.total_params * 1.5:
        out.append(f"trainable {est.trainable_params} of {est.total_params}")
    return out


def _variant(plan, **changes):
    try:
        return estimate(plan_from_dict({**plan_to_dict(plan), **changes}))
    except PlanError:
        return None


def monotonic_problems(est) -> list[str]:
    p, out = est.plan, []
    if p.n_gpus > 1 and p.sharding != "none":
        # one GPU under FSDP is NO_SHARD, while each of two holds the gathered root unit, which QLoRA
        # with kbit_prep keeps in fp32 (test_multi_gpu_memory.py test_two_ranks_can_hold_more_than_
        # no_shard_on_one), and offloaded parameters stage a 1/n shard only between peers: those
        # two compare from two GPUs
        low = 2 if (p.sharding == "fsdp" and p.method == "qlora") or p.offload == "optimizer+params" else 1
        for n in sorted({low, p.n_gpus // 2} - {p.n_gpus}):
            fewer = _variant(p, n_gpus=n) if n >= low else None
            if fewer and fewer.memory.peak_reserved_bytes < est.memory.peak_reserved_bytes:
                out.append(f"n_gpus {p.n_gpus} -> {n}: reserved {est.memory.peak_reserved_bytes} -> "
                           f"{fewer.memory.peak_reserved_bytes}")
    if p.algorithm == "grpo":
        for changes in ({"num_generations": 2 * p.num_generations, "batch_size": 2 * p.batch_size},
                        {"completion_len": 2 * p.completion_len}):
            more = _variant(p, **changes)
            if more is None or _unsloth_offloads(more) != _unsloth_offloads(est):
                continue   # unsloth offloads checkpointed inputs only from 512 tokens (frameworks/unsloth.py)
            if more.memory.peak_allocated_bytes < est.memory.peak_allocated_bytes:
                out.append(f"grpo {changes}: peak {est.memory.peak_allocated_bytes} -> {more.memory.peak_allocated_bytes}")
            if more.time.optimizer_step_seconds < est.time.optimizer_step_seconds * (1 - 1e-9):
                out.append(f"grpo {changes}: step {est.time.optimizer_step_seconds} -> {more.time.optimizer_step_seconds}")
    if p.is_lora and p.lora_targets != "all-linear" and "lm_head" not in p.lora_targets:
        with_head = _variant(p, lora_targets=[*p.lora_targets, "lm_head"])
        if with_head and with_head.trainable_params <= est.trainable_params:
            out.append(f"lm_head: trainable {est.trainable_params} -> {with_head.trainable_params}")
    return out


def _unsloth_offloads(est) -> bool:
    from napkin_gui.core.memory.timeline import unsloth_offload
    return unsloth_offload(est.model, est.plan) is not None


def test_random_plans_are_refused_in_one_line_or_estimated_physically():
    rng = random.Random(SEED)
    counts = {"ok": 0, "error": 0}
    problems = []
    for i in range(4000):
        junk = (0.0, 0.0, 0.3)[i % 3]
        data = random_plan(rng, junk)
        kind, got = repaired(data) if junk == 0 else outcome(data)
        counts[kind] += 1
        found = error_problems(got) if kind == "error" else physical_problems(got)
        if kind == "ok" and i % 3 == 0:   # the derived plans cost a few estimates each: a third
            found += monotonic_problems(got)
        problems += [f"{data}: {x}" for x in found]
    assert not problems, "\n".join(problems[:20])
    print(counts)
    assert counts["ok"] > 2000 and counts["error"] > 1000, counts   # the loop reaches both sides


# ---------------------------------------------------------------- defects the loop found
def test_unsloth_grpo_with_short_rollouts_estimates():
    """unsloth_offload judged the plan's seq_len (2048, which GRPO never reads) while the traffic
    and the blocks judged prompt + completion (320 tokens: plain checkpointing), so step_work
    asked for the offloaded layers of an offload that was None (AttributeError)."""
    est = estimate(plan_from_dict({"model": "llama-3.2-1b", "framework": "unsloth", "algorithm": "grpo",
                                   "prompt_len": 64, "completion_len": 256}))
    assert est.plan.activation_offload and est.plan.grad_ckpt
    assert est.memory.host_bytes == 0 and est.time.step_seconds > 0


def test_unsloth_dpo_host_buffers_hold_chosen_and_rejected():
    """DPO runs chosen + rejected as one batch of 2 x batch_size sequences: the pinned host
    buffers of unsloth's offloaded checkpointing are sized by that batch, as the blocks are."""
    from napkin_gui.core.frameworks import unsloth
    from napkin_gui.core.memory.precision import activation_dtypes
    plan = plan_from_dict({"model": "llama-3.2-1b", "framework": "unsloth", "algorithm": "dpo",
                           "seq_len": 1024, "prompt_len": 256, "batch_size": 2})
    est = estimate(plan)
    spec = est.model
    pair = unsloth.offloaded_checkpoint(2 * 2 * 1024, spec.hidden_size, spec.num_layers,
                                        activation_dtypes(plan, spec).stream, 1024)
    assert est.memory.host_bytes == pair.host_bytes


def test_zero2_on_one_gpu_keeps_deepspeeds_reduce_bucket():
    """DeepSpeedZeroOptimizer.backward allocates its ipg_buffer (reduce_bucket_size) whatever the
    world size; without it one GPU held less than each of two (full Phi-3-mini, Adafactor)."""
    plan = {"model": "phi-3-mini", "method": "full", "optimizer": "adafactor", "sharding": "zero2"}
    one, two = (estimate(plan_from_dict({**plan, "n_gpus": n})).memory.peak_reserved_bytes for n in (1, 2))
    assert one >= two, (one, two)


def test_compare_skips_the_counts_a_plan_cannot_run_on():
    """litgpt quantizes on one device only (plan._check_litgpt_quantized): compare_hardware's
    2/4/8-GPU variants were None and the table asked them for .fits_on (AttributeError)."""
    from napkin_gui.core.compare import compare_hardware
    from napkin_gui.core.gpu_catalog import find_gpu
    plan = plan_from_dict({"model": "llama-3.2-1b", "method": "qlora", "framework": "litgpt",
                           "optimizer": "paged-adamw"})
    rows = compare_hardware(plan, gpus=(find_gpu("rtx-4090"), find_gpu("h100-80gb-sxm")))
    assert [(r.gpu_id, r.n_gpus) for r in rows] == [("rtx-4090", 1), ("h100-80gb-sxm", 1)]
    assert rows[0].step_seconds == pytest.approx(estimate(dataclasses.replace(plan, gpu="rtx-4090")).time.step_seconds)


# ---------------------------------------------------------------- the same plans through the CLI
def _cli(*argv: str) -> tuple[int, str, str]:
    """napkin ARGV in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io
    from napkin_gui.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def _cli_plans(n: int) -> list[dict]:
    """n plan dicts, every other one valid (repaired) and the rest careless (junk in fields)."""
    rng, plans = random.Random(SEED + 1), []
    while len(plans) < n:
        data = random_plan(rng, 0.3 if len(plans) % 2 else 0.0)
        if len(plans) % 2 == 0:
            kind, got = repaired(data)
            if kind != "ok":
                continue
            data = plan_to_dict(got.plan)
        plans.append(data)
    return plans


def _one_line_or_result(status: int, err: str) -> str | None:
    if status == 0 and not err:
        return None
    if status == 2 and err.startswith("napkin: ") and len(err.strip().splitlines()) == 1 \
            and "internal error" not in err and err[8:].split(":")[0] in ERROR_HEADS:
        return None
    return f"status {status}: {err.strip()[:300]}"


def test_the_cli_answers_each_plan_with_a_result_or_one_line(tmp_path):
    plans = _cli_plans(40)
    problems = []
    for i, data in enumerate(plans):
        path = tmp_path / f"p{i}.napkin.json"
        path.write_text(json.dumps(data))   # NaN and Infinity as Python writes them: a careless script
        commands = [("estimate", str(path)), ("estimate", "--json", str(path))]
        commands += [("advise", str(path))] if i % 3 == 0 else []
        commands += [("compare", str(path))] if i % 8 == 0 else []
        for command in commands:
            status, out, err = _cli(*command)
            problem = _one_line_or_result(status, err)
            if problem:
                problems.append(f"{' '.join(command[:-1])} {data}: {problem}")
            if command[:2] == ("estimate", "--json") and status == 0:
                json.loads(out, parse_constant=lambda c: problems.append(f"{c} in the JSON of {data}"))
    jsonl = tmp_path / "plans.jsonl"
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in plans))
    status, out, err = _cli("estimate", "--jsonl", str(jsonl))
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and len(rows) == len(plans), (status, err)
    for data, row in zip(plans, rows):
        if "error" in row and "internal error" in row["error"]:
            problems.append(f"jsonl {data}: {row['error']}")
    assert sum("memory" in row for row in rows) >= len(plans) // 2
    assert not problems, "\n".join(problems[:10])


def test_search_results_estimate_as_claimed_and_train_the_same_thing(tmp_path):
    """Each plan `napkin search --top 3 --json` returns gives, under `estimate`, the figures the
    search printed for it, and trains what the plan trains (model, method, algorithm, the
    sequence shape, the global batch)."""
    global_batch = lambda p: p.batch_size * p.grad_accum * p.n_gpus   # noqa: E731
    shape = lambda p: (p.model, p.method, p.algorithm, p.seq_len, global_batch(p), p.prompt_len,   # noqa: E731
                       p.completion_len, p.num_generations)
    problems, checked = [], 0
    for i, data in enumerate(_cli_plans(20)[::2]):
        path = tmp_path / f"p{i}.napkin.json"
        path.write_text(json.dumps({**data, "dataset_tokens": 1e8}))
        status, out, err = _cli("search", "--top", "3", "--json", str(path))
        assert status == 0, err
        base = plan_from_dict(json.loads(path.read_text()))
        for entry in json.loads(out)["results"]:
            plan = plan_from_dict(entry["plan"])
            est = estimate(plan)
            checked += 1
            claimed = (entry["fits"], entry["device_used_bytes"], entry["capacity_bytes"])
            if shape(plan) != shape(base):
                problems.append(f"{data}: trains {shape(plan)}, not {shape(base)}")
            if claimed != (est.memory.fits, est.memory.device_used_bytes, est.memory.capacity_bytes) or not all(
                    math.isclose(a, b, rel_tol=1e-9) for a, b in ((entry["step_seconds"], est.time.step_seconds),
                                                                  (entry["tokens_per_second"], est.time.tokens_per_second_total),
                                                                  (entry["cost_usd"], est.total.cost_usd))):
                problems.append(f"{entry['plan']}: search says {entry}, estimate says {est.time.step_seconds}, "
                                f"{est.memory.device_used_bytes}")
            if not entry["fits"]:
                problems.append(f"{entry['plan']}: returned but does not fit")
    assert checked >= 10 and not problems, (checked, problems[:5])


VLLM_COLOCATE = {"model": "llama-3.2-1b", "algorithm": "grpo", "generation": "vllm-colocate"}


def test_compare_moves_vllms_share_with_the_card():
    """vLLM colocated reserves gpu_memory_utilization x the card (rollout.vllm_reserved_bytes):
    compare moved a step to another card by the cuBLAS workspaces only, so a 24 GB card showed
    the 80 GB card's 40 GB vLLM share (60.1 GiB used where estimate says 32.3)."""
    from napkin_gui.core.compare import compare_hardware
    from napkin_gui.core.gpu_catalog import find_gpu
    plan = plan_from_dict({**VLLM_COLOCATE, "vllm_gpu_memory_utilization": 0.5})
    cards = tuple(find_gpu(g) for g in ("h100-80gb-sxm", "rtx-4090", "b200-180gb"))
    for row in compare_hardware(plan, counts=(1, 2), gpus=cards):
        est = estimate(dataclasses.replace(plan, gpu=row.gpu_id, n_gpus=row.n_gpus, sharding=row.sharding))
        assert (row.fits, row.device_used_bytes) == (est.memory.fits, est.memory.device_used_bytes), row.gpu_id


def test_search_never_returns_a_plan_vllm_leaves_no_room_for():
    """At gpu_memory_utilization 0.99 vLLM takes nearly every card; the search judged the other
    cards by the first card's share and returned B200 plans estimate says do not fit."""
    from napkin_gui.core.search import search
    plan = plan_from_dict({**VLLM_COLOCATE, "gpu": "rtx-4070-ti-super", "batch_size": 8, "grad_accum": 32,
                           "completion_len": 1024, "vllm_gpu_memory_utilization": 0.99})
    results = search(plan, "fastest", top=3).results
    assert results
    for entry in results:
        est = estimate(entry.plan)
        assert entry.fits and est.memory.fits and entry.device_used_bytes == est.memory.device_used_bytes
