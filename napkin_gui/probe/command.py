"""`napkin probe`: run the probe headless, manage calibration profiles. Formatting only.

napkin probe [--trial PLAN.json [--layers 2,4] [--memory-snapshot PATH]] [--json] [--save | --no-save]
             [--cpu] [--device cuda:N]
napkin probe --list [--json] | --delete ID | --export ID PATH | --import PATH

Exit status: 0 done (also when there is no GPU: the NVML status line says why), 1 a
requested trial failed on the GPU, 2 bad input (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from ..core import calibration as cal
from ..core.errors import PlanError
from ..units import gib, seconds


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse hook: one line, exit 2 (raised as PlanError)
        raise PlanError(f"napkin probe: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="napkin probe", description="Measure the local GPU and calibrate estimates.")
    p.add_argument("--trial", metavar="PLAN.json", help="also run a short real training trial of this plan")
    p.add_argument("--layers", help="decoder layers of the reduced trial models, e.g. 2,4 (default)")
    p.add_argument("--memory-snapshot", metavar="PATH",
                   help="write torch's allocator snapshot of one trial step (CUDA; view at pytorch.org/memory_viz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", dest="save", action="store_true", default=None,
                   help="save the profile (default for a GPU run)")
    p.add_argument("--no-save", dest="save", action="store_false", help="do not save the profile")
    p.add_argument("--cpu", action="store_true", help="run the benchmarks (and trial) on the CPU as a self-test")
    p.add_argument("--device", default="cuda", help="CUDA device, e.g. cuda:1 (default cuda)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--list", action="store_true", help="list saved calibration profiles")
    group.add_argument("--delete", metavar="ID", help="delete a saved profile")
    group.add_argument("--export", nargs=2, metavar=("ID", "PATH"), help="write a saved profile to PATH")
    group.add_argument("--import", dest="import_path", metavar="PATH", help="add a profile file to the store")
    return p


def probe_command(argv: list[str]) -> int:
    """Run `napkin probe` with argv (without the 'probe' word); returns the exit status."""
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as done:  # --help printed
            return int(done.code or 0)
        if args.list:
            return _list(args.json)
        if args.delete:
            cal.delete_profile(args.delete)
            print(f"deleted {args.delete}")
            return 0
        if args.export:
            cal.export_profile(cal.find_profile(args.export[0]), args.export[1])
            print(f"wrote {args.export[1]}")
            return 0
        if args.import_path:
            profile = cal.import_profile(args.import_path)
            print(f"imported {profile.id} ({cal.profile_label(profile)})")
            return 0
        return _probe(args)
    except PlanError as err:
        print(str(err), file=sys.stderr)
        return 2
    except OSError as err:
        print(f"napkin probe: {err}", file=sys.stderr)
        return 2


def _layers(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        layers = tuple(int(t) for t in text.split(","))
    except ValueError:
        layers = ()
    if not layers or min(layers) < 1:
        raise PlanError(f"--layers: must be comma-separated integers >= 1 such as 2,4, got {text!r}")
    return layers


def _probe(args: argparse.Namespace) -> int:
    from ..core.plan import load_plan
    from .runner import run_probe

    plan = load_plan(args.trial) if args.trial else None
    layers = _layers(args.layers)
    device = "cpu" if args.cpu else args.device
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise PlanError(f"--device: use cuda or cuda:N, got {device!r}")
    spec = _model_spec(plan)
    result = run_probe(plan, device=device, trial_layers=layers, model_spec=spec,
                       memory_snapshot=args.memory_snapshot)
    saved = None
    if result.profile is not None and result.profile.device == "cuda" and args.save is not False:
        saved = str(cal.save_profile(result.profile))
    # measured vs estimated only for a GPU run: a CPU self-test is not the plan's GPU
    gpu_run = result.profile is not None and result.profile.device == "cuda"
    estimate = _estimate(plan, result.profile) if plan is not None and gpu_run else None
    if args.json:
        print(json.dumps(result_to_dict(result, saved, estimate), indent=1, allow_nan=False))
    else:
        print(format_result(result, saved, estimate))
    gpu_ran = result.benchmarks is not None and result.benchmarks.is_cuda
    return 1 if plan is not None and gpu_ran and (result.trial is None or not result.trial.ok) else 0


def _model_spec(plan: Any) -> Any:
    """Resolve the plan's model up front so an unknown model is bad input (exit 2)."""
    if plan is None:
        return None
    from ..core.model_source import resolve_model
    return resolve_model(plan.model)


def _estimate(plan: Any, profile: Any) -> Any:
    """The calibrated estimate of the trialled plan, for measured-vs-estimated; None if it fails."""
    try:
        from ..core.estimate import estimate
        # the trial ran on this card: estimate the plan for it, whatever GPU the plan names
        return estimate(dataclasses.replace(plan, gpu=profile.gpu_id or profile.gpu_name), calibration=profile)
    except Exception:  # noqa: BLE001 - the comparison is extra; the measurement stands alone
        return None


