import os

import pytest

# pytest-qt has no ini option for the Qt platform; without a display the xcb plugin aborts
# the run (shared/TOOLCHAIN.md section 4).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    """Every test gets its own napkin config folder (settings, calibration profiles), never the user's."""
    monkeypatch.setenv("NAPKIN_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"
