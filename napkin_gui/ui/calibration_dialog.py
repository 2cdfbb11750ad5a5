"""CalibrationDialog: the stored probe profiles; use one for estimates, delete, export, import."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from ..core import calibration as cal
from ..core.errors import PlanError
from .. import palette


def profile_line(profile: Any) -> str:
    trials = f" · {len(profile.trials)} trial(s)" if profile.trials else ""
    return f"{cal.profile_label(profile)}{trials}  [{profile.id}]"


class CalibrationDialog(QDialog):
    """List of profiles in core.calibration.profiles_dir(); emits profile_chosen(profile | None)."""

    profile_chosen = Signal(object)

    def __init__(self, current: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Calibration profiles")
        self.resize(640, 360)
        self.current = current
        self.list = QListWidget(self)
        self.list.setToolTip("Profiles the probe measured; the chosen one replaces the catalog's throughputs.")
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        self.use_button = QPushButton("Use for estimates", self)
        self.none_button = QPushButton("Use catalog figures", self)
        self.delete_button = QPushButton("Delete", self)
        self.export_button = QPushButton("Export…", self)
        self.import_button = QPushButton("Import…", self)
        for b in (self.use_button, self.none_button, self.delete_button, self.export_button, self.import_button):
            buttons.addWidget(b)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Stored in {cal.profiles_dir()}", self))
        layout.addWidget(self.list, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(close)
        self.use_button.clicked.connect(self._on_use_clicked)
        self.none_button.clicked.connect(lambda: self._choose(None))
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.import_button.clicked.connect(self._on_import_clicked)
        self.list.itemDoubleClicked.connect(lambda _item: self._on_use_clicked())
        self.list.currentItemChanged.connect(lambda *_: self._enable_buttons())
        self.reload()

    def reload(self) -> None:
        """Re-read the store; keeps the selection; ● marks the profile estimates use."""
        selected = self.selected_profile()
        profiles, warnings = cal.load_profiles()
        self.list.clear()
        for profile in profiles:
            item = QListWidgetItem(profile_line(profile), self.list)
            item.setData(Qt.ItemDataRole.UserRole, profile)
            if self.current is not None and profile.id == self.current.id:
                item.setText("● " + item.text())
            if selected is not None and profile.id == selected.id:
                self.list.setCurrentItem(item)
        if not profiles:
            placeholder = QListWidgetItem("No profiles yet: run Probe GPU on a machine with an NVIDIA GPU.", self.list)
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)  # not selectable: there is nothing to use
        self._say("\n".join(warnings) or "", ok=not warnings)
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        """Use / Delete / Export act on the selected profile: enabled only while one is selected;
        'Use catalog figures' only while a profile is in use; Import always."""
        chosen = self.selected_profile() is not None
        for button in (self.use_button, self.delete_button, self.export_button):
            button.setEnabled(chosen)
        self.none_button.setEnabled(self.current is not None)

    def selected_profile(self) -> Any:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _say(self, text: str, ok: bool = True) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("" if ok else f"color: {palette.ERROR_FG};")

    def _choose(self, profile: Any) -> None:
        self.current = profile
        self.profile_chosen.emit(profile)
        self.reload()
        self._say(f"estimates now use {cal.profile_label(profile)}" if profile else "estimates use the catalog")

    def _on_use_clicked(self) -> None:
        profile = self.selected_profile()
        if profile is not None:
            self._choose(profile)

    def delete_selected(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            return
        try:
            cal.delete_profile(profile.id)
        except PlanError as err:
            self._say(str(err), ok=False)
            return
        if self.current is not None and self.current.id == profile.id:
            self._choose(None)
        self.reload()
        self._say(f"deleted {profile.id}")

    def _on_delete_clicked(self) -> None:
        self.delete_selected()

    def export_selected(self, path: str) -> None:
        profile = self.selected_profile()
        if profile is None or not path:
            return
        try:
            cal.export_profile(profile, path)
        except (PlanError, OSError) as err:
            self._say(f"export failed: {err}", ok=False)
            return
        self._say(f"exported {profile.id} to {path}")

    def _on_export_clicked(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export profile", f"{profile.id}.json", "JSON (*.json)")
        self.export_selected(path)

    def import_path(self, path: str) -> None:
        if not path:
            return
        try:
            profile = cal.import_profile(path)
        except (PlanError, OSError) as err:
            self._say(str(err), ok=False)
            return
        self.reload()
        self._say(f"imported {profile.id}")

    def _on_import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import profile", "", "JSON (*.json)")
        self.import_path(path)
