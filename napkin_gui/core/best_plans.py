"""Best plans for the app's "Best plans" view: one search, every objective's ranked list and front.

One core.search.search_table over every card and up to DEFAULT_MAX_GPUS GPUs holds every
plan that trains what the user's plan trains and fits; each objective is a filter of its rows
(which cards, how many GPUs) and a ranking (SearchTable.ranked), so switching objective in
the view needs no second search:

- fastest on my card: the plan's card, at most the plan's GPU count, by tokens/s;
- cheapest: any card and count, by cost per token;
- fastest overall: any card and count, by tokens/s;
- fits my card with at most N GPUs: the plan's card, 1..N GPUs, by cost per token.

Each list holds SearchEntry (core.estimate of the plan, so the figures napkin estimate prints),
without rows as fast as a better-ranked one on the same hardware (_distinct_rows);
each front is SearchTable.front of the objective's rows, with hours and cost per row from
core.estimate.total_estimate (the formula estimate uses) over the table's tokens/s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .estimate import total_estimate
from .gpu_catalog import find_gpu
from .plan import Plan
from .search import DEFAULT_MAX_GPUS, SearchEntry, SearchTable, plan_entry, shared_search_table

if TYPE_CHECKING:
    from numpy import ndarray

    from .calibration import CalibrationProfile

# (key, label): the view's objective selector, in this order
OBJECTIVES = (("mine", "Fastest on my card"), ("cheapest", "Cheapest"), ("fastest", "Fastest overall"),
              ("fits", "Fits my card with at most N GPUs"))
TOP = 8
# without dataset_tokens the front is priced for this many tokens (the view says so)
FRONT_TOKENS_WITHOUT_DATASET = 1e9


@dataclass(frozen=True, slots=True)
class FrontPoint:
    """One plan of a Pareto front: where the scatter draws it."""

    plan: Plan
    hours: float
    cost_usd: float
    tokens_per_second: float


@dataclass(frozen=True, slots=True)
class BestPlans:
    """What the view shows for one (plan, calibration): per objective (and N for "fits"),
    the ranked entries, best first, and the front."""

    plan: Plan
    calibration: CalibrationProfile | None
    lists: tuple[tuple[tuple[str, int], tuple[SearchEntry, ...]], ...]
    fronts: tuple[tuple[tuple[str, int], tuple[FrontPoint, ...]], ...]
    front_tokens: float      # tokens the front's hours and cost are for
    searched: int            # (config, card) pairs in the space
    priced: int              # of them that fit and were priced

    def entries(self, objective: str, n: int = 0) -> tuple[SearchEntry, ...]:
        return dict(self.lists).get(_key(self.plan, objective, n), ())

    def front(self, objective: str, n: int = 0) -> tuple[FrontPoint, ...]:
        return dict(self.fronts).get(_key(self.plan, objective, n), ())


def _key(plan: Plan, objective: str, n: int) -> tuple[str, int]:
    """Lists are stored per N only for "fits"; the others ignore n."""
    return (objective, min(max(n, 1), DEFAULT_MAX_GPUS)) if objective == "fits" else (objective, 0)


def _selections(plan: Plan) -> list[tuple[tuple[str, int], str, tuple[str, ...] | None, int | None]]:
    """(key, ranking, cards, max GPUs) of every list the view can show."""
    mine = (find_gpu(plan.gpu).id,)
    out = [(("mine", 0), "fastest", mine, plan.n_gpus), (("cheapest", 0), "cheapest", None, None),
           (("fastest", 0), "fastest", None, None)]
    out += [(("fits", n), "cheapest", mine, n) for n in range(1, DEFAULT_MAX_GPUS + 1)]
    return out


def _distinct_rows(table: SearchTable, ranked: ndarray, top: int) -> list[int]:
    """The first `top` ranked rows, leaving out a row as fast as one before it on the same
    card and count (so as cheap): it only changes more of the plan (ranked puts fewer
    changes first), e.g. activation offload that the step does not need."""
    seen: set[tuple[int, int, float]] = set()
    out: list[int] = []
    for row in ranked.tolist():
        key = (int(table.card_of_row[row]), int(table.n_gpus[row]), float(f"{table.tokens_per_second[row]:.6g}"))
        if key in seen:
            continue
        seen.add(key)
        out.append(row)
        if len(out) == top:
            break
    return out


def _front_points(table: SearchTable, rows: ndarray, tokens: float) -> tuple[FrontPoint, ...]:
    out = []
    for row in table.front(rows).tolist():
        plan = table.plan(row)
        tps = float(table.tokens_per_second[row])
        price = float(table.cards[int(table.card_of_row[row])].price_usd_per_hour)
        total = total_estimate(plan, tps, price) if plan.dataset_tokens > 0 else None
        if total is None:   # priced for FRONT_TOKENS_WITHOUT_DATASET tokens
            hours = tokens / tps / 3600 if tps > 0 else float("inf")
            out.append(FrontPoint(plan, hours, hours * price * plan.n_gpus, tps))
        else:
            out.append(FrontPoint(plan, total.hours, total.cost_usd, tps))
    return tuple(out)


def best_plans(plan: Plan, calibration: CalibrationProfile | None = None, top: int = TOP) -> BestPlans:
    """Every objective's best plans and front for plan (PlanError when the plan is invalid)."""
    table = shared_search_table(plan, calibration=calibration)   # the advice's too
    tokens = plan.dataset_tokens * plan.epochs if plan.dataset_tokens > 0 else FRONT_TOKENS_WITHOUT_DATASET
    entries: dict[Plan, SearchEntry] = {}   # one core.estimate per distinct plan
    lists, fronts = [], []
    for key, ranking, cards, max_gpus in _selections(plan):
        rows = table.rows(cards, max_gpus)
        best = []
        for row in _distinct_rows(table, table.ranked(ranking, rows), top):
            candidate = table.plan(row)
            if candidate not in entries:
                entries[candidate] = plan_entry(candidate, plan, calibration)
            best.append(entries[candidate])
        lists.append((key, tuple(best)))
        fronts.append((key, _front_points(table, rows, tokens)))
    return BestPlans(plan, calibration, tuple(lists), tuple(fronts), tokens, table.tried, len(table))
