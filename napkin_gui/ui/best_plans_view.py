"""BestPlansView: the search's best plans for an objective, as a ranked list and a front scatter.

It only formats what core.best_plans returns (ui/best_plans_search.py runs it): an objective
selector (core.best_plans.OBJECTIVES; N GPUs for "fits my card"), the objective's Pareto front
as a scatter of cost against hours (every plan the search keeps fits), and the ranked plans
in a table (BestPlansModel, a Qt model over the core's SearchEntry). Clicking a plan, in the
table or on the scatter, emits plan_chosen(plan): the window hands it to the controller, so it
is undoable like any edit. While the results are for another plan than the editor's (an edit
since), the list is disabled and the caption says a search is coming.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QSpinBox,
                               QTableView, QVBoxLayout, QWidget)

from ..core.best_plans import OBJECTIVES
from ..core.gpu_catalog import find_gpu
from ..core.search import DEFAULT_MAX_GPUS
from ..core.user_prices import price_citation
from .. import palette, units
from ..core.names import change_text_words, gpu_name, short_gpu_name
from .plot_style import fixed_label, nice_log_range, set_view_if_changed, style_plot

HEADERS = ("#", "plan", "tokens/s", "hours", "cost", "used / GPU", "changes")
CAPTIONS = {"mine": "the plan's card, at most the plan's GPU count; fastest first",
            "cheapest": "any catalog card and count (up to 8); cheapest per token first",
            "fastest": "any catalog card and count (up to 8); fastest first",
            "fits": "the plan's card, 1 to N GPUs; cheapest per token first"}
FRONT_PEN, FRONT_BRUSH = pg.mkPen(palette.CURVE), pg.mkBrush(palette.CURVE + "80")
BEST_BRUSH = pg.mkBrush(palette.CURRENT_POINT)


def gpu_text(plan: Any) -> str:
    """'2 x H100 80GB SXM5, fsdp': the card (names.short_gpu_name, not its id), count and sharding."""
    text = f"{plan.n_gpus} x {short_gpu_name(gpu_name(plan.gpu))}"
    return text + (f", {plan.sharding}" if plan.sharding != "none" else "")


def log_ticks(lo: float, hi: float, label) -> list[tuple[float, str]]:
    """(log10 value, label(value)) at 1, 2 and 5 of each decade inside [10**lo, 10**hi], or at
    each decade alone when the range spans more than two: pyqtgraph's own log ticks label every
    2..9 of a short range, which pile up on a short axis ('8·10¹ 7·10¹ 6·10¹' at 1280x720)."""
    steps = (1,) if hi - lo > 2 else (1, 2, 5)
    return [(math.log10(m * 10.0 ** e), label(m * 10.0 ** e))
            for e in range(math.floor(lo), math.ceil(hi) + 1) for m in steps
            if lo - 1e-9 <= math.log10(m * 10.0 ** e) <= hi + 1e-9]


def entry_cells(rank: int, entry: Any) -> tuple[str, ...]:
    """The table's cells for one core.search.SearchEntry (napkin_gui/units.py formats)."""
    changes = "; ".join(map(change_text_words, entry.changes)) if entry.changes else "your plan"
    return (str(rank), gpu_text(entry.plan), units.count(entry.tokens_per_second), units.hours(entry.hours),
            units.usd(entry.cost_usd), f"{units.gib(entry.device_used_bytes, 1)} of {units.gib(entry.capacity_bytes, 0)}",
            changes)


