"""What the CLI's commands share: `--calibrated`.

A leaf below cli.py, cli_search.py, cli_hardware.py and report/command.py, so that none of
them imports another for these (cli.py imports the others lazily, as subcommands).
"""
from __future__ import annotations

import argparse
import sys

_warned: set[str] = set()  # store lines already printed by this process (one per --jsonl stream)

CALIBRATED_HELP = "apply the saved probe profile of the plan's GPU (napkin probe --list shows them)"


def add_calibrated_flag(parser: argparse.ArgumentParser) -> None:
    """--calibrated on a command that prices a plan (estimate, search, advise, compare, report)."""
    parser.add_argument("--calibrated", action="store_true", help=CALIBRATED_HELP)


def calibration_for(args: argparse.Namespace, plan):
    """The profile a command prices plan with: the plan's GPU's saved one with --calibrated
    (None when it has none), None without."""
    return plan_calibration(plan) if getattr(args, "calibrated", False) else None


def plan_calibration(plan):
    """The saved probe profile of the plan's GPU (None when there is none); a store file that
    does not read is skipped with a warning naming it on stderr."""
    from .core.calibration import profile_for_gpu_and_warnings
    profile, warnings = profile_for_gpu_and_warnings(plan.gpu)
    for line in warnings:
        if line not in _warned:
            _warned.add(line)
            print(f"napkin: warning: {line}", file=sys.stderr)
    return profile
