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


@pytest.fixture(autouse=True)
def reports_paint_in_a_qapplication(monkeypatch):
    """report/pdf.ensure_gui_app makes a bare QGuiApplication when none exists (what the CLI
    needs); in one test process the next widget test then finds no QApplication and Qt aborts
    the whole run (test_report then test_wording, seen in a targeted run). Tests paint reports
    in the QApplication pytest-qt's qapp uses; Qt is still imported only when a report is made."""
    def ensure_qapplication():
        from PySide6.QtWidgets import QApplication
        return QApplication.instance() or QApplication(["napkin-tests"])
    monkeypatch.setattr("napkin_gui.report.pdf.ensure_gui_app", ensure_qapplication)


@pytest.fixture
def open_window(qtbot):
    """Makes shown main windows for the window's tests: open_window(plan, size=(w, h), tab="time_view",
    **MainWindow options). No session restored or saved, no NVML polling, "Discard" when pytest-qt
    closes it, and error dialogs collected in window.errors instead of shown. Qt is imported
    only by the tests that ask for it."""
    def make(plan, size=None, tab=None, **options):
        from PySide6.QtWidgets import QApplication, QMessageBox
        from napkin_gui.ui.main_window import MainWindow
        w = MainWindow(plan, **{"restore_session": False, "poll_nvml": False, "persist": False, **options})
        w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
        w.errors = []
        w.show_error = lambda title, text: w.errors.append(text)
        qtbot.addWidget(w)
        if size is not None:
            w.resize(*size)
        if tab is not None:
            w.tabs.setCurrentWidget(getattr(w, tab))
        w.show()
        w.controller.flush()
        QApplication.processEvents()
        return w
    return make
