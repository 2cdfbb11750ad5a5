"""The step timeline of preference and RL fine-tuning (TRL 1.16), phase by phase.

DPO / KTO / ORPO / SimPO (dpo_trainer.py, kto_trainer.py _compute_loss; experimental orpo, cpo):
  weights loaded -> [KTO: KL log-probs, no_grad] -> forward L1..Ln over the concatenated batch ->
  policy log-probs -> reference log-probs (no_grad; the policy's saved tensors are still alive) ->
  log-probs backward -> backward Ln..L1 -> optimizer step -> after zero_grad.
GRPO (grpo_trainer.py _generate_and_score_completions, _compute_loss):
  weights loaded -> generate -> [old-policy log-probs, vLLM] -> [reference log-probs, beta > 0] ->
  forward L1..Ln over prompt + completion -> policy log-probs -> log-probs backward ->
  backward Ln..L1 -> optimizer step -> after zero_grad.
The peak is the largest phase, as for SFT (timeline.step_timeline).
"""
from __future__ import annotations

from typing import NamedTuple

from ..gpu_spec import GpuSpec
from ..model_spec import ModelSpec
from ..plan import Plan
from . import preference as pref
from . import rollout
from .precision import activation_dtypes, logits_element_bytes
from .sharding import GpuState
from .timeline import BlockMemory, final_norm_saved_bytes, phase_names, train_rows

# fp32 [tokens, H] tensors alive at the peak of the final RMSNorm's backward (see algorithm_timeline)
FINAL_NORM_BACKWARD_FP32_TENSORS = 5


class AlgorithmPhases(NamedTuple):
    """What an RL / preference step adds to the SFT picture, for the estimate's algorithm section."""

    names: tuple[str, ...]
    rows: tuple[tuple[int, ...], ...]
    policy_sequences: int            # sequences in one policy forward
    sequence_tokens: int
    scored_tokens: int               # positions with a label (the completion)
    reference_weights_bytes: int     # a frozen copy on the card
    reference_forward: bool          # a reference forward inside each step
    kv_cache_bytes: int              # GRPO with transformers: the DynamicCache at its largest
    generation_sequences: int        # GRPO: decoded together
    vllm_reserved_bytes: int         # GRPO vllm-colocate: its share of the card
    head_formula: str


def _fused_final_norm_bytes(spec: ModelSpec, plan: Plan, dt, tokens: int) -> int:
    """The final norm under TRL's fused head: its fp32 input (+ its 16-bit output for the weight
    gradient when the base trains); the head's hidden copy replaces lm_head's saved input."""
    return tokens * spec.hidden_size * (4 + (dt.stream if dt.base_trainable else 0))


