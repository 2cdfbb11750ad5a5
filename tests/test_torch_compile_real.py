"""compile: true (core/memory/torch_compile.py) against what a compiled transformers Llama saves.

torch.compile on CPU with backend aot_eager_decomp_partition: the decompositions and the min-cut
partitioner inductor uses (torch/_inductor/compile_fx.py partition_fn), without inductor's C++
codegen (minutes on this machine); the saved set is the partitioner's: for the toy's full
fine-tuning it saved 261,920 B under both this backend and inductor itself.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from napkin_gui.core.model_spec import ModelSpec  # noqa: E402
from napkin_gui.core.plan import Plan  # noqa: E402
from napkin_gui.core.step_work import step_work  # noqa: E402

import saved_tensors  # noqa: E402

H, FF, HEADS, KV, LAYERS, VOCAB, BATCH, SEQ = 64, 176, 4, 2, 1, 128, 2, 32
DIMS = dict(hidden=H, ff=FF, heads=HEADS, kv=KV, layers=LAYERS, vocab=VOCAB)


def toy_spec() -> ModelSpec:
    return saved_tensors.toy_spec(**DIMS)


def napkin_bytes(plan: Plan) -> int:
    return saved_tensors.napkin_body_bytes(toy_spec(), plan)


def measured_bytes(lora: bool, compiled: bool) -> int:
    """Distinct non-parameter storages saved by one forward of the decoder stack (embeddings
    to the final norm), less rotary's cos / sin (eager) or inv_freq (compiled)."""
    model = saved_tensors.toy_model(torch.bfloat16, "sdpa", 8 if lora else None, **DIMS)
    body = (model.get_base_model() if lora else model).model
    fn = torch.compile(body, backend="aot_eager_decomp_partition", fullgraph=False) if compiled else body
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    fn(input_ids=ids)   # compile outside the measurement
    rope = 4 * (H // HEADS // 2) if compiled else 2 * SEQ * (H // HEADS) * 2
    return saved_tensors.saved_storage_bytes(model, lambda: fn(input_ids=ids)) - rope


def _plan(method: str, compiled: bool) -> Plan:
    return Plan(model="toy", method=method, lora_r=8, lora_dropout=0.0, batch_size=BATCH, seq_len=SEQ,
                compile=compiled)


def test_compiled_lora_block_saves_what_napkin_counts():
    """LoRA without dropout: norms keep x + rstd, the MLP gate + up, one fp32 copy per input
    tensor for all its adapters (eager: one per adapter)."""
    eager, compiled = measured_bytes(True, False), measured_bytes(True, True)
    assert napkin_bytes(_plan("lora", False)) == pytest.approx(eager, rel=0.03)
    assert napkin_bytes(_plan("lora", True)) == pytest.approx(compiled, rel=0.03)
    assert compiled < 0.8 * eager


def test_compiled_full_finetune_saves_less_by_what_napkin_says():
    """Full fine-tuning: the norms' fp32 upcast and normalized copy and act(gate) are recomputed.
    CPU's sdpa saves differ from CUDA's by a fixed amount in both runs: the change is compared."""
    eager, compiled = measured_bytes(False, False), measured_bytes(False, True)
    change = napkin_bytes(_plan("full", True)) - napkin_bytes(_plan("full", False))
    assert change == pytest.approx(compiled - eager, rel=0.03)


def test_compiled_block_moves_fewer_bytes_and_calls_no_modules():
    spec = toy_spec()
    eager, compiled = step_work(spec, _plan("lora", False), 0), step_work(spec, _plan("lora", True), 0)
    assert compiled.forward.elementwise_bytes < eager.forward.elementwise_bytes
    assert compiled.forward.launches < eager.forward.launches
    assert compiled.forward.modules < eager.forward.modules
    assert compiled.executed_flops == eager.executed_flops
