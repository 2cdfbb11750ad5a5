"""Small reusable editors: a spin box with a log-scale slider, a type-to-search combo box."""
from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QComboBox, QCompleter, QHBoxLayout, QSlider, QSpinBox, QWidget


class SpinSlider(QWidget):
    """An integer spin box and a slider over powers of two, kept in step; emits value_changed."""

    value_changed = Signal(int)

    def __init__(self, minimum: int, maximum: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spin = QSpinBox(self)
        self.spin.setRange(minimum, maximum)
        self.spin.setAccelerated(True)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(int(math.log2(max(minimum, 1))), int(math.log2(maximum)))
        self.slider.setPageStep(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.spin, 2)
        layout.addWidget(self.slider, 3)
        self.spin.valueChanged.connect(self._on_spin_value_changed)
        self.slider.valueChanged.connect(self._on_slider_value_changed)

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, value: int) -> None:
        """Show value without emitting (the controller pushed it)."""
        with QSignalBlocker(self.spin), QSignalBlocker(self.slider):
            self.spin.setValue(value)
            self.slider.setValue(round(math.log2(max(value, 1))))

    def setToolTip(self, text: str) -> None:  # noqa: N802 - Qt override
        super().setToolTip(text)
        self.spin.setToolTip(text)
        self.slider.setToolTip(text)

    def _on_spin_value_changed(self, value: int) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(round(math.log2(max(value, 1))))
        self.value_changed.emit(value)

    def _on_slider_value_changed(self, position: int) -> None:
        self.spin.setValue(2 ** position)  # emits through _on_spin_value_changed


class SearchCombo(QComboBox):
    """An editable combo box whose popup filters items by any part of the typed text.

    item data holds the value (a catalog id); `chosen(str)` fires with the data of a
    picked item, or with the typed text when it matches no item (a path, an NVML name).
    """

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None, show_data: bool = False) -> None:
        super().__init__(parent)
        # show_data: the field shows a chosen item's data (the model id), its label ('id · name')
        # only in the popup and the field's tooltip, so a narrow panel never cuts the label
        self.show_data = show_data
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setMaxVisibleItems(20)
        completer = QCompleter(self)
        completer.setModel(self.model())
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setCompleter(completer)
        self.activated.connect(self._on_self_activated)
        self.lineEdit().returnPressed.connect(self._on_line_return_pressed)
        completer.activated[str].connect(self._on_completer_activated)

    def value_for_text(self, text: str) -> str:
        """Item data of the item whose text or data equals text (any case), else text itself."""
        key = text.strip().lower()
        for i in range(self.count()):
            data = self.itemData(i)
            if self.itemText(i).lower() == key or (isinstance(data, str) and data.lower() == key):
                return data
        return text.strip()

    def show_value(self, value: str) -> None:
        """Select the item holding value, or show value as text; emits nothing."""
        with QSignalBlocker(self):
            index = self.findData(value)
            if index >= 0:
                self.setCurrentIndex(index)
            else:
                self.setCurrentIndex(-1)
                self.setEditText(value)
            self._show_item_data(value)
            self.lineEdit().setCursorPosition(0)  # show the start of a long label

    def _show_item_data(self, value: str) -> None:
        """With show_data: the field reads value (an item's data), its tooltip the item's label."""
        index = self.findData(value) if self.show_data else -1
        if index >= 0:
            self.setEditText(value)
            self.lineEdit().setCursorPosition(0)
        if self.show_data:  # the label, then the field's own tip (which the line edit would hide)
            self.lineEdit().setToolTip("\n".join(t for t in (self.itemText(index), self.toolTip()) if t)
                                       if index >= 0 else "")

    def _on_self_activated(self, index: int) -> None:
        if index >= 0:
            value = self.itemData(index)
            self._show_item_data(value)
            self.chosen.emit(value)

    def _on_completer_activated(self, text: str) -> None:
        value = self.value_for_text(text)
        self._show_item_data(value)
        self.chosen.emit(value)

    def _on_line_return_pressed(self) -> None:
        text = self.currentText()
        if text.strip():
            self.chosen.emit(self.value_for_text(text))
