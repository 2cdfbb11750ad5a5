"""napkin-gui [PLAN] [--screenshot OUT.png]: the desktop app's entry point.

--screenshot renders the window at a fixed size, saves a PNG and exits; without a display
it uses Qt's offscreen platform. torch is never imported here (the probe loads it in its
own thread when asked).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

SCREENSHOT_SIZE = (1600, 1000)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napkin-gui", description="Will this LLM fine-tuning run fit?")
    parser.add_argument("plan", nargs="?", help="a *.napkin.json plan to open")
    parser.add_argument("--screenshot", metavar="OUT.png", help="render the window to a PNG and exit")
    parser.add_argument("--size", default=f"{SCREENSHOT_SIZE[0]}x{SCREENSHOT_SIZE[1]}",
                        help="window size for --screenshot, WIDTHxHEIGHT (default %(default)s)")
    parser.add_argument("--tab", choices=("timeline", "time", "hardware"), default="timeline",
                        help="tab shown in the screenshot")
    return parser


def icon_path():
    """resources/icons/napkin-256.png, installed (napkin_gui.resources) or in a checkout."""
    from pathlib import Path
    try:
        import importlib.resources
        found = importlib.resources.files("napkin_gui.resources").joinpath("icons/napkin-256.png")
        if found.is_file():
            return found
    except (ModuleNotFoundError, TypeError):
        pass
    local = Path(__file__).resolve().parents[1] / "resources" / "icons" / "napkin-256.png"
    return local if local.is_file() else None


def _needs_offscreen() -> bool:
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux")


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing
    multiprocessing.freeze_support()  # the probe runs in a spawned child (probe/isolated.py)
    args = _parser().parse_args(argv)
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ and _needs_offscreen():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"napkin-gui: --size: use WIDTHxHEIGHT, got {args.size!r}", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("napkin")
    app.setOrganizationName("napkin")
    icon = icon_path()
    if icon is not None:
        from PySide6.QtGui import QIcon
        app.setWindowIcon(QIcon(str(icon)))

    from .core.errors import PlanError
    from .core.plan import load_plan
    from .ui.main_window import MainWindow
    error = ""
    if args.plan:
        try:
            load_plan(args.plan)
        except PlanError as err:
            error = str(err)
            if args.screenshot:
                print(f"napkin-gui: {error}", file=sys.stderr)
                return 2
    shot = bool(args.screenshot)
    window = MainWindow(restore_session=not args.plan and not shot, persist=not shot, background=not shot)
    if args.plan and not error:
        window.open_path(args.plan, ask=False)
    if shot:
        return screenshot(window, args.screenshot, width, height, args.tab)
    window.show()
    if error:
        window.show_error("Cannot open plan", error)
    from .ui.gc_tuning import freeze_startup_objects
    freeze_startup_objects()
    return app.exec()


def screenshot(window, path: str, width: int, height: int, tab: str = "timeline") -> int:
    """Lay the window out at width x height, recompute, render it to a PNG; 2 (after writing it)
    when the plan has no estimate (an unknown or unreadable model)."""
    from PySide6.QtWidgets import QApplication

    window.resize(width, height)
    window.tabs.setCurrentIndex(("timeline", "time", "hardware").index(tab))
    window.show()
    QApplication.processEvents()
    window.controller.flush()
    QApplication.processEvents()
    image = window.grab()
    ok = image.save(path, "PNG")
    error = window.controller.error  # the plan loaded, its model (or combination) did not
    window.controller.undo_stack.setClean()
    window.close()
    if not ok:
        print(f"napkin-gui: cannot write {path}", file=sys.stderr)
        return 1
    if error:  # the PNG shows the greyed window; the exit status says there is no estimate
        print(f"napkin-gui: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
