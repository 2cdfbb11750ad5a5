"""Shared pyqtgraph styling: opaque light grid lines, fixed ranges, no mouse interaction.

Grid lines are drawn opaque in a light grey (palette.GRID) instead of pyqtgraph's
translucent foreground: alpha-blended lines made a repaint of the timeline plot several
times slower under Qt's software rasterizer (bench/README.md).
"""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem, QLabel, QSizePolicy, QWidget

from .. import palette


def style_plot(item: pg.PlotItem, grid_x: bool, grid_y: bool, left_width: int = 62) -> None:
    """A static plot: light opaque grid, no auto-range, no mouse pan/zoom, no context menu.

    The left axis gets a fixed width, so new tick labels never re-lay out the plot (a second
    repaint per edit otherwise).
    """
    item.showGrid(x=grid_x, y=grid_y, alpha=1.0)
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setTickPen(pg.mkPen(palette.GRID))
        axis.setStyle(tickAlpha=255, maxTickLevel=0 if name == "left" else 1)
        axis.setZValue(-1000)  # grid lines under the data, not across the bars
        axis.setPen(pg.mkPen(palette.AXIS))
        axis.setTextPen(pg.mkPen(palette.FOREGROUND))
        # no SI prefix (labels carry their own units): pyqtgraph would re-render the axis
        # label's HTML (QGraphicsTextItem.setHtml) on every range change
        axis.enableAutoSIPrefix(False)
        # the axis title (a QGraphicsTextItem, a rich-text layout on every paint) as a pixmap
        axis.label.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    for name in ("top", "right"):  # hidden, but linked to the view: each range change reaches them
        item.getAxis(name).enableAutoSIPrefix(False)
    item.getAxis("left").setWidth(left_width)
    item.enableAutoRange(False)
    item.setMouseEnabled(False, False)
    item.setMenuEnabled(False)
    item.hideButtons()


def fixed_label(label: QLabel, lines: int = 1) -> QLabel:
    """A label whose size never follows its text: a new text repaints the label only.

    A label that grows or shrinks with its text makes every edit re-lay out and repaint the
    whole splitter it sits in (measured: ~3 full-window repaints per edit).
    """
    label.setWordWrap(lines > 1)
    # opaque: a new text repaints the label alone, not the tab widget's frame beneath it
    label.setAutoFillBackground(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    margins = label.contentsMargins()
    label.setFixedHeight(label.fontMetrics().lineSpacing() * lines + 6 + margins.top() + margins.bottom())
    return label


class QuietHost(QWidget):
    """Holds one widget of fixed height without a layout, filling the host.

    QLabel.setText calls updateGeometry, which invalidates the parent's layout and every
    layout above it up to the window; a QTabWidget answers that LayoutRequest by repainting
    its whole frame and the window lays itself out again (bench/README.md). A host without a layout
    takes the LayoutRequest and does nothing, so a new caption repaints only itself.
    """

    def __init__(self, child: QWidget, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.child = child
        child.setParent(self)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.child.setGeometry(self.rect())
        super().resizeEvent(event)


def quiet(label: QLabel) -> QuietHost:
    """The fixed_label in a QuietHost, for a layout (the label stays the one to setText on)."""
    return QuietHost(label, label.maximumHeight(), label.parentWidget())


def set_view(item: pg.PlotItem, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
    """Set the visible range and apply it now.

    pyqtgraph applies a new range lazily, in the scene's prepare-for-paint step, which moves
    the items and schedules a second full repaint of the view; applying it here keeps an
    edit to one repaint.
    """
    vb = item.getViewBox()
    vb.setRange(xRange=x_range, yRange=y_range, padding=0)
    vb.updateMatrix()


# Axis ranges snap to these steps, so most edits leave a plot's range as it was or move it
# to one its axes drew before (RecallingAxis replays that picture): a range never seen
# re-generates every tick label of the axis (bench/README.md).
NICE_MANTISSAS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k that is >= value (> 0)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in NICE_MANTISSAS if m * power >= value * (1 - 1e-12))


def nice_log_range(lo: float, hi: float, step: float = 0.5) -> tuple[float, float]:
    """A log10 axis range around [lo, hi] (log10 units) on whole multiples of step, with at
    least a quarter step of room on each side."""
    return math.floor((lo - step / 4) / step) * step, math.ceil((hi + step / 4) / step) * step


def set_view_if_changed(item: pg.PlotItem, x_range: tuple[float, float], y_range: tuple[float, float]) -> bool:
    """set_view, skipped when the plot already shows exactly these ranges."""
    if getattr(item, "_napkin_view", None) == (x_range, y_range):
        return False
    item._napkin_view = (x_range, y_range)
    set_view(item, x_range, y_range)
    return True
