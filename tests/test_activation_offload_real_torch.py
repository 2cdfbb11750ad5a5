"""torchtune's and TRL's own OffloadActivations around tiny models from their own builders, on CPU.

Only the device-copy calls are replaced (streams, events, pinned allocation, the copy back):
the pack hook's selection (min_offload_size, parameters, the stash of the last 5 ids, TRL's
storage deduplication) and get_act_offloading_ctx_manager's NoOpManager around the output
head run as released. After the forward the hook's own state says what it copied to the host
(tracker entries marked modified) and what stays on the device (unmodified entries and the
fwd_stash); both are compared with napkin's figures (core/memory/activation_offload.py).
"""
import contextlib
import dataclasses
import importlib.util
import os
import types
import warnings

import pytest

torch = pytest.importorskip("torch")

from napkin_gui.core.memory.precision import activation_dtypes  # noqa: E402
from napkin_gui.core.memory.timeline import activation_offload, block_memories, final_norm_saved_bytes  # noqa: E402
from napkin_gui.core.plan import Plan  # noqa: E402

from test_frameworks_real_torch import TT_DEFAULT, VOCAB, llama_spec, torchtune_model  # noqa: E402

BATCH, SEQ = 2, 128   # 256 tokens: the fp32 rstd [tokens, 1] is 1024 B, just offloadable


class _Stream:
    def record_event(self):
        return None

    def wait_event(self, event):
        pass

    def wait_stream(self, stream):
        pass

    def synchronize(self):
        pass


@contextlib.contextmanager
def cpu_copies():
    """The device-copy calls made CPU-only (torch.cuda streams for torchtune, the accelerator
    module for TRL, pin_memory, the copy back); OffloadActivations' selection logic untouched."""
    fake = types.SimpleNamespace(Stream=lambda *a, **k: _Stream(), stream=lambda s: contextlib.nullcontext(),
                                 current_stream=lambda *a: _Stream(), default_stream=lambda *a: _Stream(),
                                 empty_cache=lambda: None)
    names = [(torch.cuda, "default_stream"), (torch.cuda, "Stream"), (torch.cuda, "stream"),
             (torch.accelerator, "current_accelerator"), (torch, "get_device_module"), (torch, "empty_like"),
             (torch, "empty"), (torch.Tensor, "to"), (torch.Tensor, "record_stream")]
    saved = [getattr(owner, name) for owner, name in names]
    empty_like, empty, to = torch.empty_like, torch.empty, torch.Tensor.to
    torch.cuda.default_stream = torch.cuda.Stream = lambda *a, **k: _Stream()
    torch.cuda.stream = lambda s: contextlib.nullcontext()
    torch.accelerator.current_accelerator = lambda *a, **k: torch.device("cpu")
    torch.get_device_module = lambda *a: fake
    torch.empty_like = lambda t, *a, pin_memory=False, **k: empty_like(t, *a, **k)
    torch.empty = lambda *a, pin_memory=False, **k: empty(*a, **k)
    torch.Tensor.to = lambda self, *a, **k: self.clone() if a and a[0] == "cuda" else to(self, *a, **k)
    torch.Tensor.record_stream = lambda self, s: None
    try:
        yield
    finally:
        for (owner, name), value in zip(names, saved):
            setattr(owner, name, value)


def _torchtune_offloading():
    """torchtune/training/_activation_offloading.py loaded by path: torchtune.training's
    __init__ imports torchao quantizers this environment's torchao no longer has."""
    torchtune = pytest.importorskip("torchtune")
    path = os.path.join(os.path.dirname(torchtune.__file__), "training", "_activation_offloading.py")
    spec = importlib.util.spec_from_file_location("_napkin_tt_offloading", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(model, layer_cls):
    """torchtune.training.set_activation_checkpointing: apply_activation_checkpointing with
    torch's non-reentrant checkpoint_wrapper around each layer."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    apply_activation_checkpointing(model, auto_wrap_policy=ModuleWrapPolicy({layer_cls}))


@contextlib.contextmanager
def head_saved(head, seen: dict):
    """What the output head saves under get_act_offloading_ctx_manager's NoOpManager (it never
    reaches OffloadActivations and stays on the device): a counting hook pushed inside it."""
    params = {p.untyped_storage().data_ptr() for p in head.parameters()}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
    handles = (head.register_forward_pre_hook(lambda *a: hooks.__enter__()),
               head.register_forward_hook(lambda *a: hooks.__exit__(None, None, None), always_call=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def hook_state(ctx, model, tokens: int, head: dict):
    """(offloaded tensors, host bytes, device activation bytes) after the forward: distinct
    non-parameter storages the hook left on the device (unmodified entries, the stash),
    except the loss's (napkin's logits & loss component: [tokens, vocab] and int64 / 0-d)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    copies = [entry[0] for entry in ctx.tracker.values() if entry[1]]
    device = [entry[0] for entry in ctx.tracker.values() if not entry[1]]
    device += [a for a, _ in ctx.fwd_stash.values()]
    on_card = {}
    for t in device:
        s = t.untyped_storage()
        if s.data_ptr() in params or t.dtype == torch.int64 or t.dim() == 0 or s.nbytes() == tokens * VOCAB * 4:
            continue
        on_card[s.data_ptr()] = s.nbytes()
    on_card.update(head)
    return len(copies), sum(t.numel() * t.element_size() for t in copies), sum(on_card.values())


