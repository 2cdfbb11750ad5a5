"""Everything one report shows, computed before any formatting: ReportData."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from ..core.plan import Plan
from ..core.result import Estimate
from ..core.sweep import Sweep, batch_sweep, fitting_by, priced_by
from .extras import advice_lines, best_plans, hardware_table


@dataclass(frozen=True, slots=True)
class ReportData:
    """The estimate, the batch sweep, the hardware rows and the advice of one plan."""

    estimate: Estimate
    sweep: Sweep  # the plan over micro-batch sizes (core.sweep, the Time view's grid)
    hardware_header: tuple[str, ...]
    hardware_rows: tuple[tuple[str, ...], ...]
    hardware_note: str
    advice: tuple[str, ...]
    created: str  # ISO date the report was made
    best_header: tuple[str, ...] = ()             # core.search's best plans per objective
    best_rows: tuple[tuple[str, ...], ...] = ()
    best_note: str = ""


def collect_report_data(plan: Plan, calibration=None, today: _dt.date | None = None) -> ReportData:
    """Run core.estimate, the batch sweep, the hardware comparison, the plan search and the
    advice for a plan, each priced with calibration (a probe profile) when one is given."""
    from ..core.estimate import estimate
    est = estimate(plan, calibration)
    header, rows, note = hardware_table(plan, calibration)
    best_header, best_rows, best_note = best_plans(plan, calibration)
    return ReportData(
        estimate=est,
        sweep=batch_sweep(plan, priced_by(calibration), fitting_by(calibration)),
        hardware_header=header,
        hardware_rows=rows,
        hardware_note=note,
        advice=advice_lines(plan, calibration),
        created=(today or _dt.date.today()).isoformat(),
        best_header=best_header,
        best_rows=best_rows,
        best_note=best_note,
    )
