"""Preference / RL time (reference forwards, GRPO generation) and what the CLI, JSON and report
carry of the algorithm; GRPO plans without batch_size get a valid default."""
import json

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import plan_from_dict
from napkin_gui.core.result_json import estimate_to_dict


def _est(**fields):
    return estimate(plan_from_dict({"model": "llama-3.2-1b", **fields}))


def test_dpo_reference_forward_costs_a_forward():
    with_ref = _est(algorithm="dpo")
    pre = _est(algorithm="dpo", reference="precomputed")
    sft = _est(batch_size=2)   # chosen + rejected: the same 2 sequences through the blocks
    assert pre.time.step_seconds == pytest.approx(sft.time.step_seconds, rel=1e-9)
    # forward + backward ~ 3 forwards: one more forward adds about a third (host overlap aside)
    ratio = with_ref.time.step_seconds / pre.time.step_seconds
    assert 1.15 < ratio < 1.5


def test_kto_runs_three_no_grad_forwards_with_a_reference():
    kto = _est(algorithm="kto", batch_size=2)
    pre = _est(algorithm="kto", batch_size=2, reference="precomputed")
    sft = _est(batch_size=2)
    assert sft.time.step_seconds < pre.time.step_seconds < kto.time.step_seconds


def _generation_seconds(est):
    return {t.name: t.seconds for t in est.time.terms}["generation"] * est.plan.grad_accum


def test_grpo_decoding_is_memory_bound_so_the_batch_decoded_together_matters():
    small = _generation_seconds(_est(algorithm="grpo", batch_size=8, generation="vllm-server"))
    large = _generation_seconds(_est(algorithm="grpo", batch_size=64, generation="vllm-server"))
    # 8x the sequences, far less than 8x the time: every step reads the weights once for all of them
    assert large < 3 * small
    longer = _generation_seconds(_est(algorithm="grpo", batch_size=8, completion_len=512, generation="vllm-server"))
    assert longer == pytest.approx(2 * small, rel=0.15)   # decoding steps dominate: twice the tokens, ~twice the time


def test_grpo_generation_is_in_the_step_and_transformers_pays_the_host():
    hf = _est(algorithm="grpo", batch_size=8)
    vllm = _est(algorithm="grpo", batch_size=8, generation="vllm-server")
    assert _generation_seconds(hf) > _generation_seconds(vllm)   # Python per decoding step vs CUDA graphs
    assert hf.time.optimizer_step_seconds > _generation_seconds(hf)
    no_gen = {t.name for t in _est().time.terms}
    assert "generation" not in no_gen


def test_sft_json_has_no_algorithm_section_and_rl_json_has_one():
    assert "algorithm" not in estimate_to_dict(_est())
    out = estimate_to_dict(_est(algorithm="dpo", batch_size=2))
    algo = out["algorithm"]
    assert algo["algorithm"] == "dpo" and algo["policy_sequences"] == 4 and algo["reference_forward"] is True
    assert [p["phase"] for p in algo["phases"]] == ["policy log-probs", "reference log-probs", "log-probs backward"]
    assert max(p["allocated_bytes"] for p in out["memory"]["timeline"]) == out["memory"]["peak_allocated_bytes"]
    assert algo["generation_seconds"] is None
    grpo = estimate_to_dict(_est(algorithm="grpo", batch_size=8))["algorithm"]
    assert grpo["kv_cache_bytes"] > 0 and grpo["generation_seconds"] > 0 and grpo["phases"][0]["phase"] == "generate"
    json.dumps(grpo)


def test_cli_text_and_report_rows_list_the_phases():
    from napkin_gui.cli import format_estimate
    from napkin_gui.report.text import algorithm_rows
    est = _est(algorithm="grpo", batch_size=8, reference="adapter-off")
    text = format_estimate(est)
    assert "generate" in text and "reference log-probs" in text
    rows = algorithm_rows(est)
    assert [r[0] for r in rows] == ["generate", "reference log-probs", "policy log-probs", "log-probs backward"]
    assert "KV cache" in rows[0][2]
    assert algorithm_rows(_est()) == ()


def test_grpo_plan_without_batch_size_gets_one_group_per_micro_batch():
    plan = plan_from_dict({"model": "llama-3.2-1b", "algorithm": "grpo"})
    assert plan.batch_size == plan.num_generations == 8
    assert plan_from_dict({"model": "x", "algorithm": "grpo", "num_generations": 4}).batch_size == 4
    assert plan_from_dict({"model": "x", "algorithm": "dpo"}).batch_size == 1


def test_grpo_divisibility_error_names_the_fix():
    with pytest.raises(PlanError, match=r"use batch_size 4 \(or a multiple\) or num_generations 6"):
        plan_from_dict({"model": "x", "algorithm": "grpo", "batch_size": 6, "num_generations": 8, "grad_accum": 2})
    with pytest.raises(PlanError, match=r"use batch_size 8 \(or a multiple\)$"):
        plan_from_dict({"model": "x", "algorithm": "grpo", "batch_size": 1})


def test_report_html_has_the_algorithm_section():
    from napkin_gui.report.html import _algorithm_section
    html = "".join(_algorithm_section(_est(algorithm="dpo")))
    assert "DPO phases" in html and "reference log-probs" in html
    assert _algorithm_section(_est()) == []
