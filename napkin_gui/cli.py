"""`napkin` command line: estimate, validate, compare, advise, search, report, probe.

Computing lives in core/; this module only parses arguments and formats. Bad input ends
with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .cli_common import add_calibrated_flag, calibration_for, plan_calibration
from .core.names import algorithm_label, tokens_text
from .core.errors import PlanError
from .units import count, gib, host_ram_text, hours, managed_text, params, seconds, usd, usd_per_hour


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse hook
        raise PlanError(f"{self.prog}: {message}")


def format_estimate(est) -> str:
    """Human table of one Estimate."""
    mem, t = est.memory, est.time
    p = est.plan
    lines = [
        f"{est.model.name} · {p.method} · {p.precision}{algorithm_label(p)} · bs {p.batch_size} × {tokens_text(p)}"
        f"{' · ckpt' if p.grad_ckpt else ''} · {p.optimizer} · {est.gpu.name} × {p.n_gpus}"
        f"{_stack_text(p)}",
        f"params {params(est.total_params)}, trainable {params(est.trainable_params)}",
        "",
        "memory at the peak (per GPU)",
    ]
    for comp in mem.components:
        lines.append(f"  {comp.name:<18}{gib(comp.bytes):>12}   {comp.formula}")
    verdict = "fits" if mem.fits else f"DOES NOT FIT (over by {gib(-mem.headroom_bytes)})"
    lines += [
        f"  {'peak allocated':<18}{gib(mem.peak_allocated_bytes):>12}   peak at: {mem.peak_phase}",
        f"  {'peak reserved':<18}{gib(mem.peak_reserved_bytes):>12}",
        f"  {'device used':<18}{gib(mem.device_used_bytes):>12}   of {gib(mem.capacity_bytes)}: {verdict}",
    ]
    if mem.host_bytes:
        lines.append(f"  {'host RAM per GPU':<18}{gib(mem.host_bytes):>12}   {host_ram_text(mem, p.n_gpus)}")
    if mem.managed_bytes:
        lines.append(f"  {'managed':<18}{gib(mem.managed_bytes):>12}   {managed_text(mem)}")
    lines += _algorithm_lines(est)
    lines += ["", f"time  {seconds(t.step_seconds)} per micro-batch, {seconds(t.optimizer_step_seconds)} per "
                  f"optimizer step, {count(t.tokens_per_second)} tokens/s per GPU, {t.bound}-bound"]
    if est.total is not None:
        lines.append(f"total {hours(est.total.hours)}, {usd(est.total.cost_usd)} for {count(est.total.tokens)} tokens")
    from .core.user_prices import price_citation
    lines.append(f"price {usd_per_hour(est.gpu.price_usd_per_hour)} per GPU: "
                 f"{price_citation(est.gpu.price_source, est.gpu.price_date)}")
    if est.calibration:
        lines.append(f"calibrated: {est.calibration}")
    lines += [f"warning: {w}" for w in est.warnings]
    return "\n".join(lines)


def _algorithm_lines(est) -> list[str]:
    """A preference / RL plan's own phases with their allocated bytes (none for SFT)."""
    algo = est.memory.algorithm
    if algo is None:
        return []
    by_phase = {p.phase: p.allocated_bytes for p in est.memory.timeline}
    lines = ["", f"{algo.algorithm}: {algo.policy_sequences} sequences x {algo.sequence_tokens:,} tokens per policy "
                 f"forward, {algo.scored_tokens:,} scored; reference {algo.reference}"]
    lines += [f"  {name:<22}{gib(by_phase[name]):>12}" for name in algo.phases]
    return lines


def _stack_text(p) -> str:
    """The training stack when it is not plain transformers (empty for today's plans)."""
    parts = [p.framework] if p.framework != "transformers" else []
    parts += [f"loss {p.loss}"] if p.loss != "standard" else []
    parts += [name.replace("_", " ") for name in ("liger", "compile", "activation_offload", "optimizer_in_backward")
              if getattr(p, name)]
    return "".join(f" · {x}" for x in parts)


def _cmd_estimate(args: argparse.Namespace) -> int:
    from .core.estimate import estimate
    from .core.plan import load_plan
    if args.jsonl:
        return _estimate_jsonl(args.jsonl, args.calibrated)
    if not args.plan:
        raise PlanError("estimate: give a PLAN.json or --jsonl PLANS.jsonl")
    from .core.result_json import estimate_to_dict
    plan = load_plan(args.plan)
    est = estimate(plan, calibration=calibration_for(args, plan))
    print(strict_json(estimate_to_dict(est), indent=2) if args.json else format_estimate(est))
    return 0


def strict_json(data, **kwargs) -> str:
    """json.dumps that never writes NaN or Infinity (not JSON): a ValueError instead, which main
    reports as one line."""
    return json.dumps(data, allow_nan=False, **kwargs)


# One plan is a few hundred bytes; a longer line is answered with an error, not read into memory.
MAX_JSONL_LINE_BYTES = 1_000_000


