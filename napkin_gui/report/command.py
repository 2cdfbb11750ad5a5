"""`napkin report PLAN.json -o OUT.pdf`: the CLI side of the PDF report."""
from __future__ import annotations

import argparse
import os

from ..core.errors import PlanError


def report_command(args: argparse.Namespace) -> int:
    """Load the plan, write the PDF, print one line; PlanError (exit 2) on a bad plan or path."""
    from ..core.plan import load_plan
    from .pdf import build_report
    from ..cli_common import calibration_for
    plan = load_plan(args.plan)
    calibration = calibration_for(args, plan)  # --calibrated: the saved probe profile of the plan's GPU
    out = args.output
    if os.path.isdir(out):
        raise PlanError(f"output: {out} is a folder; give a file name such as report.pdf")
    try:
        pages = build_report(plan, out, calibration)
    except OSError as err:
        raise PlanError(f"output: cannot write {out}: {err.strerror or err}") from None
    print(f"wrote {out} ({pages} page{'s' if pages != 1 else ''}, {os.path.getsize(out) / 1024:.0f} KB)")
    return 0
