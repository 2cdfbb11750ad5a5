"""How the window shows a plan that has no estimate: every figure greyed, the reason said.

An invalid edit (an unknown model, a combination core.plan.check_combination refuses) leaves
the views holding the previous plan's figures; shown as they were, a green "fits" banner
would speak for a plan that no longer exists. While the controller's error is set, each
figure widget is disabled (tables and lists draw in the disabled palette, clicks on a stale
row or advice do nothing) and its pyqtgraph scene is faded; the memory bar's banner carries
the core's line instead (MemoryBarView.show_invalid). The next valid estimate undoes both.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

INVALID_OPACITY = 0.25  # a faded scene still shows where the figures were, unmistakably stale


def grey_out(widget: QWidget, greyed: bool) -> None:
    """Disable widget and fade every pyqtgraph scene inside it (or restore both).

    The fade is the scene's top item's QGraphicsItem opacity (a PlotItem, a GraphicsLayout),
    which its children inherit: nothing is redrawn from data, so it costs one repaint.
    """
    widget.setEnabled(not greyed)
    views = widget.findChildren(pg.GraphicsView)
    if isinstance(widget, pg.GraphicsView):
        views.append(widget)
    for view in views:
        top = getattr(view, "centralWidget", None)
        if top is not None:
            top.setOpacity(INVALID_OPACITY if greyed else 1.0)


def is_greyed(widget: QWidget) -> bool:
    """Whether grey_out(widget, True) is in effect (tests read what is drawn)."""
    views = widget.findChildren(pg.GraphicsView)
    faded = [v.centralWidget.opacity() < 1.0 for v in views if getattr(v, "centralWidget", None) is not None]
    return not widget.isEnabled() and all(faded)