def hours_cost_frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (hours, cost) points no other point beats on both, fastest first."""
    out: list[tuple[float, float]] = []
    for hours, cost in sorted(points):
        if not out or cost < out[-1][1]:
            out.append((hours, cost))
    return out


class BestPlansModel(QAbstractTableModel):
    """The ranked SearchEntry of one objective, best first."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.entries: tuple[Any, ...] = ()
        self._cells: list[tuple[str, ...]] = []
        self.enabled = True

    def set_entries(self, entries: tuple[Any, ...]) -> None:
        self.beginResetModel()
        self.entries = tuple(entries)
        self._cells = [entry_cells(i, e) for i, e in enumerate(self.entries, start=1)]
        self.endResetModel()

    def set_enabled(self, enabled: bool) -> None:
        """Rows of results for another plan than the editor's cannot be chosen."""
        if enabled != self.enabled:
            self.enabled = enabled
            if self.entries:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self.entries) - 1, len(HEADERS) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(HEADERS)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not self.enabled:
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells[index.row()][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            entry = self.entries[index.row()]
            gpu = find_gpu(entry.plan.gpu)
            changes = "\n".join(map(change_text_words, entry.changes)) or "your plan as it is"
            return ("Click to apply (Ctrl+Z undoes):\n" + changes
                    + f"\n{units.usd_per_hour(gpu.price_usd_per_hour)} per GPU: "
                    + price_citation(gpu.price_source, gpu.price_date))
        if role == Qt.ItemDataRole.TextAlignmentRole and 2 <= index.column() <= 5:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return HEADERS[section]
        return None


class BestPlansView(QWidget):
    """Objective selector, front scatter and ranked list of the plan search's results."""

    plan_chosen = Signal(object)        # a Plan the user clicked
    objective_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.best: Any = None           # core.best_plans.BestPlans shown
        self.current = True             # whether self.best is for the editor's plan
        self.objective = QComboBox(self)
        for key, label in OBJECTIVES:
            self.objective.addItem(label, key)
        self.max_gpus = QSpinBox(self)
        self.max_gpus.setRange(1, DEFAULT_MAX_GPUS)
        self.max_gpus.setValue(1)
        self.max_gpus.setPrefix("N = ")
        self.max_gpus.setToolTip("At most this many of the plan's card.")
        self.caption = fixed_label(QLabel(self), lines=2)
        self.plot = pg.PlotWidget(self)
        item = self.plot.getPlotItem()
        item.setLogMode(x=True, y=True)
        style_plot(item, grid_x=True, grid_y=True)
        item.setLabel("bottom", "hours")
        item.setLabel("left", "cost (USD)")
        # ScatterPlotItem has no log mode of its own: it is given log10 values (the axes label 10^x)
        self.front = pg.ScatterPlotItem(size=8, pen=FRONT_PEN, brush=FRONT_BRUSH)
        # the plans no other beats on both hours and cost (the front also keeps memory headroom)
        self.frontier = pg.PlotDataItem(pen=pg.mkPen(palette.CURVE, width=1.5))
        item.addItem(self.frontier)
        self.best_point = pg.ScatterPlotItem(size=12, pen=pg.mkPen(palette.FOREGROUND), brush=BEST_BRUSH)
        for scatter in (self.front, self.best_point):
            item.addItem(scatter)
            scatter.sigClicked.connect(self._on_scatter_clicked)
        self.plot.setMinimumHeight(180)
        self.model = BestPlansModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("Click a plan to apply it (Ctrl+Z undoes).")
        self.table.clicked.connect(self._on_table_clicked)
        self.table.activated.connect(self._on_table_clicked)
        self.objective.currentIndexChanged.connect(self._on_selector_changed)
        self.max_gpus.valueChanged.connect(self._on_selector_changed)
        top = QHBoxLayout()
        top.addWidget(QLabel("Objective:", self))
        top.addWidget(self.objective)
        top.addWidget(self.max_gpus)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 2)
        layout.addWidget(self.table, 3)
        self._on_selector_changed()

    # ------------------------------------------------------------------ in
    @property
    def objective_key(self) -> str:
        return self.objective.currentData()

    def show_results(self, best: Any) -> None:
        """The search's results for the editor's current plan."""
        self.best, self.current = best, True
        self._refresh()

    def show_status(self, text: str) -> None:
        """Results to come (or none possible): the list shown is for an older plan."""
        if self.current or self.caption.text() != text:
            self.current = False
            self.model.set_enabled(False)
            self.caption.setText(text)

    # ------------------------------------------------------------------ drawing
    def _on_selector_changed(self, *_: Any) -> None:
        self.max_gpus.setEnabled(self.objective_key == "fits")
        self._refresh()
        self.objective_changed.emit()

    def shown_entries(self) -> tuple[Any, ...]:
        if self.best is None:
            return ()
        return self.best.entries(self.objective_key, self.max_gpus.value())

    def _refresh(self) -> None:
        self.model.set_entries(self.shown_entries())
        self.model.set_enabled(self.current)
        self._draw_front()
        if self.best is None:
            self.caption.setText("The plan search runs once edits pause.")
            return
        if not self.current:
            return
        best = self.best
        count = len(self.model.entries)
        found = (f"{count} best of {best.priced:,} plans that fit ({best.searched:,} tried)" if count
                 else "No plan fits this way: try another objective or more GPUs.")
        self.caption.setText(f"{found} · {CAPTIONS[self.objective_key]}")

    def _draw_front(self) -> None:
        points = () if self.best is None else self.best.front(self.objective_key, self.max_gpus.value())
        points = [p for p in points if p.hours > 0 and p.cost_usd > 0 and math.isfinite(p.hours)]
        self.front.setData([math.log10(p.hours) for p in points], [math.log10(p.cost_usd) for p in points],
                           data=[p.plan for p in points])
        efficient = hours_cost_frontier([(p.hours, p.cost_usd) for p in points])
        # a PlotDataItem follows the plot's log mode itself: raw values
        self.frontier.setData([x for x, _ in efficient], [y for _, y in efficient])
        entries = [e for e in self.model.entries[:1] if e.hours and e.cost_usd]
        if not entries and self.model.entries and self.best is not None:   # no dataset: the front's tokens
            e = self.model.entries[0]
            hours = self.best.front_tokens / e.tokens_per_second / 3600
            entries_xy = [(hours, hours * e.usd_per_hour)]
        else:
            entries_xy = [(e.hours, e.cost_usd) for e in entries]
        entries_xy = [(x, y) for x, y in entries_xy if x > 0 and y > 0 and math.isfinite(x)]
        self.best_point.setData([math.log10(x) for x, _ in entries_xy], [math.log10(y) for _, y in entries_xy],
                                data=[e.plan for e in self.model.entries[:1]][:len(entries_xy)])
        item = self.plot.getPlotItem()
        with_dataset = self.best is None or self.best.plan.dataset_tokens > 0
        tokens = "" if with_dataset else f" for {self.best.front_tokens / 1e9:.0f}B tokens"
        item.setLabel("bottom", "hours" + tokens)
        item.setLabel("left", "cost (USD)" + tokens)
        xs = [p.hours for p in points] + [x for x, _ in entries_xy]
        ys = [p.cost_usd for p in points] + [y for _, y in entries_xy]
        if xs:
            lx, ly = np.log10(xs), np.log10(ys)
            x_range = nice_log_range(float(lx.min()), float(lx.max()))
            y_range = nice_log_range(float(ly.min()), float(ly.max()))
            if set_view_if_changed(item, x_range, y_range):
                item.getAxis("bottom").setTicks([log_ticks(*x_range, lambda v: f"{v:g} h"), []])
                item.getAxis("left").setTicks([log_ticks(*y_range, lambda v: f"${v:g}"), []])

    # ------------------------------------------------------------------ out
    def apply_row(self, row: int) -> None:
        """What a click on row does (tests, keyboard)."""
        if self.current and 0 <= row < len(self.model.entries):
            self.plan_chosen.emit(self.model.entries[row].plan)

    def _on_table_clicked(self, index: QModelIndex) -> None:
        self.apply_row(index.row())

    def _on_scatter_clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if self.current and len(points):
            self.plan_chosen.emit(points[0].data())
