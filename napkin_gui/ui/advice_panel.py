"""AdvicePanel: core.advise's recommendations; clicking one applies its plan."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..core.plan import PLAN_FIELDS
from .. import palette
from ..units import gib_delta, percent


def advice_text(advice: Any) -> str:
    """The core's one-line description: title, memory and time effect, whether it fits."""
    return advice.reason or advice.title


def advice_tooltip(advice: Any, current: Any) -> str:
    """Which plan fields the advice changes, old -> new."""
    changes = [f"{f}: {getattr(current, f)} → {getattr(advice.plan, f)}" for f in PLAN_FIELDS
               if current is not None and getattr(current, f) != getattr(advice.plan, f)]
    head = "Click to apply" + (":\n" + "\n".join(changes) if changes else "")
    return head + (f"\n{gib_delta(advice.memory_delta_bytes, 2)} per GPU (device used), "
                   f"{percent(advice.time_delta_fraction, signed=True)} time per token")


class AdvicePanel(QWidget):
    """What to change: each item applies the core's changed Plan when clicked."""

    plan_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(f"<b>Advice</b> — click to apply<br><span style='color:{palette.FITS}'>green</span>: "
                            "the plan fits after the change; black: it still does not", self)
        self.title.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(3)
        self.list.setToolTip("Changes the core suggests for this plan; click one to apply it (Ctrl+Z undoes).")
        self.list.itemClicked.connect(self._on_list_item_clicked)
        self.list.itemActivated.connect(self._on_list_item_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)

    def show_advice(self, items: tuple[Any, ...], current: Any = None) -> None:
        """List core.advise's Advice for the plan `current`."""
        self.list.clear()
        for advice in items:
            item = QListWidgetItem(advice_text(advice), self.list)
            item.setData(Qt.ItemDataRole.UserRole, advice)
            item.setToolTip(advice_tooltip(advice, current))
            item.setForeground(QBrush(QColor(palette.FITS if advice.fits_after else palette.FOREGROUND)))
        if not items:
            self.list.addItem("Nothing to suggest for this plan.")

    def apply_row(self, row: int) -> None:
        item = self.list.item(row)
        if item is not None:
            self._on_list_item_clicked(item)

    def _on_list_item_clicked(self, item: QListWidgetItem) -> None:
        advice = item.data(Qt.ItemDataRole.UserRole)
        plan = getattr(advice, "plan", None)
        if plan is not None:
            self.plan_chosen.emit(plan)
