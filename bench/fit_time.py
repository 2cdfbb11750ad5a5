"""Fit the step-time model's efficiency factors to measured runs and print them.

    python bench/fit_time.py [RUNS.jsonl ...] [--write]

Fits the 'fitted' block of resources/time_efficiency.json (a handful of physical constants:
matmul / attention / elementwise efficiency, host seconds per launch, per module call, per
4-bit call, per checkpointed block, the host/device overlap exponent) by minimizing the
mean absolute log error of step_s_median over every measured, non-OOM run. --write stores
them with the data set and the date. Needs scipy (a development tool, not a dependency).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napkin_gui.core.gpu_catalog import find_gpu  # noqa: E402
from napkin_gui.core.memory.model_state import model_state  # noqa: E402
from napkin_gui.core.model_source import resolve_model  # noqa: E402
from napkin_gui.core.time_efficiency import TimeEfficiency, time_efficiency  # noqa: E402
from napkin_gui.core.time_model import time_estimate  # noqa: E402
from napkin_gui.core.validate import plan_from_run, read_runs  # noqa: E402

DEFAULT_RUNS = ROOT.parent / "shared" / "groundtruth" / "h100-calibration.jsonl"
JSON_PATH = ROOT / "resources" / "time_efficiency.json"
FITTED = ("matmul_efficiency", "matmul_launch_seconds", "attention_efficiency", "elementwise_efficiency",
          "host_launch_seconds", "host_autograd_launch_seconds", "host_module_seconds",
          "host_quant_call_seconds", "host_checkpoint_seconds", "overlap_exponent")
# efficiencies are fractions of the achievable rate
UPPER = {"matmul_efficiency": 1.0, "attention_efficiency": 1.0, "elementwise_efficiency": 1.0}


def load_cases(paths: list[Path]) -> list[tuple]:
    """(plan, spec, gpu, state, measured seconds, label) per measured run."""
    cases = []
    for path in paths:
        for row in read_runs(path):
            if row.get("oom") or not row.get("step_s_median") or "error" in row:
                continue
            plan = plan_from_run(row)
            spec = resolve_model(plan.model)
            cases.append((plan, spec, find_gpu(plan.gpu), model_state(spec, plan), row["step_s_median"],
                          f"{row['model']} {row['method']} bs{row['batch_size']} s{row['seq_len']}"
                          f"{' ckpt' if row['grad_ckpt'] else ''}"))
    return cases


def with_values(base: TimeEfficiency, values: dict[str, float]) -> TimeEfficiency:
    clipped = {k: min(v, UPPER.get(k, math.inf)) for k, v in values.items()}
    return dataclasses.replace(base, **clipped)


def log_errors(cases: list[tuple], eff: TimeEfficiency) -> list[float]:
    return [math.log(time_estimate(plan, spec, gpu, state, eff).step_seconds / measured)
            for plan, spec, gpu, state, measured, _ in cases]


def objective(x, cases, base) -> float:
    eff = with_values(base, {k: math.exp(v) for k, v in zip(FITTED, x)})
    return statistics.fmean(abs(e) for e in log_errors(cases, eff))


def fit(cases: list[tuple], base: TimeEfficiency) -> TimeEfficiency:
    from scipy.optimize import minimize
    x0 = [math.log(getattr(base, k)) for k in FITTED]
    best = minimize(objective, x0, args=(cases, base), method="Nelder-Mead",
                    options={"maxiter": 6000, "xatol": 1e-4, "fatol": 1e-6, "adaptive": True})
    return with_values(base, {k: math.exp(v) for k, v in zip(FITTED, best.x)})


def report(cases: list[tuple], eff: TimeEfficiency, verbose: bool) -> None:
    errs = [abs(math.expm1(e)) * 100 for e in log_errors(cases, eff)]
    ordered = sorted(errs)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    print(f"{len(cases)} runs: |error| median {statistics.median(errs):.1f}% p90 {p90:.1f}% max {max(errs):.1f}%")
    if verbose:
        for case, e in sorted(zip(cases, log_errors(cases, eff)), key=lambda t: t[1]):
            print(f"  {case[5]:<44} {math.expm1(e) * 100:+6.1f}%")


def write(eff: TimeEfficiency, paths: list[Path]) -> None:
    data = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    data["fitted"] = {k: float(f"{getattr(eff, k):.4g}") for k in FITTED}
    data["fitted_on"] = ", ".join(str(p.name) for p in paths) + " (shared/groundtruth, H100 80GB HBM3, torch 2.11, " \
                        "transformers 5.17, peft 0.21, bitsandbytes 0.50.2)"
    data["fitted_date"] = datetime.date.today().isoformat()
    JSON_PATH.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, default=[DEFAULT_RUNS])
    parser.add_argument("--write", action="store_true", help="store the fit in resources/time_efficiency.json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    cases = load_cases(args.runs)
    base = time_efficiency()
    print("current: ", end="")
    report(cases, base, False)
    eff = fit(cases, base)
    print("fitted:  ", end="")
    report(cases, eff, args.verbose)
    print(json.dumps({k: float(f"{getattr(eff, k):.4g}") for k in FITTED}, indent=2))
    if args.write:
        write(eff, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
