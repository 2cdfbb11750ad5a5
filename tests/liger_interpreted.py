"""Run Liger's own Triton kernels on CPU under Triton's interpreter and print what autograd saves.

Started in a subprocess by tests/test_liger_real_kernels.py with TRITON_INTERPRET=1 (the
interpreter is chosen when triton is imported). Two gaps of the interpreter (triton 3.9) are
bridged here, not in Liger: python float kernel arguments are not wrapped as scalars (Liger's
RMSNorm calls eps.to(tl.float32)), and the CUDA libdevice rsqrt it imports has no interpreted
form (tl.rsqrt is the same function). argv[1]: a JSON list of cases; prints one JSON line,
a list of {"eager": bytes, "liger": bytes, "same_output": bool}.
"""
from __future__ import annotations

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.runtime import interpreter  # noqa: E402

_wrap = interpreter._implicit_cvt


def _implicit_cvt(arg):
    if isinstance(arg, float):
        return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
    return _wrap(arg)


interpreter._implicit_cvt = _implicit_cvt

import liger_kernel.ops.rms_norm as liger_rms_norm  # noqa: E402

liger_rms_norm.rsqrt = lambda x: tl.rsqrt(x)

import transformers  # noqa: E402
from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance  # noqa: E402


TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def toy(model_type: str, dtype, full: bool, attn: str, hidden: int, ff: int, heads: int, kv: int, layers: int, vocab: int):
    cfg = transformers.AutoConfig.for_model(
        model_type, hidden_size=hidden, intermediate_size=ff, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, vocab_size=vocab, max_position_embeddings=256, head_dim=hidden // heads)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    if not full:   # peft LoRA r=8 on every linear, no dropout (as tests/test_activations_real_torch.py)
        import peft
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                           target_modules=TARGETS))
        model.enable_input_require_grads()
    model.train()
    return model


def saved_bytes(model, ids) -> int:
    """Distinct non-parameter storages autograd saves in one forward (logits and loss excluded:
    the body only)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = body(model)(input_ids=ids)
    out.last_hidden_state.float().sum().backward()
    return sum(seen.values())


def body(model):
    """The decoder stack (embeddings, blocks, final norm) without lm_head and the loss."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def measure(case: dict) -> dict:
    """Saved bytes of the eager and the Liger-patched model for one case, and whether their
    outputs agree (fp32: the interpreter emulates bf16 with its own rounding)."""
    args = dict(case)
    dtype = getattr(torch, args.pop("dtype"))
    full = args.pop("full")
    batch, seq = args.pop("batch"), args.pop("seq")
    model_type, attn = args.pop("model_type"), args.pop("attn")
    eager = toy(model_type, dtype, full, attn, **args)
    ids = torch.randint(0, args["vocab"], (batch, seq))
    before = saved_bytes(eager, ids)
    liger = toy(model_type, dtype, full, attn, **args)
    base = liger.get_base_model() if hasattr(liger, "get_base_model") else liger
    _apply_liger_kernel_to_instance(model=base, fused_linear_cross_entropy=False)
    after = saved_bytes(liger, ids)
    with torch.no_grad():
        same = torch.allclose(body(eager)(input_ids=ids).last_hidden_state.float(),
                              body(liger)(input_ids=ids).last_hidden_state.float(), atol=1e-4, rtol=1e-4)
    return {"eager": before, "liger": after, "same_output": bool(same)}


def main() -> None:
    """Each case from unpatched modules: apply_liger_kernel_to_llama also swaps the classes and
    apply_rotary_pos_emb of transformers' modeling_llama module, which is restored after it."""
    from transformers.models.llama import modeling_llama
    module = dict(vars(modeling_llama))
    out = []
    for case in json.loads(sys.argv[1]):
        out.append(measure(case))
        vars(modeling_llama).update(module)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
