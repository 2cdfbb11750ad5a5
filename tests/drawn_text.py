"""What a pyqtgraph axis draws as text: the (rect, flags, text) of each tick label, from
AxisItem.generateDrawSpecs (pyqtgraph graphicsItems/AxisItem.py, the specs its paint() draws)
on a scratch painter. Used by the tests that check labels against their view."""
from __future__ import annotations

from typing import Any


def axis_texts(axis: Any) -> list[tuple[Any, int, str]]:
    from PySide6.QtGui import QImage, QPainter
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return list(texts)
