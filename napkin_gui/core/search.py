"""Plan search: the fastest, cheapest and roomiest plans that train what the user's plan trains.

The space (core/search_space.py): recipes (method, sequence length, AdamW variant,
checkpointing, ...) x layouts (GPU count, sharding, offload) x splits of the per-GPU batch
into micro-batch x accumulation x catalog cards. Three steps keep it fast:

1. Memory, pruned by a monotone bound. A step's memory depends on the card only through its
   cuBLAS workspaces (alive in every phase, core/memory/timeline.py), so one step_peak per
   (recipe, layout, split) gives every card's reserved bytes by a shift (as compare.py does).
   Splits go from the smallest micro-batch up: a micro-batch that does not fit a card leaves
   that card out for every larger one (activations, logits and transients grow with the
   micro-batch; at equal accumulation the rest does not change). The one split without
   accumulation (grad_accum 1: gradients are not held across micro-batches) is always tried.
2. Time of the survivors only, priced over numpy arrays with time_model.priced_step, the
   path compare_hardware uses: one call per (recipe, split, offload), rows = cards x shardings.
3. The Pareto front over (tokens/s, cost per token, memory headroom) and the best per
   objective. What the search returns (SearchEntry) comes from core.estimate of the plan
   itself, so every figure it shows is napkin estimate's.
"""
from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple

from .compare import _columns, card_shift_bytes
from .errors import PlanError
from .estimate import estimate
from .gpu_catalog import find_gpu, gpu_catalog
from .gpu_spec import GpuSpec
from .memory.model_state import model_state
from .memory.summary import (StepPeak, capacity_bytes, outside_torch_bytes, paged_out_bytes, paged_traffic_bytes,
                             step_peak)
from .memory.sharding import GpuState, gpu_state
from .memory.timeline import block_memories, phase_names
from .model_source import resolve_model
from .plan import PLAN_FIELDS, Plan, check_combination, plan_to_dict
from .result import ALLOCATED_COMPONENTS
from .search_space import Recipe, global_batch, layouts, recipes, runs, splits
from .step_work import PhaseWork, StepWork, step_work
from .time_efficiency import time_efficiency
from .time_model import CardRates, card_rates_over, plan_traffic, priced_step

if TYPE_CHECKING:
    from numpy import ndarray

    from .calibration import CalibrationProfile

OBJECTIVES = ("fastest", "cheapest")
DEFAULT_MAX_GPUS = 8
MAX_SEARCH_GPUS = 1024   # GPU counts tried are the divisors of the global batch up to this
# figures closer than this (relative) count as equal when ranking and building the front:
# the array path prices to ~1e-15 of step_time (compare._step_times)
TIE = 1e-9


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """One plan as napkin estimate sees it (the contract's ENTRY), with what changed."""

    plan: Plan
    fits: bool
    step_seconds: float
    tokens_per_second: float          # all GPUs together
    hours: float | None
    cost_usd: float | None
    device_used_bytes: int
    capacity_bytes: int
    usd_per_hour: float               # all GPUs together
    changes: tuple[str, ...]

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.device_used_bytes

    @property
    def usd_per_million_tokens(self) -> float:
        return self.usd_per_hour / (self.tokens_per_second * 3600) * 1e6 if self.tokens_per_second > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class _Config:
    """A recipe at one layout and split, its step's memory on the reference card."""

    plan: Plan                  # on the reference card
    recipe: int                 # index into the search's recipes
    reserved_bytes: int         # peak reserved on the reference card
    managed_bytes: int
    changes: int                # plan fields (but the card) that differ from the user's plan


