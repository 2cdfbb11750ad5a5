"""How many estimates per second core.estimate() makes on this CPU (target: one < 1 ms).

    python bench/estimate_speed.py [--seconds 2]

Prints, per plan, estimates/s and ms per estimate with warm caches (the model resolved once,
as the GUI sees it while a user edits a plan), a cold first call, and the hardware table.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napkin_gui.core.compare import compare_hardware  # noqa: E402
from napkin_gui.core.estimate import estimate  # noqa: E402
from napkin_gui.core.plan import Plan  # noqa: E402

PLANS = (
    Plan(model="llama-3.1-8b", method="lora", batch_size=4, seq_len=2048, grad_ckpt=True),
    Plan(model="llama-3.1-8b", method="qlora", batch_size=1, seq_len=8192, grad_ckpt=True),
    Plan(model="qwen2.5-0.5b", method="full", batch_size=8, seq_len=1024),
    Plan(model="mixtral-8x7b", method="qlora", batch_size=2, seq_len=4096, grad_ckpt=True,
         n_gpus=4, sharding="fsdp"),
    Plan(model="gemma-2-9b", method="lora", batch_size=2, seq_len=4096, attention="eager", gpu="a100-80gb-sxm"),
)


def rate(plan: Plan, seconds: float) -> tuple[float, float]:
    """(estimates per second, ms per estimate), editing the batch as a user would."""
    estimate(plan)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        estimate(replace(plan, batch_size=plan.batch_size + n % 3))
        n += 1
    elapsed = time.perf_counter() - start
    return n / elapsed, elapsed / n * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per plan")
    args = parser.parse_args()
    start = time.perf_counter()
    estimate(Plan(model="phi-3-mini"))
    print(f"first estimate (cold caches, model parsed): {(time.perf_counter() - start) * 1e3:.1f} ms")
    rates = []
    for plan in PLANS:
        per_s, ms = rate(plan, args.seconds)
        rates.append(per_s)
        print(f"{plan.model:<14} {plan.method:<5} bs {plan.batch_size:>2} x {plan.seq_len:<5} "
              f"{per_s:8,.0f} estimates/s  {ms:6.3f} ms each")
    start = time.perf_counter()
    rows = compare_hardware(PLANS[0])
    print(f"hardware table: {len(rows)} (card, count) rows in {(time.perf_counter() - start) * 1e3:.1f} ms")
    worst = min(rates)
    print(f"slowest plan: {worst:,.0f} estimates/s ({1e3 / worst:.3f} ms) - target < 1 ms: "
          f"{'ok' if worst > 1000 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
