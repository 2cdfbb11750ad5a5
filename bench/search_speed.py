"""How long core.search takes over the full default space (target: < 1 s per search).

    python bench/search_speed.py [--repeat 3]

For each example plan in resources/examples: the whole space (every catalog card, 1..8 GPUs,
shardings, offloads, splits, AdamW variants, checkpointing) pruned, priced and searched for
both objectives plus the Pareto front, cold (first search of the plan: the model resolved and
its caches empty) and warm (median of --repeat); with the host's load average, since
timings on a shared machine move with it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napkin_gui.core.plan import load_plan  # noqa: E402
from napkin_gui.core.search import search_table  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


def one_search(plan) -> tuple[float, float, object]:
    """(wall, CPU) seconds of one full search: the table, the best of both objectives, the front.
    CPU seconds (time.process_time) move less than wall seconds with other processes' load."""
    start, cpu = time.perf_counter(), time.process_time()
    table = search_table(plan)
    rows = table.rows()
    best = [table.entry(int(table.ranked(objective, rows)[0])) for objective in ("fastest", "cheapest")]
    table.front()
    return time.perf_counter() - start, time.process_time() - cpu, (table, best)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    for path in sorted(EXAMPLES.glob("*.napkin.json")):
        plan = load_plan(path)
        cold, _, (table, best) = one_search(plan)
        runs = [one_search(plan)[:2] for _ in range(args.repeat)]
        warm, warm_cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"{path.name:<42} cold {cold * 1e3:6.0f} ms  warm {warm * 1e3:6.0f} ms (CPU {warm_cpu * 1e3:4.0f} ms)  "
              f"space {table.tried:,} (config, card) pairs, {table.configs_in_space:,} memory configs, "
              f"{len(table):,} fit and priced")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