class SearchTable:
    """Every fitting (config, card) row priced: numpy columns, one element per row."""

    def __init__(self, base: Plan, cards: tuple[GpuSpec, ...], configs: list[_Config],
                 config_of_row: ndarray, card_of_row: ndarray, tokens_per_second: ndarray,
                 step_seconds: ndarray, device_used_bytes: ndarray, calibration: CalibrationProfile | None,
                 tried: int) -> None:
        import numpy
        self.base, self.cards, self.configs, self.calibration = base, cards, configs, calibration
        self.config_of_row, self.card_of_row = config_of_row, card_of_row
        self.tokens_per_second, self.step_seconds = tokens_per_second, step_seconds
        column = lambda f: numpy.array([f(c) for c in configs], dtype=float)  # noqa: E731  one per config
        self.n_gpus = column(lambda c: c.plan.n_gpus)[config_of_row]
        self.device_used_bytes = device_used_bytes
        base_card = find_gpu(base.gpu).id
        self.changes = (column(lambda c: c.changes)[config_of_row]
                        + numpy.array([g.id != base_card for g in cards], dtype=float)[card_of_row])
        price = numpy.array([g.price_usd_per_hour for g in cards])[card_of_row] * self.n_gpus
        with numpy.errstate(divide="ignore"):
            self.usd_per_token = numpy.where(tokens_per_second > 0, price / 3600 / tokens_per_second, numpy.inf)
        self.headroom_bytes = numpy.array([capacity_bytes(g) for g in cards], dtype=float)[card_of_row] - self.device_used_bytes
        self._rounded: dict[str, ndarray] = {}
        self.configs_in_space = tried   # (recipe, layout, split) configs, before pruning
        self.tried = tried * len(cards)   # (config, card) pairs the space holds

    def __len__(self) -> int:
        return len(self.tokens_per_second)

    def rounded(self, column: str) -> ndarray:
        """_rounded of one of the columns every ranking reads (made once per table)."""
        if column not in self._rounded:
            self._rounded[column] = _rounded(getattr(self, column))
        return self._rounded[column]

    def plan(self, row: int) -> Plan:
        return replace(self.configs[int(self.config_of_row[row])].plan, gpu=self.cards[int(self.card_of_row[row])].id)

    def rows(self, gpus: Iterable[str] | None = None, max_gpus: int | None = None) -> ndarray:
        """Indices of rows on the given cards (ids) with at most max_gpus GPUs."""
        import numpy
        keep = numpy.ones(len(self), dtype=bool)
        if gpus is not None:
            wanted = {find_gpu(g).id for g in gpus}
            keep &= numpy.isin(self.card_of_row, [i for i, g in enumerate(self.cards) if g.id in wanted])
        if max_gpus is not None:
            keep &= self.n_gpus <= max_gpus
        return numpy.flatnonzero(keep)

    def ranked(self, objective: str, rows: ndarray) -> ndarray:
        """rows best first: fastest by tokens/s (then cost), cheapest by cost per token (then
        tokens/s); figures within TIE rank by the next key, then by fewer changes to the plan,
        then by more headroom."""
        import numpy
        if objective not in OBJECTIVES:
            raise PlanError(f"objective: {objective!r} is not allowed; use one of {', '.join(OBJECTIVES)}")
        tps, usd = self.rounded("tokens_per_second")[rows], self.rounded("usd_per_token")[rows]
        first, second = (-tps, usd) if objective == "fastest" else (usd, -tps)
        return rows[numpy.lexsort((rows, -self.headroom_bytes[rows], self.changes[rows], second, first))]

    def distinct(self, rows: ndarray) -> ndarray:
        """Of ranked rows, the first of each run equal in tokens/s and cost per token (within
        TIE): variants that only move memory (an optimizer or loss kernel that prices alike)
        are shown once, as the plan with the fewest changes."""
        import numpy
        if not len(rows):
            return rows
        key = numpy.stack([self.rounded("tokens_per_second")[rows], self.rounded("usd_per_token")[rows]], axis=1)
        new = numpy.ones(len(rows), dtype=bool)
        new[1:] = numpy.any(key[1:] != key[:-1], axis=1)
        return rows[new]

    def front(self, rows: ndarray | None = None) -> ndarray:
        """Rows no other row beats on tokens/s, cost per token and headroom at once (as good on
        all three, better on one, beyond TIE); of rows equal on all three the one with fewest
        changes; fastest first."""
        import numpy
        rows = numpy.arange(len(self)) if rows is None else rows
        points = numpy.stack([self.rounded("tokens_per_second")[rows], -self.rounded("usd_per_token")[rows],
                              self.rounded("headroom_bytes")[rows]], axis=1)   # [row, objective], larger is better
        # lexicographic, best first: no row can beat one before it
        by = numpy.lexsort((rows, self.changes[rows], -points[:, 2], -points[:, 1], -points[:, 0]))
        order, points = rows[by], points[by]
        # of equal points only the first (fewest changes) can be on the front: drop the rest
        # before the pairwise pass (variants that price alike, e.g. a stack field that changes
        # neither memory nor time of this plan, are half the rows or more)
        first = numpy.ones(len(points), dtype=bool)
        first[1:] = numpy.any(points[1:] != points[:-1], axis=1)
        order, points = order[first], points[first]
        return order[_unbeaten(points)]

    def entry(self, row: int) -> SearchEntry:
        """The row's plan estimated by core.estimate (the figures napkin estimate prints)."""
        return plan_entry(self.plan(row), self.base, self.calibration)


