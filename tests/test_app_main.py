"""napkin-gui as a program: --screenshot renders a PNG and exits, bad plans exit 2, no torch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from napkin_gui.core.plan import Plan, save_plan

ROOT = Path(__file__).resolve().parents[1]


def run_app(args, tmp_path, display: bool = False, code: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["NAPKIN_CONFIG_DIR"] = str(tmp_path / "config")
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "napkin_gui", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_screenshot_writes_png(tmp_path):
    plan = tmp_path / "plan.napkin.json"
    save_plan(Plan(model="llama-3.2-1b", batch_size=4, gpu="rtx-4090", dataset_tokens=1e8), plan)
    out = tmp_path / "shot.png"
    done = run_app(["--screenshot", str(out), str(plan)], tmp_path)
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1600, 1000)
    assert not (tmp_path / "config" / "napkin-gui.ini").exists()  # a screenshot leaves no session


def test_screenshot_of_a_corrupt_plan_exits_2(tmp_path):
    plan = tmp_path / "bad.napkin.json"
    plan.write_text('{"model": "llama-3.2-1b", "batch_size": -1}')
    done = run_app(["--screenshot", str(tmp_path / "x.png"), str(plan)], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("napkin-gui: batch_size:")
    assert plan.read_text() == '{"model": "llama-3.2-1b", "batch_size": -1}'
    assert not (tmp_path / "x.png").exists()


def test_window_starts_without_torch(tmp_path):
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from napkin_gui.app import main\n"
        f"rc = main(['--screenshot', {str(tmp_path / 's.png')!r}])\n"
        "print(rc, round(time.perf_counter() - t, 3))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft')))\n"
    )
    done = run_app([], tmp_path, code=code)
    assert done.returncode == 0, done.stderr
    rc_line, modules = done.stdout.strip().splitlines()[-2:]
    assert rc_line.split()[0] == "0"
    assert modules == "[]"


@pytest.mark.parametrize("tab", ["time", "hardware"])
def test_screenshot_tabs(tmp_path, tab):
    out = tmp_path / f"{tab}.png"
    done = run_app(["--screenshot", str(out), "--tab", tab, "--size", "1200x800"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 30_000


def test_icon_is_found():
    from napkin_gui.app import icon_path
    path = icon_path()
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