def _jsonl_lines(handle):
    """(line number, bytes or None when the line is over MAX_JSONL_LINE_BYTES) of a binary stream."""
    n = 0
    while True:
        line = handle.readline(MAX_JSONL_LINE_BYTES + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_JSONL_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the long line
                line = handle.readline(MAX_JSONL_LINE_BYTES)
            yield n, None
            continue
        yield n, line


def _estimate_jsonl(path: str, calibrated: bool = False) -> int:
    """One result (or {"error": ...}) per line; a bad line never stops the stream."""
    import os
    import stat
    from .core.estimate import estimate
    from .core.files import loads_json
    from .core.plan import plan_from_dict
    from .core.result_json import estimate_to_dict
    try:
        if path != "-" and stat.S_ISDIR(os.stat(path).st_mode):
            raise PlanError(f"jsonl: {path} is a folder, not a file")
        handle = sys.stdin.buffer if path == "-" else open(path, "rb")  # a pipe or FIFO streams too
    except OSError as err:
        raise PlanError(f"jsonl: cannot read {path}: {err.strerror or err}") from None
    profiles: dict[str, object] = {}  # gpu -> its profile, looked up once per stream
    with handle:
        for n, line in _jsonl_lines(handle):
            if line is not None and not line.strip():
                continue
            try:
                if line is None:
                    raise PlanError(f"longer than {MAX_JSONL_LINE_BYTES:,} bytes")
                plan = plan_from_dict(loads_json(line, "plan"))
                if calibrated and plan.gpu not in profiles:
                    profiles[plan.gpu] = plan_calibration(plan)
                text = strict_json(estimate_to_dict(estimate(plan, calibration=profiles.get(plan.gpu))))
            except PlanError as err:
                text = json.dumps({"error": f"line {n}: {err}"})
            except ValueError as err:  # a NaN figure: a bug, reported on its line as JSON
                text = json.dumps({"error": f"line {n}: internal error: {err} (please report)"})
            print(text, flush=True)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .core import validate
    checks = validate.check_runs(validate.read_runs(args.runs))
    if args.json:
        print(json.dumps([_check_dict(c) for c in checks]))
        return 0
    for group, items in validate.groups(checks).items():
        mem = [abs(c.memory_error_pct) for c in items if c.memory_error_pct is not None]
        tim = [abs(c.time_error_pct) for c in items if c.time_error_pct is not None]
        fit = sum(c.fits_ok for c in items)
        mem_txt = f"memory median {validate.percentile(mem, 50):5.1f}% max {max(mem):5.1f}%" if mem else "memory   (all OOM)"
        tim_txt = f"time median {validate.percentile(tim, 50):5.1f}% max {max(tim):5.1f}%" if tim else ""
        print(f"{group:<28} n={len(items):<3} {mem_txt} | fit {fit}/{len(items)} | {tim_txt}")
        if args.verbose:
            for c in items:
                meas = "OOM" if c.oom else f"{c.measured_peak_mib:8.0f}"
                err = "" if c.memory_error_pct is None else f"{c.memory_error_pct:+6.1f}%"
                terr = "" if c.time_error_pct is None else f"{c.time_error_pct:+6.1f}%"
                print(f"    {c.label:<32} meas {meas:>8} est {c.estimated_peak_mib:8.0f} MiB {err:>8}"
                      f"  fit {'ok' if c.fits_ok else 'WRONG'}  step est {c.estimated_step_s:.3f}s {terr}")
    print(validate.summary_line(checks))
    return 0


def _check_dict(check) -> dict:
    return {f: getattr(check, f) for f in check.__slots__}


def _lazy(module: str, func: str):
    def run(args: argparse.Namespace) -> int:
        import importlib
        return importlib.import_module(module).__getattribute__(func)(args)
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napkin", description="Napkin math for fine-tuning LLMs: memory, time, cost.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    est = sub.add_parser("estimate", help="memory / time / cost of one plan")
    est.add_argument("plan", nargs="?", help="a *.napkin.json plan file")
    est.add_argument("--json", action="store_true", help="the plan-v1 JSON result")
    est.add_argument("--jsonl", metavar="PLANS.jsonl", help="one plan per line in, one result per line out ('-' = stdin)")
    add_calibrated_flag(est)
    est.set_defaults(func=_cmd_estimate)
    val = sub.add_parser("validate", help="compare estimates with measured runs (*.jsonl)")
    val.add_argument("runs")
    val.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    val.add_argument("--json", action="store_true")
    val.set_defaults(func=_cmd_validate)
    cmp_ = sub.add_parser("compare", help="every catalog GPU (x 1/2/4/8) for one plan")
    cmp_.add_argument("plan")
    cmp_.add_argument("--json", action="store_true")
    cmp_.add_argument("--sort", choices=("cost", "time"), default="cost")
    add_calibrated_flag(cmp_)
    cmp_.set_defaults(func=_lazy("napkin_gui.cli_hardware", "compare_command"))
    adv = sub.add_parser("advise", help="the changes that help this plan most")
    adv.add_argument("plan")
    adv.add_argument("--json", action="store_true")
    add_calibrated_flag(adv)
    adv.set_defaults(func=_lazy("napkin_gui.cli_hardware", "advise_command"))
    from .cli_search import add_search_parser
    add_search_parser(sub)
    rep = sub.add_parser("report", help="write a PDF plan report")
    rep.add_argument("plan")
    rep.add_argument("-o", "--output", required=True, metavar="OUT.pdf")
    add_calibrated_flag(rep)
    rep.set_defaults(func=_lazy("napkin_gui.report.command", "report_command"))
    from .cli_catalog import add_catalog_parser  # napkin catalog import|show|reset
    add_catalog_parser(sub)
    # parsed by probe/command.py (main hands it the rest of the line); listed here for --help
    sub.add_parser("probe", add_help=False,
                   help="measure the local GPU, run a short trial, manage calibration profiles (napkin probe --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "probe":  # its own parser; the errors below end it too
            from .probe.command import probe_command
            return probe_command(argv[1:])
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        return int(args.func(args) or 0)
    except PlanError as err:
        print(f"napkin: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug, not bad input: still one line, never a traceback
        print(f"napkin: internal error: {type(err).__name__}: {err} (please report)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