def _unbeaten(points: ndarray, chunk: int = 256, sample: int = 1024) -> ndarray:
    """Indices of the points (distinct rows in lexicographic order, best first; larger is
    better) that no earlier point equals or beats on every column. A point that beats another
    comes before it in that order, so any points can rule others out: those of the front of a
    spread-out sample of them first rule out, at once, the many they beat; of the rest, chunks
    are checked against the front so far at once, and the few that survive one by one."""
    import numpy
    candidates = numpy.arange(len(points))
    if len(points) > 8 * sample:
        spread = numpy.unique(numpy.linspace(0, len(points) - 1, sample).astype(int))
        pivots = points[spread[_unbeaten(points[spread], chunk, sample)]]
        # one pass over the points per pivot, a column at a time (contiguous columns: no
        # [point, pivot, column] temporaries; 29 pivots x 111,643 points in ~25 ms, was 175)
        columns = [numpy.ascontiguousarray(points[:, k]) for k in range(points.shape[1])]
        beaten = numpy.zeros(len(points), dtype=bool)
        for pivot in pivots:
            as_good = numpy.ones(len(points), dtype=bool)
            better = numpy.zeros(len(points), dtype=bool)
            for value, column in zip(pivot.tolist(), columns):
                as_good &= column <= value
                better |= column < value
            beaten |= as_good & better
        candidates = numpy.flatnonzero(~beaten)
        points = points[candidates]
    front = numpy.zeros((0, points.shape[1]))
    kept: list[int] = []
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        beaten = (numpy.all(front[None, :, :] >= block[:, None, :], axis=2).any(axis=1) if len(front)
                  else numpy.zeros(len(block), dtype=bool))
        for i in numpy.flatnonzero(~beaten).tolist():
            if len(front) and numpy.all(front >= block[i], axis=1).any():
                continue
            front = numpy.vstack([front, block[i]])
            kept.append(start + i)
    return candidates[numpy.array(kept, dtype=int)]


def _rounded(values: ndarray) -> ndarray:
    """Values rounded to TIE relative, so that figures equal to ~1e-15 compare equal."""
    import numpy
    finite = numpy.isfinite(values) & (values != 0)
    safe = numpy.where(finite, values, 1.0)
    scale = 10.0 ** numpy.floor(numpy.log10(numpy.abs(safe)))
    return numpy.where(finite, numpy.round(safe / scale / TIE) * TIE * scale, values)


def _value(value) -> str:
    return value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)


def plan_changes(base: Plan, plan: Plan) -> tuple[str, ...]:
    """'field: old -> new' for every field that differs (the card by catalog id)."""
    old, new = plan_to_dict(base), plan_to_dict(plan)
    old["gpu"] = find_gpu(base.gpu).id
    return tuple(f"{name}: {_value(old[name])} -> {_value(new[name])}" for name in new if old[name] != new[name])


def _changed_fields(base: Plan, plan: Plan, fields: Iterable[str]) -> int:
    """How many of the fields differ between the plans."""
    return sum(getattr(base, f) != getattr(plan, f) for f in fields)


def plan_entry(plan: Plan, base: Plan, calibration: CalibrationProfile | None = None) -> SearchEntry:
    """The contract's ENTRY of one plan, every figure from core.estimate."""
    est = estimate(plan, calibration=calibration)
    return SearchEntry(plan=plan, fits=est.memory.fits, step_seconds=est.time.step_seconds,
                       tokens_per_second=est.time.tokens_per_second_total,
                       hours=est.total.hours if est.total else None,
                       cost_usd=est.total.cost_usd if est.total else None,
                       device_used_bytes=est.memory.device_used_bytes, capacity_bytes=est.memory.capacity_bytes,
                       usd_per_hour=est.gpu.price_usd_per_hour * plan.n_gpus, changes=plan_changes(base, plan))


def search_cards(gpus: Iterable[str] | None = None, calibration: CalibrationProfile | None = None) -> tuple[GpuSpec, ...]:
    """The catalog cards (or those named), each calibrated where the profile was measured on it."""
    cards = gpu_catalog() if gpus is None else tuple(dict.fromkeys(find_gpu(g) for g in gpus))
    if calibration is None:
        return cards
    from .calibration import apply_calibration
    return tuple(apply_calibration(g, calibration) for g in cards)


