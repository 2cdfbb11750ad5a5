"""Preference / RL memory mechanisms against TRL 1.16 and transformers themselves, on CPU.

Tiny llama models (random weights, nothing downloaded), TRL's own fused LM head, ORPO's own
concatenated_forward, transformers' own generate: autograd's saved tensors (saved_tensors_hooks)
and the DynamicCache's tensors, compared with napkin's figures.
"""
import types

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from saved_tensors import saved_storage_bytes as saved_bytes  # noqa: E402
from test_activations_real_torch import H, VOCAB, toy_model, toy_spec  # noqa: E402

from napkin_gui.core.memory import preference as pref  # noqa: E402
from napkin_gui.core.memory import rollout  # noqa: E402
from napkin_gui.core.memory.precision import activation_dtypes, logits_element_bytes  # noqa: E402
from napkin_gui.core.memory.timeline import block_memories, final_norm_saved_bytes  # noqa: E402
from napkin_gui.core.plan import Plan  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _plan(algorithm: str, method: str, precision: str, batch: int, seq: int, prompt: int) -> Plan:
    reference = {"dpo": "adapter-off" if method == "lora" else "copy"}.get(algorithm, "none")
    return Plan(model="toy", method=method, precision=precision, lora_r=8, lora_dropout=0.0, batch_size=batch,
                seq_len=seq, prompt_len=prompt, algorithm=algorithm, reference=reference, attention="eager")


def _blocks_bytes(plan: Plan) -> int:
    return sum(b.saved_bytes for b in block_memories(toy_spec(), plan))


@pytest.mark.parametrize("method, precision", [("lora", "bf16"), ("full", "fp32")])
def test_dpo_forward_saves_what_napkin_counts(method, precision):
    """DPO's concatenated chosen + rejected forward through TRL's fused log-prob head
    (add_fused_lm_head, ChunkedLogProbFunction), labels -100 on the prompt."""
    from trl.trainer.utils import add_fused_lm_head
    model = toy_model(DTYPES[precision], "eager", 8 if method == "lora" else None)
    base = model.get_base_model() if method == "lora" else model
    add_fused_lm_head(base, outputs=("log_probs", *pref.FUSED_OUTPUTS["dpo"]))
    plan = _plan("dpo", method, precision, batch=2, seq=64, prompt=24)
    seqs = pref.policy_sequences(plan)
    assert seqs == 4
    ids = torch.randint(0, VOCAB, (seqs, plan.seq_len))
    labels = ids.masked_fill(torch.arange(plan.seq_len) < plan.prompt_len, -100)
    got = saved_bytes(model, lambda: model(input_ids=ids, labels=labels, fused_lm_head=True))
    # CPU: no Triton, so TRL scores every position (compact=False); CUDA scores the completion only
    assert _policy_saved_bytes(plan) == pytest.approx(got, rel=0.03)


def test_fused_head_scores_only_the_completion_on_cuda():
    """compact=True projects hidden_states[mask]: the saved hidden copy shrinks with prompt_len."""
    plan = _plan("dpo", "lora", "bf16", batch=1, seq=2048, prompt=1536)
    spec = toy_spec()
    cuda = pref.logprob_head(spec, plan, 2, 2, 2, False, triton=True)
    cpu = pref.logprob_head(spec, plan, 2, 2, 2, False, triton=False)
    assert cuda.saved_bytes < cpu.saved_bytes / 3
    # hidden copy (2 B x H) + int64 target + fp32 log_z + fp32 entropy per scored token, + the bool mask
    scored = 2 * 512
    assert cuda.saved_bytes == scored * (2 * H + 16) + 2 * 2047


