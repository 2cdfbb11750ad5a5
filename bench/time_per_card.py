"""Step time of one plan on every card of the catalog (uncalibrated model), with its roofline.

    python bench/time_per_card.py [plan.json]

Default plan: Llama-3.1-8B QLoRA, bf16, batch 1 x 2048, gradient checkpointing, AdamW. Prints,
per card, the datasheet rates the model reads, ms per micro-batch in bf16 and in fp16, the
roofline (tests/test_time_catalog.py: FLOPs at peak, bytes at bandwidth), tokens/s, MFU, bound.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from napkin_gui.core.estimate import estimate  # noqa: E402
from napkin_gui.core.gpu_catalog import gpu_catalog  # noqa: E402
from napkin_gui.core.plan import Plan, load_plan  # noqa: E402
from test_time_catalog import roofline_seconds  # noqa: E402


def main() -> None:
    plan = load_plan(sys.argv[1]) if len(sys.argv) > 1 else Plan(
        model="llama-3.1-8b", method="qlora", precision="bf16", batch_size=1, seq_len=2048, grad_ckpt=True)
    print(f"{plan.model} {plan.method} bs {plan.batch_size} x {plan.seq_len}")
    print(f"{'card':24} {'bf16 TF':>8} {'fp16 TF':>8} {'GB/s':>6} {'bf16 ms':>9} {'fp16 ms':>9} "
          f"{'roof ms':>8} {'tok/s':>7} {'MFU':>5}  bound")
    for gpu in gpu_catalog():
        p = replace(plan, gpu=gpu.id)
        t = estimate(p).time
        t16 = estimate(replace(p, precision="fp16")).time
        print(f"{gpu.id:24} {gpu.bf16_tflops:8.1f} {gpu.fp16_tflops:8.1f} {gpu.memory_bandwidth_gbps:6.0f} "
              f"{t.step_seconds * 1e3:9.1f} {t16.step_seconds * 1e3:9.1f} {roofline_seconds(p, gpu) * 1e3:8.1f} "
              f"{t.tokens_per_second:7.0f} {t.mfu:5.2f}  {t.bound}")


if __name__ == "__main__":
    main()
