"""The background process's side of ui/background.py: run curve, advice and search jobs sent
through a pipe. Imports no Qt, so the spawned child starts with the core alone."""
from __future__ import annotations

from typing import Any

KINDS = ("sweeps", "advice", "search")  # in the order the child runs them
READY = "ready"


def run_job(kind: str, plan: Any, calibration: Any, estimates: Any) -> Any:
    """What the window would compute for one job (estimates: an EstimateCache)."""
    estimates.set_calibration(calibration)
    if kind == "sweeps":
        from ..core.sweep import plan_sweeps
        return plan_sweeps(plan, estimates.get_point, estimates.get_fits)
    if kind == "advice":
        from ..core.advise import advise
        return tuple(advise(plan, calibration=calibration))
    if kind == "search":  # the Best plans view (ui/best_plans_search.py)
        from ..core.best_plans import best_plans
        return best_plans(plan, calibration)
    raise ValueError(f"unknown job kind {kind!r}")


def serve(conn: Any, nice: int = 0) -> None:
    """The child's loop: of each kind only the newest job is run, curves before advice.

    nice > 0 lowers the child's CPU priority (os.nice) so that it runs only on time the
    window and the curves' child leave: the search's child (ui/best_plans_search.py)."""
    import gc
    import os

    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass

    from ..core.errors import PlanError
    from ..core.gpu_catalog import gpu_catalog
    from ..core.time_efficiency import time_efficiency
    from .estimate_cache import EstimateCache
    estimates = EstimateCache()
    gpu_catalog(), time_efficiency()  # read once, before the freeze below
    # as in the window (ui/gc_tuning.py): what exists now never becomes garbage, so full
    # collections need not walk it
    gc.collect()
    gc.freeze()
    conn.send((READY, "ok", None))
    waiting: dict[str, tuple] = {}  # kind -> its newest job
    while True:
        try:
            while not waiting or conn.poll():  # block only when idle; take all that was sent
                message = conn.recv()
                if message is None:
                    return
                older = waiting.get(message[1])
                if older is not None:
                    conn.send((older[0], "stale", None))
                waiting[message[1]] = message
        except (EOFError, OSError):
            return
        job, kind, plan, calibration = waiting.pop(next(k for k in KINDS if k in waiting))
        try:
            result = ("ok", run_job(kind, plan, calibration, estimates))
        except PlanError as err:
            result = ("plan-error", str(err))
        except Exception as err:  # noqa: BLE001 - reported to the window, which computes it itself
            result = ("error", f"{type(err).__name__}: {err}")
        try:
            conn.send((job, *result))
        except (EOFError, OSError):
            return
