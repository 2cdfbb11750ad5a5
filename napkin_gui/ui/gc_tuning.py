"""Keep Python's garbage collector from stalling an edit.

A full (generation 2) collection walks every tracked object. After start-up that is the
whole of PySide6, pyqtgraph, numpy and the catalog (~250,000 objects here), none of which
ever becomes garbage: a full collection in the middle of an edit took 30-80 ms
(bench/gui_latency.py, 2-core machine). gc.freeze() moves what exists at start-up into the
permanent generation (https://docs.python.org/3/library/gc.html#gc.freeze), so later full
collections walk only what edits made since.
"""
from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then exempt every surviving object from later collections; returns
    how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
