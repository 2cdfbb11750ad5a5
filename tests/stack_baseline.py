"""Estimates of plans written without the training-stack fields (issue 13), stored before those
fields existed: tests/test_stack_baseline.py checks they stay bit-identical.

Regenerate only when a mechanism changes old plans' figures on purpose (say so in the commit):
    python tests/stack_baseline.py
"""
from __future__ import annotations

import json
from pathlib import Path

from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import plan_from_dict
from napkin_gui.core.result_json import estimate_to_dict

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).with_name("data") / "stack_baseline.json"

# The example plans plus one variant per mechanism the stack fields touch (loss, checkpointing,
# optimizer, precision, sharding, targets), on a small and a large model.
VARIANTS = (
    {"model": "llama-3.2-1b"},
    {"model": "llama-3.2-1b", "method": "full", "optimizer": "paged-adamw-8bit"},
    {"model": "llama-3.2-1b", "method": "full", "precision": "mixed-bf16", "grad_ckpt": True},
    {"model": "llama-3.2-1b", "method": "qlora", "seq_len": 8192, "batch_size": 2},
    {"model": "llama-3.1-8b", "lora_targets": ["q_proj", "v_proj"], "grad_accum": 4},
    {"model": "qwen2.5-3b", "method": "full", "sharding": "fsdp", "n_gpus": 4, "grad_ckpt": True},
    {"model": "gemma-2-2b", "attention": "eager", "seq_len": 1024},
    {"model": "mixtral-8x7b", "method": "qlora", "grad_ckpt": True},
)


def baseline_plans() -> list[dict]:
    examples = sorted((ROOT / "resources" / "examples").glob("*.napkin.json"))
    return [json.loads(p.read_text()) for p in examples] + [dict(v) for v in VARIANTS]


def estimate_without_plan(data: dict) -> dict:
    """The estimate's JSON minus the plan echo (which gains the new fields)."""
    out = estimate_to_dict(estimate(plan_from_dict(data)))
    del out["plan"]
    return out


if __name__ == "__main__":
    rows = [{"plan": d, "estimate": estimate_without_plan(d)} for d in baseline_plans()]
    SNAPSHOT.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(rows)} estimates to {SNAPSHOT}")
