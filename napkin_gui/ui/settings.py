"""Where the app keeps its QSettings: napkin's config folder ($NAPKIN_CONFIG_DIR in tests)."""
from __future__ import annotations

from PySide6.QtCore import QSettings

from ..core.calibration import config_dir

MAX_RECENT = 8


def app_settings() -> QSettings:
    """An INI file napkin-gui.ini in core.calibration.config_dir()."""
    return QSettings(str(config_dir() / "napkin-gui.ini"), QSettings.Format.IniFormat)


def recent_files(settings: QSettings) -> list[str]:
    value = settings.value("recent", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or []) if v]


def add_recent_file(settings: QSettings, path: str) -> list[str]:
    """Put path first in the recent list (at most MAX_RECENT) and return the list."""
    files = [path] + [p for p in recent_files(settings) if p != path]
    files = files[:MAX_RECENT]
    settings.setValue("recent", files)
    return files
