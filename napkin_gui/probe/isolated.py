"""run_probe in a child process: the app never holds a CUDA context or imports torch.

Once torch has touched CUDA, the process keeps its context (about 0.5-1.3 GiB of GPU
memory, shared/groundtruth/env-h100.json) until it exits; a crash inside a CUDA library
(bitsandbytes, a driver fault) kills the process. Running the probe in a `spawn` child
returns all of that to the user's training jobs and turns a crash into a status line.
Same signature and result as runner.run_probe; ProbeWorker(probe=run_probe_isolated).
A frozen app (PyInstaller) must call multiprocessing.freeze_support() first in main().
"""
from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from typing import Any, Callable

from ..core.plan import Plan
from .nvml import NvmlSnapshot
from .runner import ProbeResult

# After a cancel, how long the child may take to reach its next check before it is killed.
CANCEL_GRACE_SECONDS = 20.0


def _child(messages: Any, stop: Any, plan: Plan | None, kwargs: dict[str, Any]) -> None:
    from .runner import run_probe
    result = run_probe(plan, progress=lambda f, text: messages.put(("progress", (f, text))),
                       should_stop=stop.is_set, nvml_snapshot=lambda snap: messages.put(("nvml", snap)),
                       **kwargs)
    messages.put(("result", result))


def run_probe_isolated(trial_plan: Plan | None = None, progress: Callable[[float, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None, *,
                       nvml_snapshot: Callable[[NvmlSnapshot], None] | None = None,
                       poll_seconds: float = 0.1, **kwargs: Any) -> ProbeResult:
    """runner.run_probe(trial_plan, ...) in a spawned process; never raises.

    kwargs go to run_probe and must pickle (device, bench_sizes, trial_layers, model_spec,
    memory_snapshot); an NVML backend object cannot cross, the child opens its own.
    """
    progress = progress or (lambda f, t: None)
    should_stop = should_stop or (lambda: False)
    ctx = multiprocessing.get_context("spawn")
    messages, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_child, args=(messages, stop, trial_plan, kwargs), daemon=True,
                       name="napkin-probe")
    proc.start()
    cancelled_at: float | None = None
    last_nvml = NvmlSnapshot(ok=False, status="probe process gave no NVML reading")
    try:
        while True:
            if cancelled_at is None and should_stop():
                stop.set()
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
                proc.kill()
                return ProbeResult("probe cancelled (stopped the probe process)", last_nvml, cancelled=True)
            try:
                kind, payload = messages.get(timeout=poll_seconds)
            except queue_module.Empty:
                if not proc.is_alive():
                    return ProbeResult(f"probe process ended unexpectedly (exit code {proc.exitcode})", last_nvml)
                continue
            if kind == "progress":
                progress(*payload)
            elif kind == "nvml":
                last_nvml = payload
                if nvml_snapshot is not None:
                    nvml_snapshot(payload)
            else:
                return payload
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        messages.close()