def search_table(plan: Plan, gpus: Iterable[str] | None = None, max_gpus: int = DEFAULT_MAX_GPUS,
                 allow: frozenset[str] = frozenset(), calibration: CalibrationProfile | None = None) -> SearchTable:
    """Every plan of the space that fits, priced (steps 1 and 2 of the module docstring)."""
    import numpy
    plan = check_combination(plan)
    if isinstance(max_gpus, bool) or not isinstance(max_gpus, int) or not 1 <= max_gpus <= MAX_SEARCH_GPUS:
        raise PlanError(f"max_gpus: must be an integer between 1 and {MAX_SEARCH_GPUS}, got {max_gpus!r}")
    cards = search_cards(gpus, calibration)
    if not cards:
        raise PlanError("gpus: name at least one card (a catalog id)")
    spec = resolve_model(plan.model)
    reference = cards[0]   # memory is estimated on it and shifted to each card (module docstring)
    shift = numpy.array([card_shift_bytes(plan, g, reference) for g in cards])
    rooms: dict[int, ndarray] = {}   # reserved may reach this, by GPU count (NCCL's buffers with peers)
    room = lambda n: rooms.get(n) if n in rooms else rooms.setdefault(  # noqa: E731
        n, numpy.array([capacity_bytes(g) - outside_torch_bytes(g, n) for g in cards]))
    found = recipes(plan, allow)
    configs, fitting, tried = _fitting_configs(plan, found, spec, reference, shift, room, max_gpus)
    config_of_row = numpy.array([c for c, fit in fitting for _ in fit], dtype=int)
    card_of_row = numpy.array([k for _, fit in fitting for k in fit], dtype=int)
    device_used, paged = _row_memory(configs, config_of_row, card_of_row, cards, shift)
    group_of = {r: g for g, members in enumerate(_optimizer_groups(found)) for r in members}
    tps, step = _priced(configs, config_of_row, card_of_row, cards, spec, paged, group_of)
    return SearchTable(plan, cards, configs, config_of_row, card_of_row, tps, step, device_used, calibration, tried)


def _row_memory(configs: list[_Config], config_of_row: ndarray, card_of_row: ndarray,
                cards: tuple[GpuSpec, ...], shift: ndarray) -> tuple[ndarray, ndarray]:
    """(NVML-used bytes, paged optimizer bytes over PCIe per step) of every row, as
    summary.device_used_bytes and paged_traffic_bytes count them: the reference card's reserve
    moved to the card (shift: compare.card_shift_bytes per card, as the fit check used), its
    context (+ NCCL's buffers with peers), and the managed pages that fit in what is left."""
    import numpy
    column = lambda f: numpy.array([f(c) for c in configs], dtype=float)  # noqa: E731  one per config
    n_gpus = column(lambda c: c.plan.n_gpus)[config_of_row]
    counts, count_of_row = numpy.unique(n_gpus, return_inverse=True)
    outside = numpy.array([[outside_torch_bytes(g, int(n)) for g in cards] for n in counts], dtype=float)
    context = outside[count_of_row, card_of_row] if len(card_of_row) else numpy.zeros(0)
    reserved = column(lambda c: c.reserved_bytes)[config_of_row] + shift.astype(float)[card_of_row]
    managed = column(lambda c: c.managed_bytes)[config_of_row]
    room = numpy.array([capacity_bytes(g) for g in cards], dtype=float)[card_of_row] - context - reserved
    paged_out = paged_out_bytes(managed, room)
    return reserved + context + managed - paged_out, paged_traffic_bytes(managed, paged_out)


# search tables kept by shared_search_table: the app's advice and its Best plans view (the same
# child process), and the report's advice and Best plans section, ask for the same plan's table
SHARED_TABLES = 2
_SHARED: dict[tuple, SearchTable] = {}


def shared_search_table(plan: Plan, max_gpus: int = DEFAULT_MAX_GPUS,
                        calibration: CalibrationProfile | None = None) -> SearchTable:
    """search_table over every catalog card, kept for the last SHARED_TABLES (plan, GPU limit,
    calibration, catalog prices): a second request for the same plan searches nothing. The
    table is shared: its arrays must not be changed."""
    key = (plan, max_gpus, calibration, gpu_catalog())
    table = _SHARED.pop(key, None)
    if table is None:
        table = search_table(plan, max_gpus=max_gpus, calibration=calibration)
    _SHARED[key] = table   # most recent last
    while len(_SHARED) > SHARED_TABLES:
        del _SHARED[next(iter(_SHARED))]
    return table


