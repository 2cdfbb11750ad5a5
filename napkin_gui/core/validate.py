"""Compare estimates with measured runs (shared/groundtruth format) and summarize the errors."""
from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PlanError
from .estimate import estimate
from .plan import Plan, plan_from_dict
from .stack_defaults import STACK_FIELDS

MIB = 2**20
# cuBLAS workspaces a run that already did a matmul holds (measure.py runs many plans in
# one process; rows show mem_before - weights ~ 64-66 MiB when nothing else was left over)
WORKSPACE_BASELINE_MIB = 66.0

METHODS = {"full_bf16": ("full", "bf16"), "full_mixed": ("full", "mixed-bf16"),
           "full_fp32": ("full", "fp32"), "lora": ("lora", "bf16"), "qlora": ("qlora", "bf16")}


@dataclass(frozen=True, slots=True)
class RunCheck:
    label: str
    group: str
    oom: bool
    fits_ok: bool
    measured_peak_mib: float | None
    estimated_peak_mib: float
    memory_error_pct: float | None
    measured_step_s: float | None
    estimated_step_s: float
    time_error_pct: float | None
    reserved_error_pct: float | None = None


def plan_from_run(row: dict[str, Any]) -> Plan:
    """The plan a measured run executed (measure.py fields -> plan-v1)."""
    if row.get("method") not in METHODS:
        raise PlanError(f"method: run has {row.get('method')!r}; known: {', '.join(METHODS)}")
    method, precision = METHODS[row["method"]]
    r = row.get("lora_r") or 16
    targets = row.get("lora_targets") or "all"
    data = {
        "model": row["model"], "method": method, "precision": precision,
        "optimizer": str(row.get("optimizer", "adamw")).replace("_", "-"),
        "batch_size": row["batch_size"], "seq_len": row["seq_len"], "grad_ckpt": bool(row["grad_ckpt"]),
        "attention": row.get("attn", "sdpa"), "gpu": row.get("gpu", "h100-80gb-sxm"),
    }
    if method != "full":
        data.update(lora_r=r, lora_alpha=2 * r, lora_dropout=0.05,
                    lora_targets="all-linear" if targets == "all" else ["q_proj", "v_proj"])
    # runs of other stacks name them with the plan's own field names (plan-v1 training stack)
    data.update({k: row[k] for k in STACK_FIELDS if k in row})
    return plan_from_dict(data)


def leftover_mib(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Memory a run found allocated before its model was built, beyond the cuBLAS workspaces.

    measure.py builds every plan in one process; an OOM'd run can leave ~0.5 GiB behind, which
    then sits in every later peak of that process (rows show mem_before - weights_mib of 568
    MiB instead of 66). It is not the plan's memory, so it is taken off the measured peak.
    Per (model, method), from the rows whose weights_mib describes their own adapters.
    """
    seen: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row.get("mem_before_mib") is None or row.get("weights_mib") is None:
            continue
        if row.get("lora_r") not in (None, 16) or row.get("lora_targets") not in (None, "all"):
            continue
        seen.setdefault((row["model"], row["method"]), []).append(row["mem_before_mib"] - row["weights_mib"])
    return {key: max(0.0, statistics.median(v) - WORKSPACE_BASELINE_MIB) for key, v in seen.items()}


def check_runs(rows: Sequence[dict[str, Any]]) -> tuple[RunCheck, ...]:
    """Estimate every run and compare peak allocated memory, fit verdict and step time."""
    left = leftover_mib(rows)
    out = []
    for row in rows:
        if "error" in row or "peak_alloc_mib" not in row:
            continue
        plan = plan_from_run(row)
        est = estimate(plan)
        oom = bool(row.get("oom"))
        measured = None if oom else row["peak_alloc_mib"] - left.get((row["model"], row["method"]), 0.0)
        est_mib = est.memory.peak_allocated_bytes / MIB
        reserved = None if oom else row.get("peak_reserved_mib", 0) - left.get((row["model"], row["method"]), 0.0)
        est_reserved = est.memory.peak_reserved_bytes / MIB
        step = row.get("step_s_median")
        est_step = est.time.step_seconds
        out.append(RunCheck(
            label=_label(row), group=f"{row['model']} {row['method']}", oom=oom,
            fits_ok=est.memory.fits == (not oom),
            measured_peak_mib=measured, estimated_peak_mib=est_mib,
            memory_error_pct=None if measured is None else (est_mib - measured) / measured * 100,
            measured_step_s=step, estimated_step_s=est_step,
            time_error_pct=None if not step else (est_step - step) / step * 100,
            reserved_error_pct=(est_reserved - reserved) / reserved * 100 if reserved else None))
    return tuple(out)


def _label(row: dict[str, Any]) -> str:
    extra = []
    if row.get("optimizer", "adamw") != "adamw":
        extra.append(row["optimizer"])
    if row.get("attn", "sdpa") != "sdpa":
        extra.append(row["attn"])
    if row.get("lora_r") not in (None, 16):
        extra.append(f"r{row['lora_r']}")
    if row.get("lora_targets") not in (None, "all"):
        extra.append(row["lora_targets"])
    tail = (" " + " ".join(extra)) if extra else ""
    return f"bs{row['batch_size']} s{row['seq_len']} {'ckpt' if row['grad_ckpt'] else 'no-ckpt'}{tail}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary_line(checks: Sequence[RunCheck]) -> str:
    """`memory median X% p90 Y% | fit a/n | time median Z% p90 W%` over absolute errors."""
    mem = [abs(c.memory_error_pct) for c in checks if c.memory_error_pct is not None]
    tim = [abs(c.time_error_pct) for c in checks if c.time_error_pct is not None]
    res = [abs(c.reserved_error_pct) for c in checks if c.reserved_error_pct is not None]
    fit = sum(c.fits_ok for c in checks)
    return (f"memory median {statistics.median(mem):.1f}% p90 {percentile(mem, 90):.1f}% max {max(mem):.1f}%"
            f" | fit {fit}/{len(checks)}"
            f" | time median {statistics.median(tim):.1f}% p90 {percentile(tim, 90):.1f}% max {max(tim):.1f}%"
            f" | reserved median {statistics.median(res):.1f}% p90 {percentile(res, 90):.1f}%")


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a runs .jsonl file; PlanError naming the line when one is not JSON."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise PlanError(f"runs: cannot read {path}: {err.strerror or err}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise PlanError(f"runs: {path} line {n} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not {"model", "method", "batch_size", "seq_len", "grad_ckpt"} <= set(row):
            raise PlanError(f"runs: {path} line {n} lacks model/method/batch_size/seq_len/grad_ckpt")
        rows.append(row)
    return rows


def groups(checks: Iterable[RunCheck]) -> dict[str, list[RunCheck]]:
    out: dict[str, list[RunCheck]] = {}
    for c in checks:
        out.setdefault(c.group, []).append(c)
    return out
