"""How long one edit takes to reach the screen: recompute + bars + both curves + table + paint.

Runs the real MainWindow offscreen, applies a scripted sequence of user edits (batch size,
sequence length, method, precision, checkpointing, GPU, GPU count, LoRA rank) through the
PlanController, and times each from set_plan() until the recompute has run and the window
has processed its paint events. 
    python bench/gui_latency.py [--edits 200] [--model llama-3.1-8b] [--startup 5]

Two passes: "session" replays the edits as a user makes them (the estimate cache helps
where a plan or a curve point repeats); "cold" makes every plan unique (nothing cached).
The slower advice (core.advise, on its own 0-ms timer after the views) is timed apart.
Prints p50/p95/max in milliseconds, and the share spent in the core's estimate() calls.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def edits(base, n: int, seed: int = 4):
    """A user's session: mostly slider drags (batch, sequence length), some combo switches."""
    rng = random.Random(seed)
    gpus = ("h100-80gb-sxm", "a100-80gb-sxm", "rtx-4090", "l40s", "a10", "h200-141gb-sxm")
    choices = (("batch_size", tuple(range(1, 65))), ("batch_size", tuple(range(1, 65))),
               ("seq_len", tuple(256 * k for k in range(1, 33))), ("seq_len", tuple(256 * k for k in range(1, 33))),
               ("method", ("lora", "qlora", "full")), ("grad_ckpt", (True, False)), ("gpu", gpus),
               ("lora_r", (8, 16, 32, 64, 128)), ("n_gpus", (1, 2, 4)),
               ("precision", ("bf16", "mixed-bf16", "fp16")), ("optimizer", ("adamw", "adamw-8bit")))
    plan, out = base, []
    while len(out) < n:
        field, values = rng.choice(choices)
        new = dataclasses.replace(plan, **{field: rng.choice(values)})
        if new != plan:
            plan = new
            out.append(plan)
    return out


def _stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered))) - 1))]
    return statistics.median(ordered), p95, ordered[-1]


STARTUP = """
import os, sys, time
from PySide6.QtWidgets import QApplication
from napkin_gui.ui.main_window import MainWindow
app = QApplication([])
window = MainWindow(poll_nvml=True, persist=False)
window.show()
window.controller.recomputed.connect(lambda: QApplication.processEvents() or print(
    'painted', 'torch' in sys.modules, flush=True) or os._exit(0))
app.exec()
"""


def startup_seconds(runs: int) -> None:
    """Wall time of `python -c` from exec to the first estimate painted, as a user waits for it."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    times, torch = [], False
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STARTUP], env=env, capture_output=True, text=True, timeout=60)
        times.append(time.perf_counter() - t)
        torch = torch or "painted True" in out.stdout
        assert "painted" in out.stdout, out.stderr
    times.sort()
    print(f"startup to first painted estimate ({runs} runs): median {statistics.median(times):.2f} s, "
          f"max {times[-1]:.2f} s; torch imported: {torch}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--startup", type=int, default=5, metavar="RUNS", help="startup runs (0: skip)")
    args = parser.parse_args()
    if args.startup:
        startup_seconds(args.startup)

    from PySide6.QtWidgets import QApplication

    from napkin_gui.core.plan import Plan
    from napkin_gui.ui.main_window import MainWindow

    os.environ.setdefault("NAPKIN_CONFIG_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "napkin-bench-config"))
    app = QApplication.instance() or QApplication([])
    base = Plan(model=args.model, batch_size=4, grad_ckpt=True, dataset_tokens=100e6)
    window = MainWindow(base, restore_session=False, poll_nvml=False, persist=False)
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    window.controller.flush()
    app.processEvents()
    from napkin_gui.ui.gc_tuning import freeze_startup_objects
    freeze_startup_objects()  # as napkin_gui.app.main does once the window is shown

    spent = [0.0]
    from napkin_gui.ui import estimate_cache
    real = estimate_cache.estimate

    def timed_estimate(*a, **k):
        t = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    real_point = estimate_cache.estimate_point

    def timed_point(*a, **k):
        t = time.perf_counter()
        try:
            return real_point(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    estimate_cache.estimate = timed_estimate
    estimate_cache.estimate_point = timed_point
    c = window.controller
    tabs = ("timeline", "time", "hardware")
    for label, unique in (("session", False), ("cold", True)):
        c.clear_caches()
        views, table, total, advice = {t: [] for t in tabs}, [], [], []
        whole: dict[str, list[float]] = {t: [] for t in tabs}
        core = []
        for tab, name in enumerate(tabs):
            window.tabs.setCurrentIndex(tab)  # each view gets painted in turn
            c.flush()
            app.processEvents()
            for k, plan in enumerate(edits(base, args.edits // 3)):
                if unique:  # a plan never seen before: nothing of it or its curves is cached
                    plan = dataclasses.replace(plan, epochs=1 + tab + k * 1e-6)
                spent[0] = 0.0
                t0 = time.perf_counter()
                c.set_plan(plan)
                c.flush(hardware=False, advice=False)  # estimate, bars, timeline, both curves
                c.hold()
                app.processEvents()  # paint
                t1 = time.perf_counter()
                c.release()
                c.flush(advice=False)  # the hardware table when its tab is visible
                c.hold()
                app.processEvents()
                t2 = time.perf_counter()
                c.release()
                c.flush()
                app.processEvents()
                t3 = time.perf_counter()
                views[name].append((t1 - t0) * 1000)
                total.append((t2 - t0) * 1000)
                whole[name].append((t2 - t0) * 1000)
                advice.append((t3 - t2) * 1000)
                core.append(spent[0] / (t2 - t0))
                if name == "hardware":
                    table.append((t2 - t1) * 1000)
        print(f"{label}: {sum(len(v) for v in views.values())} edits, estimate cache "
              f"{c.estimates.hits} hits / {c.estimates.misses} misses, core estimate() + estimate_point() "
              f"{statistics.mean(core):.0%} of the time")
        for name in tabs:
            print(f"  bars + timeline + both curves + paint, {name:8s} tab shown: "
                  "p50 {:.1f} ms  p95 {:.1f} ms  max {:.1f} ms".format(*_stats(views[name])))
        print("  hardware table (compare_hardware + model reset + paint):  "
              "p50 {:.1f} ms  p95 {:.1f} ms  max {:.1f} ms".format(*_stats(table)))
        for name in tabs:
            print(f"  whole edit, {name:8s} tab shown (views + table if shown):   "
                  "p50 {:.1f} ms  p95 {:.1f} ms  max {:.1f} ms".format(*_stats(whole[name])))
        print("  whole edit, every tab:                                      "
              "p50 {:.1f} ms  p95 {:.1f} ms  max {:.1f} ms".format(*_stats(total)))
        print("  advice afterwards (core.advise, deferred):                  "
              "p50 {:.1f} ms  p95 {:.1f} ms  max {:.1f} ms".format(*_stats(advice)))
    c.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
