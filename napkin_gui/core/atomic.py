"""Saves: a temp file beside the target renamed over it, without breaking what the target is.

A plain rename would replace a symlink with a file, a device node (`-o /dev/null` as root)
with a regular file, give every save mkstemp's 0600, and overwrite a file its owner made
read-only. So, before the rename:
- a symlink is followed: the file it points to is saved, the link stays;
- a character device, FIFO or socket is written through (its bytes copied into it, opened
  non-blocking so a FIFO nobody reads fails at once instead of hanging); a folder or a block
  device is refused;
- a target without any write bit is refused (root would otherwise overwrite it);
- the new file keeps the old one's mode (and owner, where allowed); a new file gets
  0666 minus the umask, as open() would give it;
- temp files of killed saves (`.NAME.<pid>-<random>.tmp` whose process is gone, or older than
  STALE_SECONDS) are removed beside the target.
Every refusal is a SaveRefused (an OSError) whose text is one line saying why (callers name the path).
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_SECONDS = 24 * 3600  # a temp file this old is stale whatever its pid says (pids are reused)
_NEW_FILE_MODE = 0o666     # what open(path, "w") asks for; the kernel takes the umask off


class SaveRefused(OSError):
    """A save napkin will not do; str() is the one-line reason."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return self.strerror


def save_target(target: str | os.PathLike[str]) -> Path:
    """The path a save writes: symlinks followed; SaveRefused for a folder, a block device or a
    file without write permission."""
    path = Path(os.path.realpath(target))
    try:
        st = path.stat()
    except FileNotFoundError:
        return path
    if stat.S_ISDIR(st.st_mode):
        raise SaveRefused(errno.EISDIR, "it is a folder; give a file name")
    if stat.S_ISBLK(st.st_mode):
        raise SaveRefused(errno.EPERM, "it is a block device; napkin does not write to disks")
    if stat.S_ISREG(st.st_mode) and (not st.st_mode & 0o222 or not os.access(path, os.W_OK)):
        raise SaveRefused(errno.EACCES, f"the file is read-only (mode {stat.S_IMODE(st.st_mode):04o}); "
                                        f"make it writable or save under another name")
    return path


def _is_special(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (POSIX signal 0; on Windows os.kill would end it, so
    there every pid counts as alive and only the age makes a temp file stale)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def clean_stale_temps(path: Path, now: float | None = None) -> list[Path]:
    """Remove this target's temp files left by killed saves; returns what was removed."""
    now = time.time() if now is None else now
    prefix, removed = _temp_prefix(path), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):-len(".tmp")].split("-", 1)[0]
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        dead = pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))
        if dead or now - st.st_mtime > STALE_SECONDS:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _create_temp(path: Path) -> Path:
    """A new empty file beside path, named after it and this process, mode 0666 - umask."""
    for _ in range(100):
        tmp = path.with_name(f"{_temp_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
        except FileExistsError:
            continue
        except PermissionError:
            raise SaveRefused(errno.EACCES, f"no permission to create files in {path.parent}") from None
        os.close(fd)
        return tmp
    raise SaveRefused(errno.EEXIST, "no free temp file name beside it")


def _keep_mode_and_owner(tmp: Path, target: Path) -> None:
    """Give tmp the mode (and owner, where the OS lets us) of the file it replaces."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    if hasattr(os, "chown"):
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except OSError:
            pass  # not root: the file is ours, as a new one would be


def _write_through(source: Path, target: Path) -> None:
    """Copy source's bytes into a character device, FIFO or socket without replacing it."""
    try:
        fd = os.open(target, os.O_WRONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        reason = "it is a pipe nothing reads from" if err.errno == errno.ENXIO else (err.strerror or str(err))
        raise SaveRefused(err.errno or errno.EIO, reason) from None
    try:
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        with open(source, "rb") as fh:
            while chunk := fh.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write; on success it becomes the target (see the module docstring).

    On any error the temp file is removed and the target is left as it was, so a crash
    never leaves half a file (os.replace is atomic on POSIX and Windows).
    """
    path = save_target(target)
    special = _is_special(path)
    if special:  # /dev is no place for a temp file
        fd, name = tempfile.mkstemp(prefix="napkin-save-", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        tmp = _create_temp(path)
    try:
        yield tmp
        if special:
            _write_through(tmp, path)
            os.unlink(tmp)
        else:
            _keep_mode_and_owner(tmp, path)
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text to path atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