def _paired_batch_and_stub(cls, plan: Plan):
    """A chosen / rejected batch of plan's shape (labels -100 on the prompt) and a stub of what
    ORPOTrainer / CPOTrainer.concatenated_forward (cls's own) reads of the trainer."""
    b, s = plan.batch_size, plan.seq_len
    ids = torch.randint(0, VOCAB, (2, b, s))
    labels = ids.masked_fill(torch.arange(s) < plan.prompt_len, -100)
    batch = {"chosen_input_ids": ids[0], "rejected_input_ids": ids[1],
             "chosen_attention_mask": torch.ones(b, s, dtype=torch.long),
             "rejected_attention_mask": torch.ones(b, s, dtype=torch.long),
             "chosen_labels": labels[0], "rejected_labels": labels[1]}
    stub = types.SimpleNamespace(is_encoder_decoder=False, padding_value=0, pad_token_id=0, label_pad_token_id=-100,
                                 aux_loss_enabled=False, cpo_alpha=0.0, loss_type="simpo",
                                 accelerator=types.SimpleNamespace(device=torch.device("cpu")),
                                 concatenated_inputs=cls.concatenated_inputs, get_batch_logps=cls.get_batch_logps)
    return batch, stub


@pytest.mark.parametrize("algorithm, precision", [("orpo", "bf16"), ("simpo", "fp32")])
def test_orpo_simpo_concatenated_forward_saves_what_napkin_counts(algorithm, precision):
    """ORPO's own concatenated_forward (full logits, selective_log_softmax, NLL on chosen); SimPO
    is CPOTrainer's with cpo_alpha=0 (no NLL): the same forward without the NLL term."""
    from trl.experimental.cpo.cpo_trainer import CPOTrainer
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer
    cls = ORPOTrainer if algorithm == "orpo" else CPOTrainer
    model = toy_model(DTYPES[precision], "eager", 8)
    plan = _plan(algorithm, "lora", precision, batch=2, seq=48, prompt=16)
    batch, stub = _paired_batch_and_stub(cls, plan)
    got = saved_bytes(model, lambda: cls.concatenated_forward(stub, model, batch))

    spec, fwd = toy_spec(), pref.policy_forward_plan(plan)
    dt = activation_dtypes(fwd, spec)
    head = pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_element_bytes(plan), False, triton=False)
    expected = _blocks_bytes(fwd) + final_norm_saved_bytes(fwd, spec, dt) + head.saved_bytes
    assert expected == pytest.approx(got, rel=0.03)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_kv_cache_matches_transformers_dynamic_cache(precision):
    """generate()'s DynamicCache after prompt_len + completion_len tokens, byte for byte."""
    model = toy_model(DTYPES[precision], "sdpa", None).eval()
    plan = Plan(model="toy", precision=precision, algorithm="grpo", batch_size=4, prompt_len=12,
                completion_len=9, num_generations=4)
    ids = torch.randint(1, VOCAB, (rollout.generation_sequences(plan), plan.prompt_len))
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=plan.completion_len,
                             min_new_tokens=plan.completion_len, do_sample=True, return_dict_in_generate=True,
                             pad_token_id=0)
    cache = out.past_key_values
    got = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    spec = toy_spec()
    dt = activation_dtypes(plan, spec)
    assert rollout.kv_cache_bytes(spec, ids.shape[0], rollout.cached_tokens(plan), dt.attn) == got


@pytest.mark.parametrize("method", ["lora", "full"])
def test_reference_and_trainable_counts_are_exact(method):
    """A frozen copy (create_model_from_path with the policy's dtype) holds every base parameter of
    the policy; napkin's reference bytes and trainable count equal the real models'. adapter-off and
    precomputed hold none."""
    from napkin_gui.core.memory.model_state import model_state
    from napkin_gui.core.memory.sharding import gpu_state
    policy = toy_model(torch.bfloat16, "sdpa", 8 if method == "lora" else None)
    ref = toy_model(torch.bfloat16, "sdpa", None)
    ref.requires_grad_(False)
    plan = _with(_plan("dpo", method, "bf16", 1, 64, 16), reference="copy")
    state = model_state(toy_spec(), plan)
    ref_bytes = pref.reference_weights_bytes(plan, gpu_state(state, plan).weights_bytes)
    assert ref_bytes == sum(p.nbytes for p in ref.parameters())
    assert state.trainable_params == sum(p.numel() for p in policy.parameters() if p.requires_grad)
    if method == "lora":
        assert pref.reference_weights_bytes(_with(plan, reference="adapter-off"), ref_bytes) == 0
    assert pref.reference_weights_bytes(_with(plan, reference="precomputed"), ref_bytes) == 0


def _with(plan: Plan, **changes) -> Plan:
    import dataclasses
    return dataclasses.replace(plan, **changes)


