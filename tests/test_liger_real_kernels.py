"""Liger's kernels (core/memory/liger.py) against what Liger's own Triton kernels save, on CPU.

tests/liger_interpreted.py runs a tiny transformers Llama twice in a subprocess under Triton's
interpreter (TRITON_INTERPRET=1): eager, then with apply_liger_kernel_to_llama's RMSNorm,
SwiGLU and RoPE patched into the instance (the fused linear CE is left out: the body is
measured, embeddings to the final norm). napkin's per-block bytes + final norm must match both
within 3 %.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("liger_kernel")
pytest.importorskip("triton")

from napkin_gui.core.plan import Plan  # noqa: E402

import saved_tensors  # noqa: E402

H, FF, HEADS, KV, LAYERS, VOCAB, BATCH, SEQ = 64, 176, 4, 2, 2, 128, 2, 32
SCRIPT = Path(__file__).with_name("liger_interpreted.py")


def napkin_bytes(plan: Plan) -> int:
    return saved_tensors.napkin_body_bytes(saved_tensors.toy_spec(H, FF, HEADS, KV, LAYERS, VOCAB), plan)


# (method, precision, torch dtype, attention): full fine-tuning with eager attention, whose
# eager-module count tests/test_activations_real_torch.py checks (CPU's sdpa saves differ from CUDA's)
CASES = [("lora", "bf16", "bfloat16", "sdpa"), ("full", "bf16", "bfloat16", "eager"),
         ("lora", "fp32", "float32", "sdpa")]


@pytest.fixture(scope="module")
def interpreted() -> list[dict]:
    """One subprocess for every case (the imports dominate its time)."""
    cases = [{"model_type": "llama", "dtype": dtype, "full": method == "full", "attn": attn, "batch": BATCH,
              "seq": SEQ, "hidden": H, "ff": FF, "heads": HEADS, "kv": KV, "layers": LAYERS, "vocab": VOCAB}
             for method, _, dtype, attn in CASES]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, str(SCRIPT), json.dumps(cases)], capture_output=True, text=True,
                         env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", [0, 1], ids=["lora-bf16", "full-bf16"])
def test_liger_kernels_save_what_napkin_counts(interpreted, case):
    """bf16 LoRA (frozen norms: LigerRMSNorm saves X + RSTD where eager saves the fp32 x) and
    bf16 full fine-tuning (eager also saves the normalized x for the weight's gradient)."""
    method, precision, _, attn = CASES[case]
    measured = interpreted[case]
    rope = 2 * SEQ * (H // HEADS) * 2    # the shared cos / sin, left out of the model
    common = dict(model="toy", method=method, precision=precision, lora_r=8, lora_dropout=0.0,
                  batch_size=BATCH, seq_len=SEQ, attention=attn)
    eager, liger = napkin_bytes(Plan(**common)), napkin_bytes(Plan(**common, liger=True))
    assert eager == pytest.approx(measured["eager"] - rope, rel=0.03)
    assert liger == pytest.approx(measured["liger"] - rope, rel=0.03)
    assert liger < eager


def test_liger_kernels_compute_what_the_eager_modules_compute(interpreted):
    """fp32: the patched model's hidden states equal the eager model's (the interpreter's bf16
    emulation rounds differently, so bf16 is compared in bytes only)."""
    assert interpreted[2]["same_output"]