def napkin_figures(plan: Plan, spec) -> tuple[int, int, int]:
    """(offloaded tensors, pinned host bytes, device activation bytes at the loss)."""
    off = activation_offload(spec, plan)
    dt = activation_dtypes(plan, spec)
    device = sum(b.kept_bytes for b in block_memories(spec, plan)) + final_norm_saved_bytes(plan, spec, dt)
    return off.offloaded_tensors, off.host_bytes, device


@pytest.mark.parametrize("method, precision", [("lora", "bf16"), ("full", "bf16"), ("lora", "fp32")])
def test_torchtune_offload_activations(method, precision):
    from torchtune import modules
    offloading = _torchtune_offloading()
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    model = torchtune_model(method, dtype, TT_DEFAULT)
    _checkpoint(model, modules.TransformerSelfAttentionLayer)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    with cpu_copies(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = offloading.get_act_offloading_ctx_manager(model, True)
        head: dict = {}
        with ctx, head_saved(model.output, head):
            logits = model(ids)
        measured = hook_state(ctx, model, BATCH * SEQ, head)
        out = torch.cat(logits, 1) if isinstance(logits, list) else logits
        out.float().logsumexp(-1).mean().backward()   # the recipe computes its loss outside the context
    plan = Plan(model="toy", method=method, precision=precision, lora_r=8, lora_dropout=0.0, batch_size=BATCH,
                seq_len=SEQ, lora_targets=TT_DEFAULT, framework="torchtune", grad_ckpt=True, activation_offload=True)
    count, host, device = napkin_figures(plan, llama_spec())
    print(method, precision, "napkin", (count, host, device), "measured", measured)
    assert count == measured[0]
    assert host == pytest.approx(measured[1], rel=0.03)
    assert device == pytest.approx(measured[2], rel=0.03)
    # the check can fail: without offloading napkin keeps every block input on the card
    on_card = napkin_device_without_offload(plan, llama_spec())
    assert abs(on_card / measured[2] - 1) > 0.03


def napkin_device_without_offload(plan: Plan, spec) -> int:
    plain = dataclasses.replace(plan, activation_offload=False)
    dt = activation_dtypes(plain, spec)
    return sum(b.kept_bytes for b in block_memories(spec, plain)) + final_norm_saved_bytes(plain, spec, dt)


@pytest.mark.parametrize("method, ckpt", [("lora", True), ("full", True), ("lora", False), ("full", False)])
def test_trl_offload_activations(method, ckpt):
    """TRL's SFTTrainer.training_step: forward, loss and backward under get_act_offloading_ctx_manager."""
    pytest.importorskip("trl")
    from test_activations_real_torch import toy_model, toy_spec
    from trl.models.activation_offloading import get_act_offloading_ctx_manager
    model = toy_model(torch.bfloat16, "sdpa", 8 if method == "lora" else None)
    if ckpt:
        model.gradient_checkpointing_enable()
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    with cpu_copies(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = get_act_offloading_ctx_manager(model)
        head: dict = {}
        with ctx:
            with head_saved(model.get_output_embeddings(), head):
                out = model(input_ids=ids, labels=ids)
            measured = hook_state(ctx, model, BATCH * SEQ, head)
            out.loss.backward()
    plan = Plan(model="toy", method=method, precision="bf16", attention="sdpa", lora_r=8, lora_dropout=0.0,
                batch_size=BATCH, seq_len=SEQ, grad_ckpt=ckpt, activation_offload=True)
    count, host, device = napkin_figures(plan, toy_spec())
    print(method, ckpt, "napkin", (count, host, device), "measured", measured)
    if ckpt:
        assert count == measured[0]
    assert host == pytest.approx(measured[1], rel=0.03)
    assert device == pytest.approx(measured[2], rel=0.03)
    assert abs(napkin_device_without_offload(plan, toy_spec()) / measured[2] - 1) > 0.03
