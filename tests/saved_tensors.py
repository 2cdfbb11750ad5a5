"""What the real-torch memory tests share: the tiny transformers model they measure, its napkin
ModelSpec, and the bytes autograd saves while it runs.

Used by test_activations_real_torch.py, test_torch_compile_real.py, test_preference_real_trl.py,
test_liger_real_kernels.py and the subprocess script liger_interpreted.py (which imports it from
this folder, its own). torch, transformers and peft are imported when a function runs, so a test
file's pytest.importorskip decides first, and liger_interpreted.py sets TRITON_INTERPRET before.

saved_storage_bytes counts through torch.autograd.graph.saved_tensors_hooks (torch 2.13,
torch/autograd/graph.py): pack runs once for every tensor autograd saves for backward; a
storage is counted once however many saved views share it, and the model's parameters not at all.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napkin_gui.core.memory.precision import activation_dtypes
from napkin_gui.core.memory.timeline import block_memories, final_norm_saved_bytes
from napkin_gui.core.model_spec import DecoderLayer, LinearShape, ModelSpec
from napkin_gui.core.plan import Plan

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def toy_spec(hidden: int, ff: int, heads: int, kv: int, layers: int, vocab: int) -> ModelSpec:
    """napkin's ModelSpec of toy_model's llama: untied head, one norm pair per block."""
    hd = hidden // heads
    lins = (LinearShape("q_proj", hidden, hidden), LinearShape("k_proj", hidden, kv * hd),
            LinearShape("v_proj", hidden, kv * hd), LinearShape("o_proj", hidden, hidden),
            LinearShape("gate_proj", hidden, ff), LinearShape("up_proj", hidden, ff),
            LinearShape("down_proj", ff, hidden))
    return ModelSpec("toy", "llama", hidden, heads, kv, hd, vocab, False,
                     ((layers, DecoderLayer(lins, ff, True, 2 * hidden, 2)),), extra_params=hidden)


def napkin_body_bytes(spec: ModelSpec, plan: Plan) -> int:
    """What napkin says the decoder body saves: every block plus the final norm."""
    return (sum(b.saved_bytes for b in block_memories(spec, plan))
            + final_norm_saved_bytes(plan, spec, activation_dtypes(plan, spec)))


def toy_model(dtype: Any, attn: str, lora_r: int | None, *, hidden: int, ff: int, heads: int, kv: int,
              layers: int, vocab: int, model_type: str = "llama", targets: list[str] | None = None) -> Any:
    """A random-weight transformers model (nothing downloaded) in training mode; with lora_r, peft
    LoRA (alpha 2r, no dropout) on targets (default every linear of a block)."""
    import torch
    import transformers
    cfg = transformers.AutoConfig.for_model(
        model_type, hidden_size=hidden, intermediate_size=ff, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, vocab_size=vocab, max_position_embeddings=256, head_dim=hidden // heads)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    if lora_r:
        import peft
        model = peft.get_peft_model(model, peft.LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                                                           target_modules=targets or TARGETS))
        model.enable_input_require_grads()
    model.train()
    return model


def saved_storage_bytes(model: Any, run: Callable[[], Any], buffers: bool = False,
                        counted: Callable[[Any], bool] = lambda t: True) -> int:
    """Bytes of the distinct storages autograd saves while run() executes, but model's parameters
    (and with buffers, its buffers too: shared RoPE caches); model None: every storage. A tensor
    counted() refuses is neither counted nor skipped (torchao's NF4 weights: counted with the
    weights, and their storage is not the saved one)."""
    import torch
    owned = [*model.parameters(), *(model.buffers() if buffers else ())] if model is not None else []
    skip = {t.untyped_storage().data_ptr() for t in owned if counted(t)}
    seen: dict[int, int] = {}

    def pack(t):
        if not counted(t):
            return t
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())
