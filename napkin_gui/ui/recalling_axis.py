"""RecallingAxis: a pyqtgraph AxisItem that replays the drawing of a range it drew before.

It subclasses pyqtgraph internals (AxisItem.paint, generateDrawSpecs, drawPicture, the
`picture`, `style`, `range` and `grid` attributes, and the setters wrapped below: pyqtgraph
0.14), which is why pyproject.toml caps pyqtgraph below its next minor release.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPainter, QPen, QPicture, QPixmap


class RecallingAxis(pg.AxisItem):
    """An AxisItem that keeps the drawings of the last ranges it drew and replays one when
    its view returns to that range; its tick labels are kept as a small pixmap.

    pyqtgraph re-generates an axis (tick values, every label's text and rectangle, grid
    lines: AxisItem.generateDrawSpecs, in Python) whenever its range changes. The ranges
    here snap to a few nice values (nice_ceiling, nice_log_range), so an edit mostly moves an
    axis to a range it has shown before, and replaying its drawing saves that axis's paint
    on the Time tab's eight axes (bench/README.md).

    A drawing is two parts: the lines (axis, ticks and the grid across the plot) as a
    QPicture, replayed on each paint (a few drawLine calls), and the tick labels rendered
    once into a pixmap the size of the labels, blitted on each paint. Replaying the labels
    would lay out and rasterise their text on every paint, and a cache of the whole item
    (DeviceCoordinateCache) would blend a plot-sized pixmap, grid included, per axis.

    A drawing is keyed by what it is drawn from: the range, the axis's size, the grid's
    extent (the linked view's rectangle), the device pixel ratio and a generation that every
    other setter bumps (pens, fonts, ticks, log mode, ...).
    """

    PICTURES = 32  # drawings per axis, least recently used dropped

    def __init__(self, *args, **kwargs) -> None:
        # set before AxisItem.__init__, which already calls the setters wrapped below
        self._pictures: OrderedDict[tuple, tuple[QPicture, QPointF | None, QPixmap | None]] = OrderedDict()
        self._labels: tuple[QPointF | None, QPixmap | None] = (None, None)
        self._generation = 0
        super().__init__(*args, **kwargs)

    def _picture_key(self, ratio: float) -> tuple:
        view = self.linkedView()
        rect = self.geometry()
        grid = None
        if view is not None and self.grid is not False:
            r = view.mapRectToItem(self, view.boundingRect())
            grid = (r.x(), r.y(), r.width(), r.height())
        return (tuple(self.range), rect.width(), rect.height(), grid, ratio, self._generation)

    def _draw(self, ratio: float) -> tuple[QPicture, QPointF | None, QPixmap | None]:
        """The lines as a picture and the labels as a pixmap (with its top-left corner),
        drawn by pyqtgraph's own generateDrawSpecs / drawPicture."""
        lines = QPicture()
        painter = QPainter(lines)
        try:
            if self.style["tickFont"]:
                painter.setFont(self.style["tickFont"])
            specs = self.generateDrawSpecs(painter)
            if specs is None:
                return lines, None, None
            axis_spec, tick_specs, text_specs = specs
            self.drawPicture(painter, axis_spec, tick_specs, [])
        finally:
            painter.end()
        if not text_specs:
            return lines, None, None
        area = QRectF()
        for rect, _, _ in text_specs:
            area = area.united(rect)
        area = area.intersected(self.boundingRect()).toAlignedRect()
        if area.isEmpty():
            return lines, None, None
        pixmap = QPixmap(math.ceil(area.width() * ratio), math.ceil(area.height() * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        try:
            painter.translate(-area.x(), -area.y())
            hidden = (QPen(Qt.PenStyle.NoPen), axis_spec[1], axis_spec[1])  # the line is in `lines`
            self.drawPicture(painter, hidden, [], text_specs)
        finally:
            painter.end()
        return lines, QPointF(area.topLeft()), pixmap

    def paint(self, p, opt, widget) -> None:  # Qt override
        if self.picture is None:
            ratio = p.device().devicePixelRatioF()
            key = self._picture_key(ratio)
            drawing = self._pictures.get(key)
            if drawing is None:
                drawing = self._pictures[key] = self._draw(ratio)
                if len(self._pictures) > self.PICTURES:
                    self._pictures.popitem(last=False)
            else:
                self._pictures.move_to_end(key)
            self.picture, origin, pixmap = drawing
            self._labels = (origin, pixmap)
        self.picture.play(p)
        origin, pixmap = self._labels
        if pixmap is not None:
            p.drawPixmap(origin, pixmap)


def _forgetting(name: str):
    """AxisItem.<name>, after which no kept picture is replayed (it drew with the old setting)."""
    method = getattr(pg.AxisItem, name)

    def setter(self, *args, **kwargs):
        self._generation += 1
        return method(self, *args, **kwargs)
    setter.__name__ = name
    setter.__doc__ = method.__doc__
    return setter


for _name in ("setPen", "setTextPen", "setTickPen", "setStyle", "setTickFont", "setTickSpacing", "setTickDensity",
              "setGrid", "setScale", "enableAutoSIPrefix", "setTicks", "setLogMode", "linkToView"):
    setattr(RecallingAxis, _name, _forgetting(_name))


def recalling_axes() -> dict[str, RecallingAxis]:
    """axisItems= for a PlotItem / PlotWidget / addPlot: the two axes the plots show."""
    return {name: RecallingAxis(name) for name in ("left", "bottom")}
