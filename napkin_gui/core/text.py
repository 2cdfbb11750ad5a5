"""How user input is echoed in an error line: escaped (no terminal control codes) and cut.

A key like "\\x1b[2J" printed raw clears the terminal and can draw a fake line; a 1 MB value
makes a 1 MB error line. `shown` is repr (which escapes every non-printable character,
str.isprintable) cut to a bounded length; containers go through reprlib's limits
(Lib/reprlib.py: maxlevel, maxlist, maxdict, maxstring) so a deep or huge value costs little.
"""
from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxstring = 80
_REPR.maxlong = 40
_REPR.maxother = 80


def shown(value: Any, limit: int = 80) -> str:
    """value as repr, every control character escaped, at most about `limit` characters."""
    if isinstance(value, str):
        text = repr(value[:limit + 1])
        return text if len(value) <= limit else text[:limit] + "…'"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def bare(value: str, limit: int = 80) -> str:
    """A name as shown without quotes when it is plain printable text, else shown(value)."""
    if isinstance(value, str) and value.isprintable() and len(value) <= limit and "'" not in value:
        return value
    return shown(value, limit)
