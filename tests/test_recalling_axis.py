"""RecallingAxis: an axis replays the picture of a range it drew before, and never one drawn
with an older setting."""
from __future__ import annotations

import pyqtgraph as pg

from napkin_gui.ui.plot_style import set_view, style_plot
from napkin_gui.ui.recalling_axis import recalling_axes


def _plot(qtbot):
    widget = pg.PlotWidget(axisItems=recalling_axes())
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    style_plot(widget.getPlotItem(), grid_x=True, grid_y=True)
    axis = widget.getPlotItem().getAxis("left")
    drawn = []
    generate = axis.generateDrawSpecs
    axis.generateDrawSpecs = lambda p: drawn.append(tuple(axis.range)) or generate(p)
    return widget, axis, drawn


def _show(widget, y_range):
    set_view(widget.getPlotItem(), (0.0, 10.0), y_range)
    return widget.grab().toImage()


def test_a_range_shown_before_is_replayed_not_regenerated(qtbot):
    widget, axis, drawn = _plot(qtbot)
    first = _show(widget, (0.0, 100.0))
    _show(widget, (0.0, 250.0))
    assert drawn[-2:] == [(0.0, 100.0), (0.0, 250.0)]
    count = len(drawn)
    again = _show(widget, (0.0, 100.0))
    assert len(drawn) == count          # replayed
    assert again == first               # the same pixels as when it was generated


def test_a_new_setting_regenerates_every_range(qtbot):
    widget, axis, drawn = _plot(qtbot)
    _show(widget, (0.0, 100.0))
    axis.setTicks([[(0.0, "zero"), (50.0, "half"), (100.0, "full")]])
    count = len(drawn)
    with_ticks = _show(widget, (0.0, 100.0))
    assert len(drawn) == count + 1      # ticks changed: drawn anew, not the old picture
    axis.setTicks(None)
    without = _show(widget, (0.0, 100.0))
    assert without != with_ticks


def test_the_axis_keeps_a_bounded_number_of_pictures(qtbot):
    widget, axis, _ = _plot(qtbot)
    for top in range(1, axis.PICTURES + 10):
        _show(widget, (0.0, float(top)))
    assert len(axis._pictures) == axis.PICTURES


def test_labels_are_a_pixmap_of_their_strip_and_grid_lines_cross_the_plot(qtbot):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor

    from napkin_gui import palette
    widget, axis, _ = _plot(qtbot)
    image = _show(widget, (0.0, 100.0))
    origin, labels = axis._labels
    # the tick labels only: as wide as the axis strip, not the plot its grid spans
    assert labels is not None and labels.width() <= axis.geometry().width() + 1
    assert labels.height() < widget.getPlotItem().getViewBox().height()
    # horizontal grid lines are drawn across the view, in the grid colour
    view = widget.getPlotItem().getViewBox()
    top = widget.mapFromScene(view.mapViewToScene(QPointF(5.0, 100.0)))
    bottom = widget.mapFromScene(view.mapViewToScene(QPointF(5.0, 0.0)))
    grid_rows = [y for y in range(top.y(), bottom.y()) if QColor(image.pixel(top.x(), y)).name() == palette.GRID]
    assert len(grid_rows) >= 3
    # and the labels are painted: text pixels in the strip left of the view, beside a line
    strip = {QColor(image.pixel(x, y)).name() for x in range(0, int(axis.geometry().width()) - 8)
             for y in range(grid_rows[1] - 6, grid_rows[1] + 7)}
    assert len(strip) > 3  # background plus anti-aliased glyph shades
