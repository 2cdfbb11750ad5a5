"""Loss kernels (core/memory/loss_kernels.py) against the libraries: torchtune's chunked CE runs
on CPU (pure torch), Liger's fused linear CE is Triton-only, so its chunk arithmetic is checked
against the formula in its source."""
from __future__ import annotations

import math

import pytest

from napkin_gui.core.estimate import estimate
from napkin_gui.core.memory import loss_kernels as lk
from napkin_gui.core.plan import plan_from_dict

torch = pytest.importorskip("torch")

from saved_tensors import saved_storage_bytes  # noqa: E402


def _saved_bytes(fn):
    """(fn()'s result, bytes of the distinct storages autograd saves while it runs)."""
    out = []
    saved = saved_storage_bytes(None, lambda: out.append(fn()))
    return out[0], saved


def test_torchtune_chunked_ce_saves_fp32_log_softmax_of_every_chunk():
    from torchtune.modules.loss import CEWithChunkedOutputLoss
    tokens, vocab = 256, 3000
    loss_fn = CEWithChunkedOutputLoss(num_output_chunks=8)
    chunks = [torch.randn(1, tokens // 8, vocab, dtype=torch.bfloat16, requires_grad=True) for _ in range(8)]
    labels = torch.randint(0, vocab, (1, tokens))
    _, saved = _saved_bytes(lambda: loss_fn(chunks, labels))
    labels_bytes = tokens * 8                       # int64 label chunks nll_loss saves
    model = lk.torchtune_chunked_ce(tokens, vocab, 2)
    saved_model = tokens * vocab * 4                # the backward term's saved log_softmax
    assert abs(saved - labels_bytes - saved_model) / saved_model < 0.03
    # forward-end: chunks (bf16) + saved fp32 + one fp32 chunk upcast
    assert model.peak_bytes == tokens * vocab * 6 + tokens // 8 * vocab * 4


def test_liger_chunk_size_follows_its_source_example():
    # liger_kernel/ops/fused_linear_cross_entropy.py comment: BT = 4096*4, V = 32000, H = 4096
    # -> inc_factor 8, chunk_size 2048
    assert lk.liger_chunk_size(4096 * 4, 32000, 4096) == 2048
    assert lk.liger_chunk_size(8192, 128256, 3072) == 256      # inc 42 -> cdiv 196 -> 256
    assert lk.liger_chunk_size(100, 32000, 4096) == 16         # never above BT
    assert lk.liger_chunk_size(3, 10, 4096) == 3


def test_fused_and_cut_ce_hold_no_vocabulary_sized_tensor():
    base = {"model": "llama-3.2-3b", "seq_len": 8192}
    std = estimate(plan_from_dict(base))
    for extra in ({"liger": True}, {"loss": "cut-ce"}):
        est = estimate(plan_from_dict({**base, **extra}))
        assert est.memory.peak_allocated_bytes < std.memory.peak_allocated_bytes - 8 * 2**30
    tokens, h, v = 8192, 3072, 128256
    cut = lk.cut_cross_entropy(tokens, v, h, 2, False, 2)
    assert cut.peak_bytes == tokens * 4 + tokens * h * 2 and cut.held_bytes == 0
    full = lk.liger_fused_linear_ce(tokens, v, h, 2, True, 2)
    assert full.peak_bytes == tokens * h * 2 + v * h * 2 + 256 * v * 2 + tokens * 4


def test_formulas_name_the_module():
    for extra, name in (({"framework": "torchtune"}, "torchtune CEWithChunkedOutputLoss, 8 chunks"),
                        ({"liger": True}, "Liger LigerFusedLinearCrossEntropyLoss"),
                        ({"loss": "cut-ce"}, "cut_cross_entropy"),
                        ({"framework": "litgpt"}, "litgpt chunked_cross_entropy")):
        est = estimate(plan_from_dict({"model": "llama-3.2-1b", **extra}))
        formula = {c.name: c.formula for c in est.memory.components}["logits_loss"]
        assert formula.startswith(name) or name in formula


def test_chunked_ce_is_a_fraction_of_the_full_vocabulary_path():
    std = lk.standard_ce(8192, 128256, 2, False)
    tt = lk.torchtune_chunked_ce(8192, 128256, 2)
    assert math.isclose(tt.peak_bytes / std.peak_bytes, (6 + 4 / 8) / 14)


def test_optimizer_in_backward_keeps_one_parameter_gradient_alive():
    from napkin_gui.core.memory.optimizer_in_backward import largest_parameter_params
    from napkin_gui.core.model_source import resolve_model
    base = {"model": "llama-3.2-1b", "framework": "torchtune", "method": "full", "optimizer": "adamw"}
    off = estimate(plan_from_dict({**base, "optimizer_in_backward": False}))
    on = estimate(plan_from_dict({**base, "optimizer_in_backward": True}))
    largest = largest_parameter_params(resolve_model("llama-3.2-1b"))
    assert largest == 128256 * 2048
    grads = {c.name: c.bytes for c in on.memory.components}["gradients"]
    assert grads <= 2 * largest * 2 and "optimizer in backward" in on.memory.components[2].formula
    assert on.memory.peak_allocated_bytes < off.memory.peak_allocated_bytes - 2 * 2**30
    assert on.memory.timeline[-2].allocated_bytes < off.memory.timeline[-2].allocated_bytes


# ---------------------------------------------------------------- the loss in the time model

def _work(**fields):
    from napkin_gui.core.memory.model_state import model_state
    from napkin_gui.core.model_source import resolve_model
    from napkin_gui.core.step_work import step_work
    plan = plan_from_dict({"model": "llama-3.2-1b", "batch_size": 2, "seq_len": 2048, "lora_dropout": 0.0,
                           "grad_ckpt": True, **fields})
    spec = resolve_model(plan.model)
    return step_work(spec, plan, model_state(spec, plan).trainable_params), spec, plan


def _matmul_flops(phase):
    return sum(flops * n for (_, flops, _), n in phase.matmuls.items())


@pytest.mark.parametrize("base, kernel", [
    ({"liger": True, "loss": "standard"}, {"liger": True, "loss": "fused-linear-ce"}),
    ({"loss": "standard"}, {"loss": "cut-ce"}),
    ({"framework": "unsloth", "loss": "standard"}, {"framework": "unsloth", "loss": "fused-linear-ce"}),
])
def test_fused_kernels_pay_no_full_vocabulary_fp32_logits_traffic(base, kernel):
    """Liger's fused linear CE and unsloth's fused loss read each chunk's model-dtype logits twice and
    overwrite them with their gradient inside the forward (3 x 2 B per logit, nothing in backward);
    cut-ce writes no logits at all and recomputes them in backward (traffic.loss_logits_bytes)."""
    from napkin_gui.core import traffic as tr
    (std, spec, plan), (fused, _, kplan) = _work(**base), _work(**kernel)
    tokens, vocab, hidden = plan.batch_size * plan.seq_len, spec.vocab_size, spec.hidden_size
    lb = 2
    std_f, std_b = tr.loss_logits_bytes(plan.framework, "standard", lb, False)
    if plan.framework == "unsloth":   # Fast_CrossEntropyLoss: one read forward, read + write backward
        assert (std_f, std_b) == (lb, 2 * lb)
    else:                             # logits.float() + fp32 log_softmax, and their backward
        assert (std_f, std_b) == (tr.cast_bytes(2, 4) + 12, 4 + 12 + tr.cast_bytes(4, 2))
    own_f, own_b = {"fused-linear-ce": (3 * lb, 0), "cut-ce": (0, 0)}[kplan.loss]
    scale = 2 * 2 * tokens * hidden if kplan.loss == "fused-linear-ce" else 0   # grad_input * grad_output
    assert std.forward.elementwise_bytes - fused.forward.elementwise_bytes == tokens * vocab * (std_f - own_f)
    assert std.backward.elementwise_bytes - fused.backward.elementwise_bytes == pytest.approx(
        tokens * vocab * (std_b - own_b) - scale, rel=1e-12)
    head = 2.0 * tokens * hidden * vocab
    if kplan.loss == "cut-ce":        # the backward recomputes the logits before dE
        assert _matmul_flops(fused.backward) - _matmul_flops(std.backward) == pytest.approx(head, rel=1e-12)
    else:                             # the input gradient's matmul moves into the forward
        assert _matmul_flops(fused.forward) - _matmul_flops(std.forward) == pytest.approx(head, rel=1e-12)
    assert estimate(kplan).time.step_seconds < estimate(plan).time.step_seconds


def test_torchtune_chunked_ce_writes_every_chunks_fp32_logits():
    """CEWithChunkedOutputLoss.compute_cross_entropy upcasts each chunk (`logits.float()`): the same
    bytes as transformers' full-vocabulary loss, only in 8 pieces."""
    chunked, _, _ = _work(framework="torchtune", loss="chunked-ce")
    plain, _, _ = _work(framework="torchtune", loss="standard")
    assert chunked.forward.elementwise_bytes == plain.forward.elementwise_bytes
    assert chunked.backward.elementwise_bytes == plain.backward.elementwise_bytes


def test_standard_loss_time_is_unchanged_bit_for_bit():
    """Plans written before the stack fields (the stored snapshot, time included) are reproduced."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from stack_baseline import SNAPSHOT, estimate_without_plan
    for row in json.loads(SNAPSHOT.read_text()):
        assert estimate_without_plan(row["plan"])["time"] == row["estimate"]["time"], row["plan"]