class _LiveBytes:
    """Peak bytes of storages created inside the block and still referenced, checked after every
    aten op (TorchDispatchMode): what a caching allocator would hold allocated, on CPU. A storage
    leaves the count when the last tensor of it seen here dies (a weakref callback), so each op
    costs its outputs, not a scan of everything alive (generate runs ~100 ops per token)."""

    def __init__(self, model):
        import weakref
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves
        skip = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        storages: dict[int, list] = {}   # data_ptr -> [nbytes, tensors alive, their weakrefs]
        self.peak = self.live = 0
        outer = self

        def dead(ptr: int, entry: list) -> None:
            entry[1] -= 1
            if entry[1] == 0 and storages.get(ptr) is entry:
                del storages[ptr]
                outer.live -= entry[0]

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        storage = t.untyped_storage()
                        ptr = storage.data_ptr()
                        if ptr in skip or not storage.nbytes():
                            continue
                        entry = storages.get(ptr)
                        if entry is None:
                            entry = storages[ptr] = [storage.nbytes(), 0, []]
                            outer.live += entry[0]
                        entry[1] += 1
                        entry[2].append(weakref.ref(t, lambda _, ptr=ptr, entry=entry: dead(ptr, entry)))
                outer.peak = max(outer.peak, outer.live)
                return out

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


@pytest.mark.parametrize("precision, attn", [("bf16", "sdpa"), ("bf16", "eager"), ("fp32", "eager")])
def test_reference_forward_peak_live_bytes(precision, attn):
    """The reference phase of DPO with adapter-off: the PEFT policy under use_adapter(model, None)
    and torch.no_grad through TRL's fused head (dpo_trainer.py _compute_loss). The backbone alone
    checks the block's no_grad peak; the whole pass adds the head's mm_buf [n, 32768] tile.
    (fp32 sdpa is left out: CPU runs it with the flash kernel, CUDA with the math kernel napkin
    prices.)"""
    from trl.trainer.utils import add_fused_lm_head, use_adapter
    model = toy_model(DTYPES[precision], attn, 8)
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs",))
    plan = _with(_plan("dpo", "lora", precision, batch=2, seq=64, prompt=24), attention=attn)
    fwd = pref.policy_forward_plan(plan)
    ids = torch.randint(0, VOCAB, (fwd.batch_size, fwd.seq_len))
    labels = ids.masked_fill(torch.arange(fwd.seq_len) < plan.prompt_len, -100)
    with torch.no_grad(), use_adapter(model, None):
        with _LiveBytes(model) as backbone:
            model.get_base_model().model(input_ids=ids, use_cache=False)
        with _LiveBytes(model) as whole:
            model(input_ids=ids, labels=labels, fused_lm_head=True)
    assert _no_grad_block_bytes(plan) == pytest.approx(backbone.peak, rel=0.03)
    assert _no_grad_pass_bytes(plan) == pytest.approx(whole.peak, rel=0.03)


# --- what the module's first tests leave out: KTO, DPO's reference as a frozen copy or
# precomputed, and GRPO's phases (generate, reference / old-policy log-probs, the policy's
# forward over prompt + completion), each through TRL's own code on CPU

def _no_grad_block_bytes(plan: Plan, adapters_on: bool = False) -> int:
    """napkin's no_grad peak of the decoder blocks over the policy's sequences (adapters_on: the
    policy itself, its LoRA branches running)."""
    spec, fwd = toy_spec(), pref.policy_forward_plan(plan)
    dt = activation_dtypes(fwd, spec)
    scores = max(b.scores_bytes for b in block_memories(spec, fwd))
    return pref.no_grad_forward_peak_bytes(spec, fwd.batch_size, fwd.seq_len, dt.stream, dt.linear_out, dt.attn, scores,
                                           lora_out_bytes=4 if adapters_on and pref.lora_on_mlp(spec, plan) else 0)


def _no_grad_pass_bytes(plan: Plan, adapters_on: bool = False) -> int:
    """napkin's transient of a no_grad log-prob pass (algorithm_timeline: the block's no_grad peak
    or the fused head's, whichever is larger), for CPU's head (triton=False)."""
    spec, fwd = toy_spec(), pref.policy_forward_plan(plan)
    dt = activation_dtypes(fwd, spec)
    head = pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_element_bytes(plan), plan.method == "full",
                             grad=False, triton=False)
    return max(_no_grad_block_bytes(plan, adapters_on), head.forward_work_bytes)


