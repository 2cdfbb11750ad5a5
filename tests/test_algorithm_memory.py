"""The preference / RL step timelines (core/memory/algorithm_timeline.py): which phases exist, in
which order, and what each adds, against the SFT timeline of the same sequences."""
import dataclasses

from napkin_gui.core.estimate import estimate
from napkin_gui.core.memory import rollout
from napkin_gui.core.model_source import resolve_model
from napkin_gui.core.plan import plan_from_dict
from napkin_gui.core.result import ALLOCATED_COMPONENTS

ACT = ALLOCATED_COMPONENTS.index("activations")
TEMP = ALLOCATED_COMPONENTS.index("temporaries")
WEIGHTS = ALLOCATED_COMPONENTS.index("weights")


def _est(**fields):
    return estimate(plan_from_dict({"model": "llama-3.2-1b", **fields}))


def _row(est, phase):
    return est.memory.phase_values[est.memory.phases.index(phase)]


def test_dpo_runs_chosen_and_rejected_as_one_forward():
    dpo = _est(algorithm="dpo", batch_size=2, seq_len=1024)
    sft = _est(batch_size=4, seq_len=1024)
    # the blocks see 2 x batch_size sequences: the same saved tensors as SFT at batch 4
    assert _row(dpo, "forward L16")[ACT] == _row(sft, "forward L16")[ACT]
    names = dpo.memory.phases
    assert names.index("forward L16") < names.index("policy log-probs") < names.index("reference log-probs") \
        < names.index("log-probs backward") < names.index("backward L16")
    # no [tokens, vocab] logits: TRL's fused head keeps far less than SFT's logits & loss
    assert _row(dpo, "policy log-probs")[ALLOCATED_COMPONENTS.index("logits_loss")] \
        < _row(sft, "logits & loss")[ALLOCATED_COMPONENTS.index("logits_loss")] / 20


def test_reference_kinds():
    adapter_off = _est(algorithm="dpo")
    precomputed = _est(algorithm="dpo", reference="precomputed")
    copy = _est(algorithm="dpo", method="full", reference="copy")
    full_pre = _est(algorithm="dpo", method="full", reference="precomputed")
    assert "reference log-probs" in adapter_off.memory.phases
    assert "reference log-probs" not in precomputed.memory.phases
    # adapter-off reuses the policy's weights; a copy adds the base weights again
    assert _row(adapter_off, "weights loaded")[WEIGHTS] == _row(precomputed, "weights loaded")[WEIGHTS]
    assert _row(copy, "weights loaded")[WEIGHTS] - _row(full_pre, "weights loaded")[WEIGHTS] \
        == 2 * copy.model.total_params
    # the reference forward sits on the policy's saved tensors
    ref = _row(adapter_off, "reference log-probs")
    assert ref[ACT] >= _row(adapter_off, "forward L16")[ACT]
    assert sum(ref) > sum(_row(adapter_off, "forward L16"))


def test_orpo_and_simpo_have_no_reference_and_keep_full_logits():
    orpo, simpo = _est(algorithm="orpo"), _est(algorithm="simpo")
    for est in (orpo, simpo):
        assert "reference log-probs" not in est.memory.phases
    loss = ALLOCATED_COMPONENTS.index("logits_loss")
    vocab, tokens = orpo.model.vocab_size, 2 * 2048
    assert _row(simpo, "policy log-probs")[loss] >= tokens * vocab * 2        # the bf16 logits
    assert _row(orpo, "policy log-probs")[loss] > _row(simpo, "policy log-probs")[loss]   # + NLL on chosen


def test_kto_runs_its_kl_batch_first_under_no_grad():
    kto = _est(algorithm="kto", batch_size=2)
    assert kto.memory.phases[1] == "KL log-probs"
    kl = _row(kto, "KL log-probs")
    assert kl[ACT] == 0 and kl[TEMP] > _row(kto, "weights loaded")[TEMP]


def test_grpo_generate_holds_the_kv_cache():
    grpo = _est(algorithm="grpo", batch_size=8, prompt_len=512, completion_len=1024)
    spec = resolve_model("llama-3.2-1b")
    kv = rollout.kv_cache_bytes(spec, 8, 512 + 1024 - 1, 2)
    assert kv == spec.num_layers * 2 * spec.num_kv_heads * spec.head_dim * 8 * 1535 * 2
    gen = _row(grpo, "generate")
    assert gen[ACT] >= kv
    names = grpo.memory.phases
    assert names[1] == "generate" and "reference log-probs" not in names   # beta = 0: no reference
    with_ref = _est(algorithm="grpo", batch_size=8, reference="adapter-off")
    assert with_ref.memory.phases.index("reference log-probs") < with_ref.memory.phases.index("forward L1")
    # the KV cache grows with the generation batch (batch_size x grad_accum sequences together)
    more = _est(algorithm="grpo", batch_size=8, grad_accum=4, prompt_len=512, completion_len=1024)
    assert _row(more, "generate")[ACT] > 3 * kv


def test_grpo_vllm_colocate_holds_its_share_in_every_phase():
    plain = _est(algorithm="grpo", batch_size=8, generation="vllm-server")
    colo = _est(algorithm="grpo", batch_size=8, generation="vllm-colocate", vllm_gpu_memory_utilization=0.25)
    share = int(0.25 * colo.gpu.memory_bytes)
    assert "old-policy log-probs" in plain.memory.phases   # vLLM: importance-sampling correction
    for a, b in zip(plain.memory.phase_values, colo.memory.phase_values):
        assert b[TEMP] - a[TEMP] == share
    assert colo.memory.peak_allocated_bytes - plain.memory.peak_allocated_bytes == share


def test_policy_forward_plan_is_idempotent():
    from napkin_gui.core.memory.preference import policy_forward_plan
    plan = plan_from_dict({"model": "llama-3.2-1b", "algorithm": "dpo", "batch_size": 3})
    once = policy_forward_plan(plan)
    assert once.batch_size == 6 and policy_forward_plan(once) == once
    grpo = plan_from_dict({"model": "llama-3.2-1b", "algorithm": "grpo", "batch_size": 8})
    assert policy_forward_plan(grpo).seq_len == grpo.prompt_len + grpo.completion_len
    assert dataclasses.replace(grpo, algorithm="sft") != grpo


def test_orpo_head_backward_peaks_at_the_sum_of_its_two_logits_gradients():
    """ORPO on CPU (16-bit row loop): the log-prob branch runs first (higher sequence numbers) and
    frees each row's saved log_softmax; the NLL's LogSoftmaxBackward frees its own; the peak is the
    InputBuffer sum of the two [2B, S, V] gradients: three logits-sized tensors, nothing saved
    (torch/csrc/autograd engine.cpp / input_buffer.cpp). It counted every saved tensor before."""
    from napkin_gui.core.memory.preference import full_logits_memory
    seqs, seq, vocab = 4, 48, 512
    logits = seqs * seq * vocab * 2
    orpo = full_logits_memory(seqs, seq, vocab, 2, nll_on_chosen=True, triton=False)
    assert orpo.backward_peak_bytes == 3 * logits
    simpo = full_logits_memory(seqs, seq, vocab, 2, nll_on_chosen=False, triton=False)
    row = seqs * (seq - 1) * vocab * 2
    assert simpo.backward_peak_bytes == row + logits   # the stacked row gradients and the padded one