def algorithm_timeline(spec: ModelSpec, plan: Plan, gpu_state: GpuState, gpu: GpuSpec,
                       blocks: tuple[BlockMemory, ...], triton: bool = True) -> AlgorithmPhases:
    """Rows (ALLOCATED_COMPONENTS order) and phase names of one steady step of plan.algorithm.
    triton=False: TRL's log-prob head as it runs without Triton (on CPU: preference.logprob_head)."""
    fwd = pref.policy_forward_plan(plan)
    dt = activation_dtypes(fwd, spec)
    tokens = fwd.batch_size * fwd.seq_len
    logits_bytes = logits_element_bytes(plan)
    full = plan.method == "full"
    head = pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_bytes, full, triton=triton)
    fused = plan.algorithm in pref.FUSED_HEAD_ALGORITHMS
    if fused:
        final_norm = _fused_final_norm_bytes(spec, plan, dt, tokens)
    else:   # the model's own lm_head returns the logits (as for SFT)
        final_norm = final_norm_saved_bytes(fwd, spec, dt)
        final_norm += 2 * spec.vocab_size * spec.hidden_size if dt.autocast else 0
    scores = max((b.scores_bytes for b in blocks), default=0)
    no_grad_peak = pref.no_grad_forward_peak_bytes(spec, fwd.batch_size, fwd.seq_len, dt.stream, dt.linear_out,
                                                   dt.attn, scores)
    ref_head = (pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_bytes, full, grad=False, triton=triton)
                if fused else None)
    no_grad_pass = max(no_grad_peak, ref_head.forward_work_bytes) if ref_head else no_grad_peak
    # the policy itself under no_grad (KTO's KL batch, GRPO's old-policy log-probs): adapters on
    policy_no_grad_pass = no_grad_pass
    if pref.lora_on_mlp(spec, plan):
        with_adapters = pref.no_grad_forward_peak_bytes(spec, fwd.batch_size, fwd.seq_len, dt.stream, dt.linear_out,
                                                        dt.attn, scores, lora_out_bytes=dt.linear_out if dt.autocast else 4)
        policy_no_grad_pass = max(with_adapters, ref_head.forward_work_bytes) if ref_head else with_adapters
    reference = pref.reference_runs_in_step(plan)
    before: list[tuple[int, int, int]] = []
    before_names: list[str] = []
    kv, gen_seqs, vllm = 0, 0, rollout.vllm_reserved_bytes(plan, gpu.memory_bytes)
    if plan.algorithm == "kto":   # the KL batch: batch_size mismatched pairs, policy under no_grad
        before.append((0, 0, policy_no_grad_pass))
        before_names.append("KL log-probs")
    if plan.algorithm == "grpo":
        gen_seqs = rollout.generation_sequences(plan)
        if plan.generation == "transformers":
            kv = rollout.kv_cache_bytes(spec, gen_seqs, rollout.cached_tokens(plan), dt.attn)
            before.append((rollout.generate_peak_bytes(spec, plan, dt.stream, dt.linear_out, dt.attn, logits_bytes),
                           0, 0))
        else:   # vLLM generates in its own reserved share or on other GPUs
            before.append((0, 0, 0))
        before_names.append("generate")
        if plan.generation != "transformers":   # vllm_importance_sampling_correction (default True)
            before.append((0, 0, policy_no_grad_pass))
            before_names.append("old-policy log-probs")
        if reference:
            before.append((0, 0, no_grad_pass))
            before_names.append("reference log-probs")
    head_rows = [(final_norm, head.saved_bytes + head.forward_work_bytes, 0)]
    head_names = ["policy log-probs"]
    if reference and plan.algorithm != "grpo":   # after the policy forward, before its backward
        head_rows.append((final_norm, head.saved_bytes, no_grad_pass))
        head_names.append("reference log-probs")
    # then the final norm's backward (transformers LlamaRMSNorm: fp32 upcast, x * rsqrt(mean(x^2))):
    # its grad through the rsqrt product waits for the variance branch's, while MeanBackward's
    # expand / div, PowBackward's x^1, x 2.0 and x grad make four more fp32 [tokens, H] (CPU
    # live-bytes trace of SimPO's step: its peak). Liger's RMSNorm is one fused kernel.
    norm_backward = 0 if plan.liger else FINAL_NORM_BACKWARD_FP32_TENSORS * tokens * spec.hidden_size * 4
    head_rows.append(max((final_norm, head.backward_peak_bytes, 0), (final_norm, 0, norm_backward), key=sum))
    head_names.append("log-probs backward")
    ref_weights = pref.reference_weights_bytes(plan, gpu_state.weights_bytes)
    rows = train_rows(spec, fwd, gpu_state, gpu.cublas_workspace_bytes, blocks, tuple(head_rows),
                      head.held_bytes, tuple(before), ref_weights)
    if vllm:   # held by vLLM in every phase: counted with the temporaries
        rows = tuple(row[:6] + (row[6] + vllm,) for row in rows)
    names = _names(len(blocks), tuple(before_names), tuple(head_names))
    return AlgorithmPhases(names, rows, fwd.batch_size, fwd.seq_len,
                           fwd.batch_size * pref.scored_tokens_per_sequence(plan), ref_weights, reference,
                           kv, gen_seqs, vllm, head.formula)


def _names(n_blocks: int, before: tuple[str, ...], head: tuple[str, ...]) -> tuple[str, ...]:
    sft = phase_names(n_blocks)   # weights loaded, forward L1..Ln, logits & loss, backward Ln..L1, step, zero_grad
    return (sft[0], *before, *sft[1:n_blocks + 1], *head, *sft[n_blocks + 2:])