def _fitting_configs(base: Plan, found: list[Recipe], spec, reference: GpuSpec, shift: ndarray,
                     room: Callable[[int], ndarray],
                     max_gpus: int) -> tuple[list[_Config], list[tuple[int, list[int]]], int]:
    """Configs whose step fits some card, and the cards each fits (pruned: module docstring), in
    recipe, layout, split order. Recipes equal but for the AdamW variant are walked together:
    of each (layout, split) one step_peak is estimated and the others' peaks follow from it
    (_variant_reserved)."""
    import numpy
    out: list[tuple[tuple[int, int, int], _Config, list[int]]] = []
    tried = 0
    for members in _optimizer_groups(found):
        blocks: dict[int, tuple] = {}   # block_memories by micro-batch: the same for every layout and optimizer
        states = {r: model_state(spec, found[r].plan) for r in members}
        own = {r: {x: i for i, x in enumerate(layouts(found[r].plan, found[r].sequences, max_gpus))}
               for r in members}   # each member's layouts and their order
        changed = {r: _changed_fields(base, found[r].plan, _RECIPE_FIELDS) for r in members}
        fields = {r: {f: getattr(found[r].plan, f) for f in PLAN_FIELDS} for r in members}
        changed_layout = lambda x: ((x.n_gpus != base.n_gpus) + (x.sharding != base.sharding)  # noqa: E731
                                    + (x.offload != base.offload))
        for layout in dict.fromkeys(x for r in members for x in own[r]):
            walking = [(r, own[r][layout]) for r in members if layout in own[r]]
            # a card fits a config when its reserve (+ one paged tensor) is at most the card's
            # limit; with the bound, a card left out at one micro-batch is left out for the larger
            # ones: the cards kept are those whose limit reaches the largest need so far
            limit = room(layout.n_gpus) - shift
            most = float(limit.max())
            ascending = sorted(limit.tolist())
            kept: dict[int, list[int]] = {}   # the cards whose limit reaches a need, by how many they are
            lay_changed = changed_layout(layout)
            need = {r: 0 for r, _ in walking}
            memory: dict[int, GpuState] = {}   # gpu_state by recipe: the same for every split of a layout
            same: dict[tuple[int, int], bool] = {}   # _variant_reserved's GpuState check, by (recipe, lead)
            for s, (bs, ga) in enumerate(splits(found[walking[0][0]].sequences // layout.n_gpus)):
                last = ga == 1   # no accumulation: gradients not held across micro-batches
                lead = None      # _Lead: this split's first member estimated in full
                for r, li in walking:
                    tried += 1
                    if need[r] > most and not last:
                        continue
                    plan = Plan(**{**fields[r], "n_gpus": layout.n_gpus, "sharding": layout.sharding,
                                   "offload": layout.offload, "batch_size": bs, "grad_accum": ga,
                                   "gpu": reference.id})
                    if not runs(plan):   # e.g. optimizer_in_backward with accumulation, KTO at batch 1
                        continue
                    if bs not in blocks:
                        blocks[bs] = block_memories(spec, plan)
                    reserved = None
                    if lead is not None:
                        if r not in memory:
                            memory[r] = gpu_state(states[r], plan)
                        reserved = _variant_reserved(lead, memory[r], plan, same, r)
                    if reserved is None:
                        peak = step_peak(plan, spec, reference, states[r], blocks[bs])
                        memory.setdefault(r, peak.gpu_state)
                        reserved, lead = peak.reserved_bytes, _lead(peak, memory[r], plan, r)
                    gs = memory[r]
                    # paged optimizers: one tensor's states on the card too (summary.fits_on)
                    config_need = reserved + gs.paged_tensor_bytes
                    if not last:
                        need[r] = config_need = max(need[r], config_need)
                    if config_need <= most:
                        count = len(ascending) - bisect_left(ascending, config_need)
                        if count not in kept:
                            kept[count] = numpy.flatnonzero(limit >= config_need).tolist()
                        config = _Config(plan, r, reserved, gs.managed_bytes,
                                         changed[r] + lay_changed + (bs != base.batch_size) + (ga != base.grad_accum))
                        out.append(((r, li, s), config, kept[count]))
    out.sort(key=lambda item: item[0])   # the order of a walk recipe by recipe (ties rank by it)
    return [c for _, c, _ in out], [(i, fit) for i, (_, _, fit) in enumerate(out)], tried


# the fields a layout (n_gpus, sharding, offload) and split (batch_size, grad_accum) set are
# counted apart; the card per row (SearchTable.changes)
_RECIPE_FIELDS = tuple(f for f in PLAN_FIELDS
                       if f not in ("n_gpus", "sharding", "offload", "batch_size", "grad_accum", "gpu"))
_STATES = ALLOCATED_COMPONENTS.index("optimizer_states")
_TEMPORARIES = ALLOCATED_COMPONENTS.index("temporaries")
# GpuState fields an AdamW variant changes; none of them but the states and temporaries enter
# the step's rows (memory/timeline.py train_rows; host and managed bytes live off torch's pool)
_OPTIMIZER_STATE = ("optimizer_state_bytes", "optimizer_temp_bytes", "host_bytes", "managed_bytes",
                    "paged_tensor_bytes")
_GPU_STATE_FIELDS = tuple(f.name for f in dataclass_fields(GpuState) if f.name not in _OPTIMIZER_STATE)


def _optimizer_groups(found: list[Recipe]) -> list[list[int]]:
    """Indices of the recipes equal but for the optimizer, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for r, recipe in enumerate(found):
        groups.setdefault((replace(recipe.plan, optimizer=""), recipe.sequences), []).append(r)
    return list(groups.values())


class _Lead(NamedTuple):
    """A step estimated in full that its optimizer variants are derived from (_variant_reserved)."""

    gpu_state: GpuState
    totals: list[int] | None   # allocated bytes per phase; None: its rows do not show the shape
    others_bytes: int          # the largest of the totals but the optimizer step's
    slack_bytes: int           # reserved - allocated at the peak
    opt_phase: int             # index of the optimizer step
    recipe: int


def _lead(peak: StepPeak, gs: GpuState, plan: Plan, recipe: int) -> _Lead:
    """The lead's phase totals where its rows show the shape _variant_reserved relies on: the
    optimizer states alive in every phase, the temporaries only in the optimizer step (the
    phase before the last, after zero_grad)."""
    names = peak.algorithm.names if peak.algorithm is not None else phase_names(len(peak.blocks))
    k, rows = len(names) - 2, peak.rows
    shaped = (not plan.optimizer_in_backward and names[k:] == ("optimizer step", "after zero_grad")
              and rows[k][_TEMPORARIES] - rows[k + 1][_TEMPORARIES] == gs.optimizer_temp_bytes
              and all(row[_STATES] == gs.optimizer_state_bytes for row in rows))
    totals = [sum(row) for row in rows] if shaped else None
    others = max(totals[:k] + totals[k + 1:]) if totals else 0
    return _Lead(gs, totals, others, peak.reserved_bytes - peak.allocated_bytes, k, recipe)


def _variant_reserved(lead: _Lead, gs: GpuState, plan: Plan, same: dict[tuple[int, int], bool],
                      recipe: int) -> int | None:
    """Peak reserved bytes of plan, which differs from the lead's plan only in its optimizer,
    from the lead's step: in a steady step the optimizer states are alive in every phase and
    its temporaries only in the optimizer step (memory/timeline.py train_rows, which
    algorithm_timeline builds on), and the allocator's slack follows the largest transient,
    which no optimizer sets (summary._largest_transient). So each phase moves by the states'
    difference and the optimizer step also by the temporaries'. None (estimate it) where the
    lead's rows do not show that shape, where the GpuStates differ in more than the optimizer's
    fields, and under optimizer_in_backward (its temporaries are in the backward phases).
    same: the GpuState check by (recipe, lead's recipe), both GpuStates fixed for a layout."""
    if lead.totals is None or plan.optimizer_in_backward:
        return None
    base = lead.gpu_state
    key = (recipe, lead.recipe)
    if key not in same:
        same[key] = all(getattr(gs, f) == getattr(base, f) for f in _GPU_STATE_FIELDS)
    if not same[key]:
        return None
    d_temp = gs.optimizer_temp_bytes - base.optimizer_temp_bytes
    peak = max(lead.others_bytes, lead.totals[lead.opt_phase] + d_temp)
    return peak + gs.optimizer_state_bytes - base.optimizer_state_bytes + lead.slack_bytes


class _HostCounts(NamedTuple):
    """What time_model.host_seconds reads of a PhaseWork, one element per row."""

    launches: ndarray
    autograd_launches: ndarray
    modules: ndarray
    quant_calls: ndarray
    checkpoints: ndarray


class _RowsWork(NamedTuple):
    """What time_model.priced_step reads of a StepWork (the device seconds come in CardRates),
    one element per row: rows of one priced_step call may differ in micro-batch."""

    forward: _HostCounts
    backward: _HostCounts
    optimizer: _HostCounts
    tokens: ndarray
    generation: _HostCounts | None   # GRPO's generation (time_model.generation_phase), None otherwise
    generation_host: bool            # the recipe's: transformers' generate (True) or vLLM
    offload_to_host_bytes: ndarray     # activation offloading's PCIe bytes (StepWork's)
    offload_to_device_bytes: ndarray
    offload_unsloth: bool              # the recipe's: UnslothCheckpointFunction's copies


def _rows_work(works: list[StepWork], index: ndarray) -> _RowsWork:
    """The works' host counts as columns, one element per row (index: work of each row). The
    works are one recipe's: all or none generate (GRPO), all with the same generation backend."""
    import numpy
    phases = []
    names = ("forward", "backward", "optimizer") + (("generation",) if works[0].generation is not None else ())
    for phase in names:
        table = numpy.array([[getattr(getattr(w, phase), f) for f in _HostCounts._fields] for w in works],
                            dtype=float)   # [work, field]
        phases.append(_HostCounts(*table[index].T))
    generation = phases[3] if len(phases) > 3 else None
    column = lambda name: numpy.array([getattr(w, name) for w in works], dtype=float)[index]  # noqa: E731
    return _RowsWork(*phases[:3], column("tokens"), generation, works[0].generation_host,
                     column("offload_to_host_bytes"), column("offload_to_device_bytes"), works[0].offload_unsloth)


def _priced(configs: list[_Config], config_of_row: ndarray, card_of_row: ndarray, cards: tuple[GpuSpec, ...],
            spec, paged: ndarray, group_of: dict[int, int]) -> tuple[ndarray, ndarray]:
    """Tokens/s over all GPUs and seconds per micro-batch of every row.

    One priced_step over arrays per (recipe, offload), rows = its configs (GPU counts,
    shardings, splits) x the cards they fit: the card's device seconds of each split's
    StepWork (card_rates, once per work and card) and each config's link traffic come as
    columns, and so do the fields of the plan the rows differ in (batch_size, grad_accum,
    n_gpus) and the host counts of the work. The plan passed is the recipe's with those
    fields as arrays; what priced_step reads beyond them (offload) is the group's. The card
    rates come from time_model.card_rates_over: one call per split's work for all cards."""
    import numpy
    eff = time_efficiency()
    tps = numpy.zeros(len(config_of_row))
    step = numpy.zeros(len(config_of_row))
    if not len(configs):
        return tps, step
    works: dict[tuple[int, int, int], int] = {}   # (recipe, batch_size, grad_accum) -> index in work_list
    work_of_config = []
    traffic = []
    states: dict[int, object] = {}
    links: dict[tuple, object] = {}
    for c in configs:
        p = c.plan
        state = states.get(c.recipe) or states.setdefault(c.recipe, model_state(spec, p))
        work_of_config.append(works.setdefault((c.recipe, p.batch_size, p.grad_accum), len(works)))
        # plan_traffic reads the state's weights and gradients (the same for every AdamW variant)
        # and of the plan its GPU count, sharding, offload, accumulation and precision
        link = (group_of[c.recipe], p.n_gpus, p.sharding, p.offload, p.grad_accum)
        traffic.append(links.get(link) or links.setdefault(link, plan_traffic(p, spec, state)))
    # made with the AdamW variants of a recipe in a row, so that step_work's cache of their
    # shared forward and backward still holds the first when the others come
    first: dict[tuple[int, int, int], _Config] = {}
    for c in configs:
        first.setdefault((c.recipe, c.plan.batch_size, c.plan.grad_accum), c)
    made: dict[tuple[int, int, int], StepWork] = {}
    for key in sorted(works, key=lambda k: (group_of[k[0]], k[1], k[2], k[0])):
        made[key] = step_work(spec, first[key].plan, states[key[0]].trainable_params)
    work_list = [made[key] for key in works]   # works' order: index = works[key]
    work_of_config = numpy.array(work_of_config, dtype=int)
    dtype = configs[0].plan.compute_dtype   # the recipes keep the plan's precision
    rates = _work_rates(work_list, cards, eff, dtype)
    keys: dict[tuple, int] = {}
    group_of_config = numpy.array([keys.setdefault((c.recipe, c.plan.offload), len(keys)) for c in configs], dtype=int)
    group_of_row = group_of_config[config_of_row]
    order = numpy.argsort(group_of_row, kind="stable")
    bounds = numpy.searchsorted(group_of_row[order], numpy.arange(len(keys) + 1))
    column = lambda f: numpy.array([f(c.plan) for c in configs], dtype=float)  # noqa: E731  one per config
    batch, accum, count = column(lambda p: p.batch_size), column(lambda p: p.grad_accum), column(lambda p: p.n_gpus)
    for g in range(len(keys)):
        rows = order[bounds[g]:bounds[g + 1]]
        row_configs, row_cards = config_of_row[rows], card_of_row[rows]
        first = configs[int(row_configs[0])].plan
        row_works = work_of_config[row_configs]
        card = CardRates(*rates[row_works, :, row_cards].T)
        used_configs, config_index = numpy.unique(row_configs, return_inverse=True)
        link = _columns([traffic[c] for c in used_configs.tolist()], config_index)
        used_works, work_index = numpy.unique(row_works, return_inverse=True)
        work = _rows_work([work_list[w] for w in used_works.tolist()], work_index)
        rows_plan = replace(first, batch_size=batch[row_configs], grad_accum=accum[row_configs],
                            n_gpus=count[row_configs])
        time = priced_step(rows_plan, work, card, link, eff, paged[rows])
        tps[rows] = time.tokens_per_second * count[row_configs]
        step[rows] = time.step_seconds
    return tps, step


_NO_WORK = PhaseWork("none")
_OPTIMIZER_RATES = [CardRates._fields.index(f) for f in ("optimizer_compute_seconds", "optimizer_memory_seconds")]


def _work_rates(works: list[StepWork], cards: tuple[GpuSpec, ...], eff, dtype: str) -> ndarray:
    """[work, CardRates field, card]: each split's device seconds on every card at once
    (time_model.card_rates_over). card_rates_over prices each phase on its own, so works that
    share their forward, backward and generation (AdamW variants: step_work.BODY_FIELDS) have
    those priced once and only their optimizer phase apart."""
    import numpy
    bodies: dict[tuple[int, int, int], ndarray] = {}
    updates: dict[tuple, ndarray] = {}
    out = []
    for w in works:
        key = (id(w.forward), id(w.backward), id(w.generation))
        if key not in bodies:
            bodies[key] = numpy.stack(card_rates_over(replace(w, optimizer=_NO_WORK), cards, eff, dtype))
        rates = bodies[key].copy()
        o = w.optimizer   # the same update for every split of a recipe: priced once by what it holds
        update_key = (tuple(o.matmuls.items()), o.attention_flops, o.elementwise_bytes, o.dequant_bytes,
                      o.launches, o.autograd_launches)
        if update_key not in updates:
            update = card_rates_over(replace(w, forward=_NO_WORK, backward=_NO_WORK, generation=None),
                                     cards, eff, dtype)
            updates[update_key] = numpy.stack([update[i] for i in _OPTIMIZER_RATES])
        rates[_OPTIMIZER_RATES] = updates[update_key]
        out.append(rates)
    return numpy.stack(out)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What napkin search prints: the baseline and the best plans, each from core.estimate."""

    objective: str
    baseline: SearchEntry
    results: tuple[SearchEntry, ...]   # best first, all fit
    searched: int                      # (config, card) pairs in the space
    priced: int                        # of them that fit and were priced


def search(plan: Plan, objective: str = "fastest", gpus: Iterable[str] | None = None,
           max_gpus: int = DEFAULT_MAX_GPUS, top: int = 5, allow: frozenset[str] = frozenset(),
           calibration: CalibrationProfile | None = None) -> SearchResult:
    """The top plans for the objective among those that train what plan trains and fit."""
    if objective not in OBJECTIVES:
        raise PlanError(f"objective: {objective!r} is not allowed; use one of {', '.join(OBJECTIVES)}")
    if not isinstance(top, int) or top < 1:
        raise PlanError(f"top: must be an integer >= 1, got {top!r}")
    table = search_table(plan, gpus, max_gpus, allow, calibration)
    best = table.distinct(table.ranked(objective, table.rows()))[:top]
    return SearchResult(objective, plan_entry(plan, plan, calibration), tuple(table.entry(int(r)) for r in best),
                        table.tried, len(table))


def same_training(a: Plan, b: Plan, allow: frozenset[str] = frozenset()) -> bool:
    """Whether b trains what a trains: same model, LoRA shape, precision, global batch in
    tokens, and method / sequence length unless allowed to change."""
    keep = ("model", "precision", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "quant_double",
            "kbit_prep", "attention", "dataset_tokens", "epochs", "framework", "compile", "algorithm",
            "reference", "prompt_len", "completion_len", "num_generations", "generation",
            "vllm_gpu_memory_utilization")
    keep += () if "method" in allow else ("method",)
    keep += () if "seq_len" in allow else ("seq_len",)
    return (all(getattr(a, f) == getattr(b, f) for f in keep)
            and global_batch(a) * a.seq_len == global_batch(b) * b.seq_len)
