"""Reading input files safely: only regular files, never more than a cap, JSON that cannot
crash the reader.

A path may name /dev/zero (endless), a FIFO (open() blocks until a writer comes) or a
device; `Path.read_text` on those grows memory or hangs forever. Here a path is stat'ed
first, opened with O_NONBLOCK (POSIX open(2): a FIFO opens at once without a writer),
checked again with fstat on the open descriptor (the path may change in between), and read
up to its cap plus one byte.

Python's json module raises RecursionError for nesting deeper than the interpreter's
recursion limit (~1000, Modules/_json.c uses Py_EnterRecursiveCall) and ValueError for an
integer over sys.get_int_max_str_digits() digits (4300 by default, Python 3.11+):
`loads_json` turns both, bad UTF-8 and duplicate keys into one PlanError line.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .errors import PlanError
from .text import bare, shown

# A plan is a few hundred bytes; a session or a hand-written plan with long lists stays far below this.
MAX_PLAN_BYTES = 1_000_000
# Nesting deeper than this is refused before Python's json recursion limit (~1000) is near.
MAX_JSON_DEPTH = 200


class UnreadableFileError(OSError):
    """The path is not a regular file, or larger than the cap (strerror says which)."""


def read_regular_bytes(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most max_bytes; UnreadableFileError (an OSError) if it is
    a device, FIFO, socket or folder, or larger; other OSErrors (not found, permission) as raised."""
    before = os.stat(path)
    _check_regular(before, max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        _check_regular(os.fstat(fd), max_bytes)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > max_bytes:  # it grew while we read it
        raise UnreadableFileError(f"larger than {max_bytes:,} bytes")
    return b"".join(chunks)


def _check_regular(info: os.stat_result, max_bytes: float) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableFileError("a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFileError("not a regular file (a device, FIFO or socket)")
    if info.st_size > max_bytes:
        raise UnreadableFileError(f"larger than {max_bytes:,} bytes ({info.st_size:,} bytes)")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """A regular file opened for binary reading (never blocks on a FIFO); UnreadableFileError
    if it is anything else. The caller reads only what it needs (a safetensors header)."""
    _check_regular(os.stat(path), float("inf"))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        _check_regular(os.fstat(fd), float("inf"))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular_text(path: str | os.PathLike[str], max_bytes: int) -> str:
    """read_regular_bytes decoded as UTF-8 (UnicodeDecodeError as raised)."""
    return read_regular_bytes(path, max_bytes).decode("utf-8")


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for an existing regular file (follows links); never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: json.loads would silently keep the last of two equal keys."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _depth_ok(text: str, limit: int) -> bool:
    """False when brackets outside strings nest deeper than limit (a linear scan, no recursion)."""
    depth, in_string, escaped = 0, False, False
    if text.count("[") + text.count("{") <= limit:
        return True
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def loads_json(data: str | bytes, what: str, strict_keys: bool = True) -> Any:
    """Decode JSON text (bytes must be UTF-8); every failure is one PlanError line starting `what:`.

    strict_keys: a key given twice in one object is an error (json.loads would keep the last).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PlanError(f"{what}: not UTF-8 text (byte {err.start})") from None
    if not _depth_ok(data, MAX_JSON_DEPTH):
        raise PlanError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates if strict_keys else None)
    except json.JSONDecodeError as err:
        raise PlanError(f"{what} is not valid JSON (line {err.lineno}: {err.msg})") from None
    except _DuplicateKey as dup:
        raise PlanError(f"{bare(dup.key, 60)}: given twice in {what} (a JSON object names each field once)") from None
    except RecursionError:
        raise PlanError(f"{what}: JSON nested too deeply") from None
    except ValueError as err:  # an integer literal over Python's 4300-digit limit
        raise PlanError(f"{what}: a number in the JSON is too long ({shown(str(err), 80)})") from None


def read_json_file(path: str | os.PathLike[str], what: str, max_bytes: int, strict_keys: bool = True) -> Any:
    """A regular JSON file of at most max_bytes, decoded; PlanError `what: ...` on any failure."""
    p = Path(path)
    try:
        raw = read_regular_bytes(p, max_bytes)
    except FileNotFoundError:
        raise PlanError(f"{what}: file not found: {shown_path(p)}") from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise PlanError(f"{what}: cannot read {shown_path(p)} ({reason})") from None
    return loads_json(raw, f"{what}: {shown_path(p)}", strict_keys)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as echoed in an error line: plain when printable, else escaped; cut to 200 characters."""
    text = str(path)
    return text if text.isprintable() and len(text) <= 200 else shown(text, 200)
