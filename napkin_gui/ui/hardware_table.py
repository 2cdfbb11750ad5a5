"""HardwareTable: every catalog GPU x count from core.compare.compare_hardware, sortable.

HardwareModel only formats the core's rows; the cheapest and the fastest fitting rows are
highlighted, rows that do not fit are greyed, and rows that fit always sort first.
Double-clicking a row emits row_chosen(row) and the window makes its card, count and
sharding the plan's.

The model is a QStandardItemModel whose items are made once and re-texted on each edit
(the rows in view at once, the others once edits pause for REST_DELAY_MS):
cells live in C++, so painting calls no Python (a Python QAbstractTableModel answered
thousands of data() calls per repaint: bench/README.md), and sorting is a Python sort of 152 rows, not a
QSortFilterProxyModel calling a Python lessThan ~900 times.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QItemDelegate, QLabel, QTableView, QVBoxLayout, QWidget

from .. import palette
from ..core.user_prices import price_citation
from ..core.names import short_gpu_name
from ..units import MISSING, count, gib, hours, seconds, usd, usd_per_hour
from .plot_style import fixed_label

# (header, HardwareRow attribute or a function of the row, tooltip)
COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("GPU", lambda r: short_gpu_name(r.gpu_name), "The card, from the catalog; double-click a row to use it."),
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
COLUMN_WIDTHS = (240, 48, 62, 80, 80, 44, 72, 70, 92, 58, 70, 62)
# rows out of view are written once edits pause this long (a drag re-sorts them every step)
REST_DELAY_MS = 50
DEFAULT_SORT = (HEADERS.index("$ / M tokens"), Qt.SortOrder.AscendingOrder)  # cheapest per token first


def cell_value(row: Any, column: int) -> Any:
    """Raw (sortable) value of one core.compare.HardwareRow cell."""
    getter = COLUMNS[column][1]
    return getter(row) if callable(getter) else getattr(row, getter)


def _text(header: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if header in ("memory", "used / GPU"):
        return gib(value, 1)
    if header == "fits":
        return "fits" if value else "OOM"
    if header == "step":
        return seconds(value)
    if header == "tokens/s":
        return count(value)
    if header == "hours":
        return hours(value)
    if header in ("cost", "$/h", "$ / M tokens"):
        return usd(value)
    return str(value)


def sort_key(row: Any, column: int) -> Any:
    """The value a column sorts by: the raw cell value, None (no dataset size) last."""
    value = cell_value(row, column)
    return math.inf if value is None else value


def sorted_for_column(rows: tuple[Any, ...], column: int, order: Qt.SortOrder) -> list[Any]:
    """rows sorted by one column, ascending or descending, the rows that fit always first."""
    descending = order == Qt.SortOrder.DescendingOrder
    ordered = sorted(rows, key=lambda r: sort_key(r, column), reverse=descending)  # stable
    return [r for r in ordered if r.fits] + [r for r in ordered if not r.fits]


def _runs(columns: list[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of adjacent columns in an ascending list: [4, 6, 7] -> (4, 4), (6, 7)."""
    runs: list[tuple[int, int]] = []
    for column in columns:
        if runs and runs[-1][1] == column - 1:
            runs[-1] = (runs[-1][0], column)
        else:
            runs.append((column, column))
    return runs


@dataclass(frozen=True, slots=True)
class ShownRow:
    """What one table row shows: the core row it was written from, its cells' texts, the
    tooltip of its first cell and its style, (fits, cheapest, fastest): greyed when it does
    not fit, highlighted and bold when it is the cheapest or the fastest."""

    row: Any  # the core.compare.HardwareRow
    texts: tuple[str, ...]
    tooltip: str
    style: tuple[bool, bool, bool]


def shown_row(row: Any) -> ShownRow:
    """The cells of one core row as the table shows them."""
    texts = [_text(h, cell_value(row, c)) for c, h in enumerate(HEADERS)]
    tags = [t for t, flag in (("cheapest", row.cheapest), ("fastest", row.fastest)) if flag]
    if tags:
        texts[0] += f"  ({', '.join(tags)})"
    tooltip = (f"{row.gpu_name} x{row.n_gpus} ({row.sharding}){''.join(f', {t}' for t in tags)}, "
               f"{row.bound}-bound; double-click to use it\n"
               f"{usd_per_hour(row.price_usd_per_hour)} per GPU: {price_citation(row.price_source, row.price_date)}")
    return ShownRow(row, tuple(texts), tooltip, (row.fits, row.cheapest, row.fastest))


