"""Where the app keeps its QSettings: napkin's config folder ($NAPKIN_CONFIG_DIR in tests).

A napkin-gui.ini that cannot be what napkin wrote (binary, UTF-16, not UTF-8, over
MAX_SETTINGS_BYTES, not a regular file, or one QSettings reports a format error for) is moved
aside to napkin-gui.ini.corrupt-<time> before Qt reads it, and the window says so: Qt would
otherwise read what it can and write over the rest at the first setValue. The recent-files
list is cut to MAX_RECENT when read (a file holding 200,000 entries built a menu of 200,000).
"""
from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from PySide6.QtCore import QSettings

from ..core.calibration import config_dir

MAX_RECENT = 8
# A session plan and eight paths are a few KB; a file far past that was not written by napkin
# (QSettings reads it whole: 8 MB of recent paths took 0.19 s).
MAX_SETTINGS_BYTES = 16 * 2**20
SETTINGS_NAME = "napkin-gui.ini"


def settings_path() -> Path:
    return config_dir() / SETTINGS_NAME


def app_settings() -> QSettings:
    """An INI file napkin-gui.ini in core.calibration.config_dir()."""
    return QSettings(str(settings_path()), QSettings.Format.IniFormat)


def _unreadable(path: Path) -> str:
    """Why path cannot be a settings file napkin wrote; "" when it looks like one (or is absent)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return ""
    except OSError as err:
        return err.strerror or str(err)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > MAX_SETTINGS_BYTES:
        return f"{st.st_size:,} bytes, more than napkin ever writes"
    try:
        data = path.read_bytes()
    except OSError as err:
        return err.strerror or str(err)
    if b"\x00" in data:
        return "binary or UTF-16, not the UTF-8 text napkin writes"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if QSettings(str(path), QSettings.Format.IniFormat).status() != QSettings.Status.NoError:
        return "not an INI file"
    return ""


def keep_backup(path: Path, move: bool) -> Path:
    """Copy (or move) the settings file to napkin-gui.ini.corrupt-<YYYYmmdd-HHMMSS>; the backup's path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    if move:
        os.replace(path, backup)
    else:
        shutil.copyfile(path, backup)
    return backup


def open_app_settings() -> tuple[QSettings, str]:
    """The app's QSettings and a line for the user when a corrupt file was set aside ("" if not)."""
    path = settings_path()
    reason = _unreadable(path)
    note = ""
    if reason:
        try:
            backup = keep_backup(path, move=True)
            note = f"settings: {path.name} was unreadable ({reason}); kept it as {backup.name} and started a new session"
        except OSError as err:
            note = f"settings: {path} is unreadable ({reason}) and could not be moved aside ({err}); settings are not saved"
    return app_settings(), note


def recent_files(settings: QSettings) -> list[str]:
    """The recent plans, newest first, at most MAX_RECENT."""
    value = settings.value("recent", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(v) for v in value[:4 * MAX_RECENT] if isinstance(v, str) and v][:MAX_RECENT]


def add_recent_file(settings: QSettings, path: str) -> list[str]:
    """Put path first in the recent list (at most MAX_RECENT) and return the list."""
    files = [path] + [p for p in recent_files(settings) if p != path]
    files = files[:MAX_RECENT]
    settings.setValue("recent", files)
    return files