def _list(as_json: bool) -> int:
    profiles, warnings = cal.load_profiles()
    if as_json:
        print(json.dumps({"profiles": [cal.profile_to_dict(p) for p in profiles], "warnings": list(warnings)},
                         indent=1, allow_nan=False))
        return 0
    if not profiles:
        print(f"no calibration profiles in {cal.profiles_dir()}")
    for p in profiles:
        trials = f", {len(p.trials)} trial{'s' if len(p.trials) != 1 else ''}" if p.trials else ""
        print(f"{p.id}  {cal.profile_label(p)}  (driver {p.driver_version}, torch {p.torch_version}{trials})")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def format_result(result: Any, saved: str | None = None, est: Any = None) -> str:
    """Human summary of a ProbeResult (and the estimate of the trialled plan, if any)."""
    lines = [f"NVML: {result.nvml.status}"]
    for g in result.nvml.gpus:
        extras = [f"{g.temperature_c} °C" if g.temperature_c is not None else "",
                  f"{g.power_limit_w:.0f} W limit" if g.power_limit_w else "",
                  f"PCIe gen{g.pcie_gen} x{g.pcie_width}" if g.pcie_gen else "",
                  f"NVLink {g.nvlink_active_links} links" if g.nvlink_active_links else "",
                  f"SM {g.sm_clock_mhz} MHz" if g.sm_clock_mhz else ""]
        lines.append(f"  GPU {g.index}  {g.name}  {gib(g.used_bytes)} used of {gib(g.total_bytes)}"
                     + "".join(f" · {e}" for e in extras if e))
    b = result.benchmarks
    if b is not None:
        rates = "  ".join(f"{d} {r:,.1f}" if r >= 10 else f"{d} {r:.3g}" for d, r in b.matmul_tflops)
        lines += [f"benchmarks on {b.device} ({b.device_name}), {b.seconds:.1f} s",
                  f"  matmul TFLOP/s: {rates}"]
        parts = []
        if b.memory_bandwidth_gbps:
            parts.append(f"device copy {b.memory_bandwidth_gbps:,.0f} GB/s (read+write)")
        if b.h2d_gbps and b.d2h_gbps:
            parts.append(f"pinned host {b.h2d_gbps:.1f}/{b.d2h_gbps:.1f} GB/s (h2d/d2h)")
        if b.kernel_launch_us:
            parts.append(f"kernel launch {b.kernel_launch_us:.1f} µs")
        lines.append("  " + " · ".join(parts))
        if b.is_cuda:
            lines.append(f"  CUDA context {gib(b.cuda_context_bytes)} · cuBLAS workspaces {gib(b.cublas_workspace_bytes)}")
        lines += [f"  note: {n}" for n in b.notes]
    if result.trial is not None:
        lines.append(result.trial.status)
        r = result.trial.record
        if r is not None:
            lines += _trial_lines(r, est)
    lines.append(result.status if b is not None or result.trial is not None else "")
    if saved:
        lines.append(f"saved profile {result.profile.id} to {saved} (napkin estimate --calibrated uses it)")
    return "\n".join(line for line in lines if line)


def _trial_lines(r: Any, est: Any) -> list[str]:
    lines = [f"  params {r.total_params:,} · trainable {r.trainable_params:,} (extrapolated to {r.full_layers} layers)"]
    m = est.memory if est is not None else None
    if r.memory_measured:
        pairs = [("peak allocated", r.peak_allocated_bytes, m and m.peak_allocated_bytes),
                 ("peak reserved", r.peak_reserved_bytes, m and m.peak_reserved_bytes),
                 ("device used", r.device_used_bytes, m and m.device_used_bytes)]
        for label, measured, estimated in pairs:
            tail = f"estimated {gib(estimated)} · " if estimated else ""
            lines.append(f"  {label:<15}{tail}measured {gib(measured)}")
    if r.step_seconds is not None:
        tail = f"estimated {seconds(est.time.step_seconds)} · " if est is not None else ""
        lines.append(f"  {'step time':<15}{tail}measured {seconds(r.step_seconds)} per micro-batch")
    lines += [f"  note: {n}" for n in r.notes]
    return lines


def result_to_dict(result: Any, saved: str | None = None, est: Any = None) -> dict[str, Any]:
    """The ProbeResult as JSON-ready data."""
    trial = None
    if result.trial is not None:
        record = result.trial.record
        trial = {"status": result.trial.status,
                 "record": cal.profile_to_dict(dataclasses.replace(result.profile, trials=(record,)))["trials"][0]
                 if record is not None and result.profile is not None else None}
    out: dict[str, Any] = {
        "status": result.status, "cancelled": result.cancelled,
        "nvml": dataclasses.asdict(result.nvml),
        "benchmarks": dataclasses.asdict(result.benchmarks) if result.benchmarks is not None else None,
        "trial": trial,
        "profile": cal.profile_to_dict(result.profile) if result.profile is not None else None,
        "saved": saved,
    }
    if est is not None:
        out["estimate"] = {"peak_allocated_bytes": est.memory.peak_allocated_bytes,
                           "peak_reserved_bytes": est.memory.peak_reserved_bytes,
                           "device_used_bytes": est.memory.device_used_bytes,
                           "step_seconds": est.time.step_seconds, "calibration": est.calibration}
    return out
