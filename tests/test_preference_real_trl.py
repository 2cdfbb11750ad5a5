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

    spec, fwd = toy_spec(), pref.policy_forward_plan(plan)
    dt = activation_dtypes(fwd, spec)
    tokens = fwd.tokens_per_micro_batch
    norm = tokens * H * (4 + (dt.stream if dt.base_trainable else 0))
    # CPU: no Triton, so TRL scores every position (compact=False); CUDA scores the completion only
    head = pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_element_bytes(plan), method == "full",
                             triton=False)
    expected = _blocks_bytes(fwd) + norm + head.saved_bytes
    assert expected == pytest.approx(got, rel=0.03)


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


@pytest.mark.parametrize("algorithm, precision", [("orpo", "bf16"), ("simpo", "fp32")])
def test_orpo_simpo_concatenated_forward_saves_what_napkin_counts(algorithm, precision):
    """ORPO's own concatenated_forward (full logits, selective_log_softmax, NLL on chosen); SimPO
    is CPOTrainer's with cpo_alpha=0 (no NLL): the same forward without the NLL term."""
    from trl.experimental.cpo.cpo_trainer import CPOTrainer
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer
    cls = ORPOTrainer if algorithm == "orpo" else CPOTrainer
    model = toy_model(DTYPES[precision], "eager", 8)
    plan = _plan(algorithm, "lora", precision, batch=2, seq=48, prompt=16)
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
    aten op (TorchDispatchMode): what a caching allocator would hold allocated, on CPU."""

    def __init__(self, model):
        import weakref
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves
        skip = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        storages: dict[int, list] = {}
        self.peak = 0
        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for ptr, (_, refs) in list(storages.items()):   # freed storages first: addresses are reused
                    refs[:] = [r for r in refs if r() is not None]
                    if not refs:
                        del storages[ptr]
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        storage = t.untyped_storage()
                        if storage.data_ptr() not in skip and storage.nbytes():
                            storages.setdefault(storage.data_ptr(), [storage.nbytes(), []])[1].append(weakref.ref(t))
                live = sum(nbytes for nbytes, _ in storages.values())
                outer.peak = max(outer.peak, live)
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
    spec = toy_spec()
    dt = activation_dtypes(fwd, spec)
    scores = max(b.scores_bytes for b in block_memories(spec, fwd))
    block = pref.no_grad_forward_peak_bytes(spec, fwd.batch_size, fwd.seq_len, dt.stream, dt.linear_out, dt.attn, scores)
    head = pref.logprob_head(spec, plan, dt.stream, dt.linear_out, logits_element_bytes(plan), False, grad=False,
                             triton=False)
    assert block == pytest.approx(backbone.peak, rel=0.03)
    assert max(block, head.forward_work_bytes) == pytest.approx(whole.peak, rel=0.03)
