"""Hover tooltips on a plot that stay up while the mouse rests.

The views show their own tooltip from `scene().sigMouseMoved` (the segment under the mouse).
When the mouse then rests, Qt sends the view's viewport a QEvent.ToolTip; QGraphicsView passes
it to QGraphicsScene.helpEvent, which finds no item with a tooltip of its own and calls
QToolTip.showText with an empty text: that hides the view's tooltip about a second after it
appeared (qtbase src/widgets/graphicsview/qgraphicsscene.cpp, QGraphicsScene::helpEvent).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QGraphicsView


class _SwallowToolTipEvents(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        return event.type() == QEvent.Type.ToolTip


def keep_hover_tips(view: QGraphicsView) -> None:
    """Stop the scene's own tooltip handling from hiding the tooltip the view shows on hover."""
    tip_filter = _SwallowToolTipEvents(view)
    view.viewport().installEventFilter(tip_filter)