def _policy_saved_bytes(plan: Plan) -> int:
    """napkin's saved tensors of the policy forward through TRL's fused head (CPU: triton=False)."""
    spec, fwd = toy_spec(), pref.policy_forward_plan(plan)
    dt = activation_dtypes(fwd, spec)
    norm = fwd.tokens_per_micro_batch * H * (4 + (dt.stream if dt.base_trainable else 0))
    head = pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_element_bytes(plan), plan.method == "full",
                             triton=False)
    return _blocks_bytes(fwd) + norm + head.saved_bytes


def _grpo_plan(method: str = "lora", reference: str = "adapter-off", generation: str = "transformers") -> Plan:
    return Plan(model="toy", method=method, precision="bf16", lora_r=8, lora_dropout=0.0, batch_size=4,
                algorithm="grpo", reference=reference, prompt_len=20, completion_len=44, num_generations=4,
                generation=generation, attention="sdpa")


def _grpo_logps(model, plan: Plan, ids, mask, **kwargs):
    """GRPOTrainer._get_per_token_logps_and_entropies itself (without its profiling wrapper), on a
    stub of what it reads of the trainer."""
    import contextlib

    from trl.trainer.grpo_trainer import GRPOTrainer
    stub = types.SimpleNamespace(accelerator=types.SimpleNamespace(autocast=contextlib.nullcontext))
    return GRPOTrainer._get_per_token_logps_and_entropies.__wrapped__(
        stub, model, ids, mask, plan.completion_len, batch_size=plan.batch_size, **kwargs)


def _grpo_batch(plan: Plan):
    seqs = pref.policy_sequences(plan)
    ids = torch.randint(1, VOCAB, (seqs, plan.prompt_len + plan.completion_len))
    return ids, torch.ones_like(ids)


def test_kto_forward_and_kl_batch_match_napkin():
    """KTO (kto_trainer.py): batch_size unpaired completions through the fused head with its three
    outputs, and before them KTOTrainer._compute_kl_logps's KL batch (each prompt with another
    completion) under no_grad: its peak live bytes are napkin's "KL log-probs" transient."""
    from trl.trainer.kto_trainer import KTOTrainer
    from trl.trainer.utils import add_fused_lm_head
    model = toy_model(torch.bfloat16, "sdpa", 8)
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", *pref.FUSED_OUTPUTS["kto"]))
    plan = _plan("kto", "lora", "bf16", batch=4, seq=64, prompt=24)
    plan = _with(plan, reference="adapter-off", attention="sdpa")
    assert pref.policy_sequences(plan) == plan.batch_size   # unpaired: no chosen + rejected doubling
    ids = torch.randint(1, VOCAB, (plan.batch_size, plan.seq_len))
    completion = (torch.arange(plan.seq_len) >= plan.prompt_len).long().expand_as(ids)
    kl_ids = torch.cat((ids[:, :plan.prompt_len], ids.roll(1, 0)[:, plan.prompt_len:]), dim=1)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion,
             "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(ids), "KL_completion_mask": completion,
             "label": torch.tensor([True, False, True, False])}
    stub = types.SimpleNamespace(calculate_KL=True)
    with torch.no_grad(), _LiveBytes(model) as blocks:
        model.get_base_model().model(input_ids=kl_ids, attention_mask=batch["KL_attention_mask"], use_cache=False)
    with _LiveBytes(model) as kl:
        KTOTrainer._compute_kl_logps(stub, model, batch)
    labels = ids.masked_fill(completion == 0, -100)
    got = saved_bytes(model, lambda: model(input_ids=ids, attention_mask=batch["attention_mask"], labels=labels,
                                           use_cache=False, fused_lm_head=True))
    assert _no_grad_block_bytes(plan, adapters_on=True) == pytest.approx(blocks.peak, rel=0.03)
    assert _no_grad_pass_bytes(plan, adapters_on=True) == pytest.approx(kl.peak, rel=0.03)
    assert _policy_saved_bytes(plan) == pytest.approx(got, rel=0.03)