@dataclass(slots=True)
class TableRow:
    """One row of the table: its items (made once) and the ShownRow they hold (None: not
    written yet)."""

    items: tuple[QStandardItem, ...]
    written: ShownRow | None = None


class HardwareModel(QStandardItemModel):
    """The rows of core.compare.compare_hardware as text, in the chosen sort order.

    rows: as the core returned them; shown: in table order (shown[i] is table row i);
    table[i]: table row i. A table row is stale while it holds another core row than shown[i].
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(HEADERS))
        for column, (_, _, tip) in enumerate(COLUMNS):
            self.horizontalHeaderItem(column).setToolTip(tip)
        self.rows: tuple[Any, ...] = ()
        self.shown: list[Any] = []
        self.table: list[TableRow] = []
        self.sort_column, self.sort_order = DEFAULT_SORT
        # the rows a view shows, (first, last); the table widget sets it to its viewport's
        self.visible_rows: Callable[[], tuple[int, int]] = lambda: (0, len(self.shown) - 1)
        self._rest_timer = QTimer(self, singleShot=True, interval=REST_DELAY_MS)
        self._rest_timer.timeout.connect(self._write_rest)
        self._bold = QFont()
        self._bold.setBold(True)
        self._cheapest_bg, self._fastest_bg = QBrush(QColor(palette.CHEAPEST_BG)), QBrush(QColor(palette.FASTEST_BG))
        self._no_fit_fg = QBrush(QColor(palette.NO_FIT_FG))

    def set_rows(self, rows: tuple[Any, ...]) -> None:
        self.rows = tuple(rows)
        self._show()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:  # Qt override
        """Called by the view when a header is clicked (or sortByColumn)."""
        if column < 0:
            return
        self.sort_column, self.sort_order = column, order
        self._show()

    def row_text(self, row: Any) -> list[str]:
        """The cells of one core row as the table shows them."""
        return list(shown_row(row).texts)

    def _ensure_rows(self, n: int) -> None:
        """Items for n rows, made once (the model keeps them); alignment is fixed per column."""
        if len(self.table) == n:
            return
        self.setRowCount(0)
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        self.table = []
        for _ in range(n):
            items = tuple(QStandardItem() for _ in COLUMNS)
            for item, header in zip(items, HEADERS):
                item.setEditable(False)
                if header not in ("GPU", "fits", "sharding"):
                    item.setTextAlignment(right)
            self.appendRow(list(items))
            self.table.append(TableRow(items))

    def _is_stale(self, position: int) -> bool:
        written = self.table[position].written
        return written is None or written.row is not self.shown[position]

    def _show(self) -> None:
        """Sort the rows, write the ones the view shows now, and the rest on an idle timer."""
        self._ensure_rows(len(self.rows))
        self.shown = sorted_for_column(self.rows, self.sort_column, self.sort_order)
        first, last = self.visible_rows()
        self.write_rows(first, last)
        if any(map(self._is_stale, range(len(self.shown)))):
            self._rest_timer.start()

    def write_rows(self, first: int, last: int) -> None:
        """Write table rows first..last (clipped) if they are stale.

        A full table is ~1,800 setText calls; the view shows ~25 of its 152 rows, so
        an edit writes those before it is painted and the rest once edits pause. Only cells
        whose text changed are set (the card, its memory, often the row order stay), with the
        model's signals blocked, and each row then announces each run of adjacent columns it
        changed in one dataChanged: the view repaints those cells, and rows that changed the
        same columns merge into a few rectangles of its dirty region. A dataChanged per cell
        made the view add ~200 small rectangles to that region on a typical edit; one for the
        whole range repaints every cell in view (both slower: bench/README.md).
        """
        runs = []
        with QSignalBlocker(self):
            for position in range(max(first, 0), min(last, len(self.shown) - 1) + 1):
                if self._is_stale(position):
                    runs += [(position, *run) for run in _runs(self._write_row(position))]
        for position, first_column, last_column in runs:
            self.dataChanged.emit(self.index(position, first_column), self.index(position, last_column))

    def _write_row(self, position: int) -> list[int]:
        """Set table row `position` to its core row; the columns whose cells changed."""
        table_row, new = self.table[position], shown_row(self.shown[position])
        old, table_row.written, items = table_row.written, new, table_row.items
        changed = [c for c, text in enumerate(new.texts) if old is None or old.texts[c] != text]
        for column in changed:
            items[column].setText(new.texts[column])
        if old is None or old.tooltip != new.tooltip:
            items[0].setToolTip(new.tooltip)
        if old is None or old.style != new.style:
            self._style_row(items, new)
            return list(range(len(COLUMNS)))
        return changed

    def _write_rest(self) -> None:
        self.write_rows(0, len(self.shown) - 1)

    @property
    def stale_rows(self) -> int:
        """Table rows not yet written for the current rows (out of view, waiting for idle)."""
        return sum(map(self._is_stale, range(len(self.shown))))

    def _style_row(self, items: tuple[QStandardItem, ...], shown: ShownRow) -> None:
        """Highlight, grey or bold a row; a plain row's roles are left unset (None), which
        the delegate paints as the defaults: an empty brush or font set on every cell slows
        a full table repaint (bench/README.md)."""
        fits, cheapest, fastest = shown.style
        background = self._cheapest_bg if cheapest else self._fastest_bg if fastest else None
        foreground = None if fits else self._no_fit_fg
        font = self._bold if (cheapest or fastest) else None
        for item in items:
            item.setData(background, Qt.ItemDataRole.BackgroundRole)
            item.setData(foreground, Qt.ItemDataRole.ForegroundRole)
            item.setData(font, Qt.ItemDataRole.FontRole)


class HardwareTable(QWidget):
    """Sortable view of the hardware comparison; double-click picks a row's GPU and count."""

    row_chosen = Signal(object)  # the core.compare.HardwareRow double-clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = HardwareModel(self)
        self.view = QTableView(self)
        self.view.setModel(self.model)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        # single-line cells: a word-wrapped cell is laid out with QTextLayout on every paint
        self.view.setWordWrap(False)
        # the classic delegate paints the same cells (text, alignment, brushes, bold) faster
        # than QStyledItemDelegate, which goes through the style for every cell
        # (bench/README.md); the table has no style sheet that only the styled delegate would honour
        self.view.setItemDelegate(QItemDelegate(self.view))
        self.view.verticalHeader().setDefaultSectionSize(22)
        # fixed widths: ResizeToContents measures every cell on every update (bench/README.md)
        header = self.view.horizontalHeader()
        # the GPU column takes the room the others leave, never less than its COLUMN_WIDTHS
        # (_fit_name_column; Qt's Stretch shrank it to 'AMD Instinct …' at 1280x720, MI300X and
        # MI325X alike); a narrower table scrolls
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate(COLUMN_WIDTHS):
            header.resizeSection(column, width)
        self.view.sortByColumn(*DEFAULT_SORT)  # after setSortingEnabled, which sorts by column 0
        self.view.doubleClicked.connect(self._on_view_double_clicked)
        self.model.visible_rows = self.visible_rows
        # rows scrolled into view are written before they are painted
        self.view.verticalScrollBar().valueChanged.connect(self._write_visible)
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

    def visible_rows(self) -> tuple[int, int]:
        """(first, last) table row in the viewport; every row while the table is hidden."""
        n = self.model.rowCount()
        if not self.view.isVisible():
            return 0, n - 1
        view = self.view
        first = view.rowAt(0)
        last = view.rowAt(view.viewport().height() - 1)
        return (max(first, 0), n - 1 if last < 0 else last)

    def _write_visible(self) -> None:
        self.model.write_rows(*self.visible_rows())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_name_column()
        self._write_visible()

    def _fit_name_column(self) -> None:
        header = self.view.horizontalHeader()
        others = sum(header.sectionSize(c) for c in range(1, len(COLUMNS)))
        # room beside the vertical scroll bar, whether it shows yet or not (152 rows: it will)
        room = (self.view.width() - 2 * self.view.frameWidth()
                - self.view.verticalScrollBar().sizeHint().width())
        header.resizeSection(0, max(COLUMN_WIDTHS[0], room - others))

    def source_row(self, table_row: int) -> Any:
        """The compare row shown at a (sorted) table row."""
        return self.model.shown[table_row]

    def choose_row(self, table_row: int) -> None:
        self.row_chosen.emit(self.source_row(table_row))

    def _on_view_double_clicked(self, index: QModelIndex) -> None:
        self.choose_row(index.row())
