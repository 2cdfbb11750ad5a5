"""HardwareTable: every catalog GPU x count from core.compare.compare_hardware, sortable.

HardwareModel (QAbstractTableModel) only formats the core's rows; the cheapest and the
fastest fitting rows are highlighted, rows that do not fit are greyed; double-clicking a
row emits row_chosen(row) and the window makes its card, count and sharding the plan's.
"""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from . import palette
from .plot_style import fixed_label

GIB = 2**30
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
# (header, HardwareRow attribute or a function of the row, tooltip)
COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("GPU", lambda r: r.gpu_name.removeprefix("NVIDIA "), "The card, from the catalog; double-click a row to use it."),
    ("count", "n_gpus", "GPUs in the group."),
    ("sharding", "sharding", "none: each GPU holds the model; fsdp when it only fits sharded."),
    ("memory", "capacity_bytes", "Memory of one card."),
    ("used / GPU", "device_used_bytes", "What nvidia-smi would show per GPU at the peak."),
    ("fits", "fits", "Whether the step fits in the card's memory."),
    ("step", "step_seconds", "One micro-batch, forward and backward."),
    ("tokens/s", "tokens_per_second", "Throughput of the whole group."),
    ("$ / M tokens", "usd_per_million_tokens", "Rental cost per million training tokens."),
    ("hours", "hours", "Wall-clock time for dataset tokens x epochs."),
    ("cost", "cost_usd", "Rental cost for dataset tokens x epochs."),
    ("$/h", lambda r: r.price_usd_per_hour * r.n_gpus, "Hourly price of the group."),
)
HEADERS = tuple(c[0] for c in COLUMNS)
COLUMN_WIDTHS = (240, 48, 64, 72, 80, 44, 72, 70, 92, 64, 70, 62)


def cell_value(row: Any, column: int) -> Any:
    """Raw (sortable) value of one core.compare.HardwareRow cell."""
    getter = COLUMNS[column][1]
    return getter(row) if callable(getter) else getattr(row, getter)


def _text(header: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if header in ("memory", "used / GPU"):
        return f"{value / GIB:.1f} GiB"
    if header == "fits":
        return "fits" if value else "OOM"
    if header == "step":
        return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"
    if header == "tokens/s":
        return f"{value:,.0f}"
    if header == "hours":
        return f"{value:,.1f} h"
    if header in ("cost", "$/h", "$ / M tokens"):
        return f"${value:,.2f}" if value < 100 else f"${value:,.0f}"
    return str(value)


class HardwareModel(QAbstractTableModel):
    """Table model over core.compare.compare_hardware rows (formatting only).

    Cell texts and sort keys are formatted once per row in set_rows, so painting and
    sorting 150 rows only look them up.
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: tuple[Any, ...] = ()
        self._text: list[list[str]] = []
        self._keys: list[list[Any]] = []
        self._bold = QFont()
        self._bold.setBold(True)
        self._brushes = {"cheapest": QBrush(QColor(palette.CHEAPEST_BG)),
                         "fastest": QBrush(QColor(palette.FASTEST_BG)), "no_fit": QBrush(QColor(palette.NO_FIT_FG))}

    def set_rows(self, rows: tuple[Any, ...]) -> None:
        self.beginResetModel()
        self.rows = tuple(rows)
        self._text, self._keys = [], []
        for row in self.rows:
            values = [cell_value(row, c) for c in range(len(COLUMNS))]
            texts = [_text(h, v) for h, v in zip(HEADERS, values)]
            tags = [t for t, flag in (("cheapest", row.cheapest), ("fastest", row.fastest)) if flag]
            if tags:
                texts[0] += f"  ({', '.join(tags)})"
            self._text.append(texts)
            self._keys.append([int(v) if isinstance(v, bool) else (math.inf if v is None else v) for v in values])
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt override
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][2]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        r, c = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text[r][c]
        if role == SORT_ROLE:
            return self._keys[r][c]
        row = self.rows[r]
        if role == Qt.ItemDataRole.BackgroundRole:
            if row.cheapest:
                return self._brushes["cheapest"]
            if row.fastest:
                return self._brushes["fastest"]
        elif role == Qt.ItemDataRole.ForegroundRole:
            return None if row.fits else self._brushes["no_fit"]
        elif role == Qt.ItemDataRole.FontRole:
            return self._bold if (row.cheapest or row.fastest) else None
        elif role == Qt.ItemDataRole.TextAlignmentRole:
            if HEADERS[c] not in ("GPU", "fits", "sharding"):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.gpu_name} x{row.n_gpus} ({row.sharding}), {row.bound}-bound; double-click to use it"
        return None


class FitsFirstProxy(QSortFilterProxyModel):
    """Sorts by the clicked column, but rows that fit always come before rows that do not."""

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802 - Qt override
        rows = self.sourceModel().rows
        fit_l, fit_r = rows[left.row()].fits, rows[right.row()].fits
        if fit_l != fit_r:  # Qt reverses lessThan for a descending sort: undo that here
            return fit_l if self.sortOrder() == Qt.SortOrder.AscendingOrder else fit_r
        return super().lessThan(left, right)


class HardwareTable(QWidget):
    """Sortable view of the hardware comparison; double-click picks a row's GPU and count."""

    row_chosen = Signal(object)  # the core.compare.HardwareRow double-clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = HardwareModel(self)
        self.proxy = FitsFirstProxy(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        # fixed widths: ResizeToContents measures every cell on every model reset (~60 ms)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column, width in enumerate(COLUMN_WIDTHS):
            if column:
                header.resizeSection(column, width)
        self.view.sortByColumn(HEADERS.index("$ / M tokens"), Qt.SortOrder.AscendingOrder)
        self.view.doubleClicked.connect(self._on_view_double_clicked)
        self.view.setToolTip("Double-click a row to use that GPU and count in the plan.")
        self.caption = QLabel("Every catalog GPU at 1, 2, 4 and 8 GPUs (FSDP where a copy per GPU does not fit), "
                              "rows that fit first. Green: cheapest per token; blue: fastest. "
                              "Click a header to sort, double-click a row to use it.", self)
        fixed_label(self.caption, lines=2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)

    def show_rows(self, rows: tuple[Any, ...]) -> None:
        self.model.set_rows(rows)

    def source_row(self, proxy_row: int) -> Any:
        """The compare row shown at a (sorted) table row."""
        return self.model.rows[self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row()]

    def choose_row(self, proxy_row: int) -> None:
        self.row_chosen.emit(self.source_row(proxy_row))

    def _on_view_double_clicked(self, index: QModelIndex) -> None:
        self.choose_row(index.row())