def test_dpo_reference_as_a_frozen_copy_peaks_as_napkin_counts():
    """reference copy: a second model (create_model_from_path, policy dtype, requires_grad off) with
    TRL's default fused head (log_probs only), run by dpo_trainer.py _compute_loss under no_grad on
    the concatenated chosen + rejected batch; precomputed runs no reference in the step."""
    from trl.trainer.utils import add_fused_lm_head
    ref = toy_model(torch.bfloat16, "sdpa", None).eval().requires_grad_(False)
    add_fused_lm_head(ref)
    plan = _with(_plan("dpo", "lora", "bf16", batch=2, seq=64, prompt=24), reference="copy", attention="sdpa")
    fwd = pref.policy_forward_plan(plan)
    ids = torch.randint(0, VOCAB, (fwd.batch_size, fwd.seq_len))
    labels = ids.masked_fill(torch.arange(fwd.seq_len) < plan.prompt_len, -100)
    with torch.no_grad():
        with _LiveBytes(ref) as blocks:
            ref.model(input_ids=ids, use_cache=False)
        with _LiveBytes(ref) as live:
            ref(input_ids=ids, labels=labels, use_cache=False, fused_lm_head=True)
    assert _no_grad_block_bytes(plan) == pytest.approx(blocks.peak, rel=0.03)
    assert _no_grad_pass_bytes(plan) == pytest.approx(live.peak, rel=0.03)
    assert pref.reference_runs_in_step(plan) and pref.no_grad_forwards(plan) == 1
    pre = _with(plan, reference="precomputed")
    assert not pref.reference_runs_in_step(pre) and pref.no_grad_forwards(pre) == 0


def test_grpo_policy_forward_over_prompt_and_completion_saves_what_napkin_counts():
    """grpo_trainer.py _compute_loss -> _get_per_token_logps_and_entropies (TRL's own) with
    compute_entropy: the policy over prompt + completion, labels -100 on the prompt
    (logits_to_keep = completion_len), fused head outputs log_probs and entropy."""
    from trl.trainer.utils import add_fused_lm_head
    model = toy_model(torch.bfloat16, "sdpa", 8)
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", *pref.FUSED_OUTPUTS["grpo"]))
    plan = _grpo_plan()
    ids, mask = _grpo_batch(plan)
    assert pref.policy_forward_plan(plan).seq_len == ids.shape[1] == 64
    got = saved_bytes(model, lambda: _grpo_logps(model, plan, ids, mask, compute_entropy=True))
    assert _policy_saved_bytes(plan) == pytest.approx(got, rel=0.03)


@pytest.mark.parametrize("phase", ["reference adapter-off", "reference copy", "old-policy"])
def test_grpo_log_prob_phases_peak_as_napkin_counts(phase):
    """GRPO's no_grad passes over the generation batch (grpo_trainer.py
    _generate_and_score_completions, TRL's own _get_per_token_logps_and_entropies): the reference
    as the policy under use_adapter(model, None) or as a frozen copy with TRL's default head, and
    the old-policy log-probs (vLLM's importance-sampling correction: the policy itself)."""
    from trl.trainer.utils import add_fused_lm_head, use_adapter
    reference = phase.split()[1] if phase.startswith("reference") else "none"
    plan = _grpo_plan(reference=reference, generation="transformers" if reference != "none" else "vllm-server")
    if reference == "copy":
        model = toy_model(torch.bfloat16, "sdpa", None).eval().requires_grad_(False)
        add_fused_lm_head(model)
    else:
        model = toy_model(torch.bfloat16, "sdpa", 8)
        add_fused_lm_head(model.get_base_model(), outputs=("log_probs", *pref.FUSED_OUTPUTS["grpo"]))
    ids, mask = _grpo_batch(plan)
    import contextlib
    adapters = use_adapter(model, None) if reference == "adapter-off" else contextlib.nullcontext()
    backbone = model.model if reference == "copy" else model.get_base_model().model
    with torch.no_grad(), adapters:
        with _LiveBytes(model) as blocks:   # the decoder alone: the block's no_grad peak
            backbone(input_ids=ids, attention_mask=mask, use_cache=False)
        with _LiveBytes(model) as live:     # the whole pass: the fused head's tile on top
            _grpo_logps(model, plan, ids, mask)
    on = reference == "none"   # the old policy is the policy itself: its adapters run
    assert _no_grad_block_bytes(plan, adapters_on=on) == pytest.approx(blocks.peak, rel=0.03)
    assert _no_grad_pass_bytes(plan, adapters_on=on) == pytest.approx(live.peak, rel=0.03)
    assert pref.no_grad_forwards(plan) == 1   # one such pass per micro-batch


