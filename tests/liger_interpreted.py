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

from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance  # noqa: E402

from saved_tensors import saved_storage_bytes, toy_model  # noqa: E402  (this folder: sys.path[0])


def toy(model_type: str, dtype, full: bool, attn: str, **dims):
    """The tiny model (tests/saved_tensors.py); full=False: peft LoRA r=8 on every linear, no
    dropout (as tests/test_activations_real_torch.py)."""
    return toy_model(dtype, attn, None if full else 8, model_type=model_type, **dims)


def saved_bytes(model, ids) -> int:
    """Distinct non-parameter storages autograd saves in one forward of the body (logits and loss
    excluded), then a backward through Liger's kernels."""
    outputs = []
    saved = saved_storage_bytes(model, lambda: outputs.append(body(model)(input_ids=ids)))
    outputs[0].last_hidden_state.float().sum().backward()
    return saved


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
