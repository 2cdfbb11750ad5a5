"""Issue 12 item 9: saves keep what the target is (core/atomic.py and its callers).

Before: every save renamed a 0600 temp file over the target, so a symlink became a file, a
device node given as `-o` (as root) became a regular file, a read-only plan was overwritten,
the file's mode was lost, and temp files of killed saves stayed forever.
"""
from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest

from napkin_gui.cli import main
from napkin_gui.core import atomic, calibration as cal
from napkin_gui.core.atomic import STALE_SECONDS, SaveRefused, clean_stale_temps, write_text_atomic
from napkin_gui.core.errors import PlanError
from napkin_gui.core.plan import Plan, load_plan, save_plan

PLAN = Plan(model="llama-3.2-1b", batch_size=3)
POSIX = os.name == "posix"
pytestmark = pytest.mark.skipif(not POSIX, reason="modes, links and FIFOs are POSIX")


@pytest.fixture
def umask():
    """Set the umask for one test, restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_symlink_stays_a_link_and_its_target_is_saved(tmp_path):
    real = tmp_path / "real" / "plan.napkin.json"
    real.parent.mkdir()
    save_plan(Plan(model="gpt2"), real)
    link = tmp_path / "link.napkin.json"
    link.symlink_to(real)
    save_plan(PLAN, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert load_plan(real) == PLAN
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []


def test_previous_mode_is_kept(tmp_path):
    path = tmp_path / "p.napkin.json"
    save_plan(Plan(model="gpt2"), path)
    os.chmod(path, 0o640)
    save_plan(PLAN, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    os.chmod(path, 0o664)
    write_text_atomic(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "new.napkin.json"
    save_plan(PLAN, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_read_only_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "p.napkin.json"
    save_plan(Plan(model="gpt2"), path)
    before = path.read_bytes()
    os.chmod(path, 0o444)
    with pytest.raises(SaveRefused) as err:
        save_plan(PLAN, path)  # as root too: the mode bits decide, not access()
    assert "read-only (mode 0444)" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_report_to_a_read_only_file_is_one_line_exit_2(qapp, tmp_path, capsys):
    plan = tmp_path / "p.napkin.json"
    save_plan(PLAN, plan)
    out = tmp_path / "r.pdf"
    out.write_bytes(b"keep")
    os.chmod(out, 0o444)
    assert main(["report", str(plan), "-o", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"napkin: output: cannot write {out}: the file is read-only") or \
        f"output: cannot write {out}: the file is read-only" in line, line
    assert "\n" not in line and out.read_bytes() == b"keep"


def _reader(fifo, got):
    with open(fifo, "rb") as fh:
        got.append(fh.read())


def test_fifo_is_written_through_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=_reader, args=(fifo, got), daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while True:  # the reader must have the FIFO open before a non-blocking writer can open it
        try:
            save_plan(PLAN, fifo)
            break
        except SaveRefused:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(got[0])["batch_size"] == 3
    assert leftovers(tmp_path) == []


def test_fifo_nobody_reads_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SaveRefused) as err:
        save_plan(PLAN, fifo)  # before: rename replaced the FIFO; a plain open would hang
    assert "nothing reads" in str(err.value)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_character_device_is_written_through_not_replaced(qapp, tmp_path, capsys):
    """`napkin report PLAN -o /dev/null`, on a private copy of /dev/null's node (root only)."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("creating a device node needs root")
    plan = tmp_path / "p.napkin.json"
    save_plan(PLAN, plan)
    assert main(["report", str(plan), "-o", str(null)]) == 0
    assert stat.S_ISCHR(null.stat().st_mode) and null.stat().st_rdev == os.makedev(1, 3)
    save_plan(PLAN, null)
    assert stat.S_ISCHR(null.stat().st_mode)
    assert leftovers(tmp_path) == []


def test_folder_is_refused(tmp_path):
    folder = tmp_path / "d.napkin.json"
    folder.mkdir()
    with pytest.raises(SaveRefused, match="folder"):
        save_plan(PLAN, folder)
    assert folder.is_dir()


def _temp_name(target, pid, tag="abcd1234"):
    return target.with_name(f".{target.name}.{pid}-{tag}.tmp")


DEAD_PID = 4_194_305  # above Linux's largest pid_max (2**22): never a live process


def test_stale_temp_files_are_cleaned_on_the_next_save(tmp_path):
    path = tmp_path / "p.napkin.json"
    dead = _temp_name(path, DEAD_PID)
    old = _temp_name(path, os.getpid(), "old00000")
    live = _temp_name(path, 1, "live0000")  # pid 1 lives; fresh: another save in progress
    other = tmp_path / ".q.napkin.json.123-x.tmp"  # another target's temp file
    legacy = tmp_path / ".p.napkin.json.k2j3h4.tmp"  # mkstemp's names before this change
    for p in (dead, old, live, other, legacy):
        p.write_text("half")
    two_days = time.time() - 2 * STALE_SECONDS
    os.utime(old, (two_days, two_days))
    os.utime(legacy, (two_days, two_days))
    save_plan(PLAN, path)
    assert leftovers(tmp_path) == sorted([live.name, other.name])
    assert load_plan(path) == PLAN


def test_a_killed_save_leaves_a_temp_the_next_save_removes(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "p.napkin.json"
    script = ("import os, sys\nfrom napkin_gui.core import atomic\n"
              "with atomic.atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_text('half')\n    os._exit(9)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], timeout=60)
    assert done.returncode == 9 and len(leftovers(tmp_path)) == 1 and not path.exists()
    save_plan(PLAN, path)
    assert leftovers(tmp_path) == [] and load_plan(path) == PLAN


def test_clean_keeps_symlinks_and_folders_named_like_temps(tmp_path):
    path = tmp_path / "p.napkin.json"
    trap = tmp_path / "precious"
    trap.write_text("x")
    link = _temp_name(path, DEAD_PID, "link0000")
    link.symlink_to(trap)
    folder = _temp_name(path, DEAD_PID, "dir00000")
    folder.mkdir()
    assert clean_stale_temps(path) == []
    assert link.is_symlink() and folder.is_dir() and trap.read_text() == "x"


def test_profile_export_refusal_is_a_plan_error(tmp_path):
    target = tmp_path / "shared.json"
    target.write_text("{}")
    os.chmod(target, 0o444)
    profile = _a_profile()
    with pytest.raises(PlanError) as err:
        cal.export_profile(profile, target)
    assert str(err.value).startswith(f"export: cannot write {target}: the file is read-only")


def _a_profile():
    from test_calibration import profile
    return profile()


def test_window_save_to_a_read_only_plan_says_so(qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox
    from napkin_gui.ui.main_window import MainWindow
    path = tmp_path / "p.napkin.json"
    save_plan(PLAN, path)
    os.chmod(path, 0o444)
    w = MainWindow(PLAN, restore_session=False, poll_nvml=False, persist=False)
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    errors = []
    w.show_error = lambda title, text: errors.append(text)
    qtbot.addWidget(w)
    assert not w.save_to(path)
    assert errors == [f"plan: cannot write {path}: the file is read-only (mode 0444); "
                      "make it writable or save under another name"]
    assert atomic.save_target(tmp_path / "elsewhere.napkin.json").name == "elsewhere.napkin.json"