@pytest.mark.parametrize("completion", [9, 100])
def test_grpo_generate_peak_live_bytes(completion):
    """transformers' generate under no_grad with GRPOTrainer's generation config (grpo_trainer.py
    __init__: do_sample, temperature 1, top_p 1, top_k 0, repetition_penalty 1; eos off here so
    every completion runs to completion_len): the peak of the prefill (completion 9) or of the
    last decoding steps (completion 100: the cache's growth), as napkin's "generate" row."""
    from transformers import GenerationConfig
    model = toy_model(torch.bfloat16, "sdpa", None).eval()
    plan = _with(_grpo_plan(method="full", reference="none"), completion_len=completion)
    seqs = rollout.generation_sequences(plan)
    ids = torch.randint(1, VOCAB, (seqs, plan.prompt_len))
    config = GenerationConfig(max_new_tokens=completion, do_sample=True, pad_token_id=0, eos_token_id=None,
                              temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, disable_compile=True)
    with torch.no_grad(), _LiveBytes(model) as live:
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    assert out.shape == (seqs, plan.prompt_len + completion)
    spec = toy_spec()
    dt = activation_dtypes(plan, spec)
    napkin = rollout.generate_peak_bytes(spec, plan, dt.stream, dt.linear_out, dt.attn, logits_element_bytes(plan))
    assert napkin == pytest.approx(live.peak, rel=0.03)


def test_grpo_policy_forward_and_backward_peak_as_napkin_counts():
    """The policy's forward over prompt + completion, GRPO's per-token loss on the completion and
    its backward, all inside one live-bytes count: the peak equals napkin's largest row of the
    step from the policy forward to the last block's backward (algorithm_timeline with TRL's
    head as it runs on CPU), its activations, logits & loss, gradients (the LoRA adapters') and
    temporaries less the card's workspaces."""
    from trl.trainer.utils import add_fused_lm_head
    model = toy_model(torch.bfloat16, "sdpa", 8)
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", *pref.FUSED_OUTPUTS["grpo"]))
    plan = _grpo_plan(reference="none")
    ids, mask = _grpo_batch(plan)
    advantages = torch.randn(ids.shape[0], 1)
    with _LiveBytes(model) as live:
        logps, _, _ = _grpo_logps(model, plan, ids, mask, compute_entropy=True)
        loss = -(logps * advantages).mean()   # grpo_trainer.py _compute_loss at beta 0, one iteration
        loss.backward()
    assert _trainable_params(plan) * 4 == sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    assert _step_peak_bytes(plan) == pytest.approx(live.peak, rel=0.03)


def _trainable_params(plan: Plan) -> int:
    from napkin_gui.core.memory.model_state import model_state
    return model_state(toy_spec(), plan).trainable_params


def _step_peak_bytes(plan: Plan, last: str = "backward L1") -> int:
    """napkin's largest row from the policy forward to the last block's backward (or to `last`)
    (algorithm_timeline with TRL's head as it runs without Triton): activations, logits & loss,
    gradients and temporaries less the card's workspaces (what a live-bytes count on CPU sees)."""
    from napkin_gui.core.gpu_catalog import find_gpu
    from napkin_gui.core.memory.algorithm_timeline import algorithm_timeline
    from napkin_gui.core.memory.model_state import model_state
    from napkin_gui.core.memory.sharding import gpu_state
    from napkin_gui.core.result import ALLOCATED_COMPONENTS
    spec = toy_spec()
    gs = gpu_state(model_state(spec, plan), plan)
    phases = algorithm_timeline(spec, plan, gs, find_gpu(plan.gpu), block_memories(spec, plan), triton=False)
    index = {name: i for i, name in enumerate(ALLOCATED_COMPONENTS)}
    workspace = phases.rows[0][index["temporaries"]]
    first, last = phases.names.index("forward L1"), phases.names.index(last)
    return max(row[index["activations"]] + row[index["logits_loss"]] + row[index["gradients"]]
               + row[index["temporaries"]] - workspace for row in phases.rows[first:last + 1])


def test_dpo_step_peak_with_the_reference_between_forward_and_backward():
    """dpo_trainer.py _compute_loss: the policy's concatenated forward through the fused head, the
    reference (adapter-off, no_grad) while the policy's saved tensors are alive, the sigmoid loss,
    backward: one live-bytes count against napkin's rows."""
    import torch.nn.functional as F
    from trl.trainer.utils import add_fused_lm_head, use_adapter
    model = toy_model(torch.bfloat16, "sdpa", 8)
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", *pref.FUSED_OUTPUTS["dpo"]))
    plan = _with(_plan("dpo", "lora", "bf16", batch=2, seq=64, prompt=24), attention="sdpa")
    fwd = pref.policy_forward_plan(plan)
    ids = torch.randint(0, VOCAB, (fwd.batch_size, fwd.seq_len))
    labels = ids.masked_fill(torch.arange(fwd.seq_len) < plan.prompt_len, -100)
    with _LiveBytes(model) as live:
        logps = model(input_ids=ids, labels=labels, use_cache=False, fused_lm_head=True).log_probs.sum(-1)
        with torch.no_grad(), use_adapter(model, None):
            ref = model(input_ids=ids, labels=labels, use_cache=False, fused_lm_head=True).log_probs.sum(-1)
        ratios = (logps - ref).view(2, -1)
        loss = -F.logsigmoid(0.1 * (ratios[0] - ratios[1])).mean()
        loss.backward()
    assert _step_peak_bytes(plan) == pytest.approx(live.peak, rel=0.03)


@pytest.mark.parametrize("algorithm, precision", [("orpo", "bf16"), ("simpo", "bf16"), ("orpo", "fp32"), ("simpo", "fp32")])
def test_orpo_simpo_step_peak(algorithm, precision):
    """ORPOTrainer / CPOTrainer concatenated_forward (full logits, selective_log_softmax, ORPO's
    NLL on chosen), their loss on the pair's log-probs, backward (get_batch_loss_metrics has
    dropped the logits it returned by then). ORPO's backward peaks where the engine sums the
    log-prob branch's and the NLL's [2B, S, V] logits gradients, every saved tensor of the head
    already released (it was +3.9 % when napkin kept them alive there); SimPO's at the final
    RMSNorm's backward, after the head's. fp32 logits (gather + logsumexp): at GatherBackward's
    scatter_add, beside the stacked logsumexp gradients and gather's saved logits (the head's
    backward read -1.9 % of the step before)."""
    import torch.nn.functional as F
    from trl.experimental.cpo.cpo_trainer import CPOTrainer
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer
    cls = ORPOTrainer if algorithm == "orpo" else CPOTrainer
    attn = "sdpa" if precision == "bf16" else "eager"   # fp32 sdpa: CPU's flash kernel, not CUDA's math one
    model = toy_model(DTYPES[precision], attn, 8)
    plan = _with(_plan(algorithm, "lora", precision, batch=2, seq=48, prompt=16), attention=attn)
    batch, stub = _paired_batch_and_stub(cls, plan)
    with _LiveBytes(model) as forward:
        chosen, rejected, chosen_logits, rejected_logits, nll = cls.concatenated_forward(stub, model, batch)[:5]
    with _LiveBytes(model) as step:
        chosen, rejected, chosen_logits, rejected_logits, nll = cls.concatenated_forward(stub, model, batch)[:5]
        del chosen_logits, rejected_logits
        loss = -F.logsigmoid(2.0 * (chosen - rejected) - 0.5).mean() + (nll if algorithm == "orpo" else 0)
        loss.backward()
    assert _step_peak_bytes(plan, last="policy log-probs") == pytest.approx(forward.peak, rel=0.03)
    # 2 %: the final RMSNorm's backward, SimPO's peak, left out of the head's rows read -2.9 %
    assert _step_peak_bytes(plan) == pytest.approx(step.peak, rel=0.02)
