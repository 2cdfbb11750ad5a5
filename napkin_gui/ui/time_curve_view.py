"""TimeCurveView: step time and tokens/s against batch size and sequence length.

Four plots (rows: step time, tokens/s; columns: batch size, sequence length) over the
controller's Sweeps, log x axes, the OOM zone shaded, the plan's own point marked and the
bound named. Items are created once and updated with setData / setRegion. For a GRPO plan an
"x axes" choice appears: the same four plots against completions per prompt and completion
length (core.sweep's GRPO curves), built the first time a GRPO plan is shown.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (QComboBox, QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem,
                               QGraphicsRectItem, QGraphicsSimpleTextItem, QHBoxLayout, QLabel, QStackedWidget,
                               QVBoxLayout, QWidget)

from ..core.result import Estimate
from ..core.sweep import Sweep, Sweeps
from .. import palette
from ..units import count, seconds
from .plot_style import fixed_label, nice_ceiling, nice_log_range, quiet, set_view_if_changed, style_plot
from .recalling_axis import recalling_axes


def bound_text(est: Estimate) -> str:
    """The current point and what bounds it, with the share of each time term."""
    t = est.time
    total = sum(term.seconds for term in t.terms) or 1.0
    shares = ", ".join(f"{term.name} {term.seconds / total:.0%}" for term in t.terms)
    return (f"Now: {seconds(t.step_seconds)} per micro-batch · {count(t.tokens_per_second)} tokens/s per GPU"
            f" · <b>{t.bound}-bound</b> ({shares}) · MFU {t.mfu:.0%}")


def _short(value: int) -> str:
    """1, 64, 2k, 32k: tick labels for batch sizes and sequence lengths."""
    return f"{value // 1024}k" if value >= 1024 and value % 1024 == 0 else str(value)


class _SmoothPath(QGraphicsPathItem):
    """A path drawn antialiased (the plot draws its grid and zones without antialiasing)."""

    def paint(self, painter: QPainter, option, widget=None) -> None:  # Qt override
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        super().paint(painter, option, widget)


class _CurvePlot:
    """One plot: a curve, the OOM zone and the current point."""

    def __init__(self, item: pg.PlotItem, y_label: str, x_label: str, log_y: bool) -> None:
        self.item = item
        self.log_y = log_y
        self._ticked: tuple[int, ...] = ()
        item.setLabel("left", y_label)
        item.setLabel("bottom", x_label)
        item.setLogMode(x=True, y=log_y)
        style_plot(item, grid_x=True, grid_y=True)
        # the OOM zone, its label and the current point are plain Qt items, painted in C++:
        # pyqtgraph's LinearRegionItem, TextItem and ScatterPlotItem paint in Python, four
        # plots per edit (bench/README.md)
        self.oom_zone = QGraphicsRectItem(0.0, 0.0, 0.0, 0.0)
        self.oom_zone.setBrush(pg.mkBrush(palette.OOM_FILL))
        self.oom_zone.setPen(QPen(Qt.PenStyle.NoPen))
        self.oom_zone.setZValue(-10)
        item.addItem(self.oom_zone, ignoreBounds=True)
        self.oom_label = QGraphicsSimpleTextItem("OOM")
        self.oom_label.setBrush(pg.mkBrush(palette.OOM))
        self.oom_label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        item.addItem(self.oom_label, ignoreBounds=True)
        # the curve too: a QGraphicsPathItem in log10 view coordinates, built from 9 points
        # per edit (a PlotDataItem re-derives its display data and bounds in Python on every
        # set and paint: bench/README.md)
        self.curve = _SmoothPath()
        self.curve.setPen(pg.mkPen(palette.CURVE, width=2))
        item.addItem(self.curve, ignoreBounds=True)
        radius = 5.5
        self.current = QGraphicsEllipseItem(-radius, -radius, 2 * radius, 2 * radius)
        self.current.setBrush(pg.mkBrush(palette.CURRENT_POINT))
        self.current.setPen(pg.mkPen("w", width=1.5))
        self.current.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.current.setZValue(10)
        item.addItem(self.current, ignoreBounds=True)

    def _path(self, xs: np.ndarray, ys: np.ndarray) -> QPainterPath:
        """Lines through the finite points in view coordinates (log10 x, log10 y on a log
        axis); a rejected plan (nan) breaks the line."""
        path = QPainterPath()
        pen_down = False
        for x, y in zip(xs, ys):
            if not (math.isfinite(y) and (y > 0 or not self.log_y)):
                pen_down = False
                continue
            point = QPointF(math.log10(x), math.log10(y) if self.log_y else y)
            if pen_down:
                path.lineTo(point)
            else:
                path.moveTo(point)
                pen_down = True
        return path

    def oom_region(self) -> tuple[float, float]:
        """(start, end) of the OOM zone on the (log10) x axis."""
        rect = self.oom_zone.rect()
        return rect.left(), rect.right()

    def show(self, sweep: Sweep, ys: tuple[float, ...]) -> None:
        ticks = sweep.grid or sweep.values
        if ticks != self._ticked:  # one labelled tick per grid value, not 2·10³ 3·10³ ...
            self._ticked = ticks   # (the grid only: an off-grid plan value would re-label the axis)
            self.item.getAxis("bottom").setTicks([[(math.log10(v), _short(v)) for v in ticks], []])
        xs = np.array(sweep.values, dtype=float)
        y = np.array(ys, dtype=float)
        self.curve.setPath(self._path(xs, y))
        i = sweep.current_index
        self.current.setVisible(bool(np.isfinite(y[i]) and y[i] > 0))
        if self.current.isVisible():
            self.current.setPos(math.log10(xs[i]), math.log10(y[i]) if self.log_y else y[i])
        lo_x, hi_x = math.log10(xs[0]) - 0.15, math.log10(xs[-1]) + 0.15
        finite = y[np.isfinite(y) & (y > 0)]
        if finite.size:  # snapped, so that most edits keep the axes as they are
            if self.log_y:
                lo_y, hi_y = nice_log_range(math.log10(finite.min()), math.log10(finite.max()))
            else:
                lo_y, hi_y = 0.0, nice_ceiling(float(finite.max()) * 1.08)
        else:
            lo_y, hi_y = 0.0, 1.0
        set_view_if_changed(self.item, (lo_x, hi_x), (lo_y, hi_y))
        first = sweep.first_oom_value
        if first is None:
            self.oom_zone.hide()
            self.oom_label.hide()
            return
        j = sweep.values.index(first)
        if sweep.fit_edge is not None:
            # half a step above the largest value that fits (core.frontier's exact edge): the
            # zone never covers a value that fits and starts below the first that does not
            start = max(lo_x, math.log10(sweep.fit_edge + 0.5))
        else:   # no edge known: half-way between the samples
            start = math.log10(first) if j == 0 else (math.log10(first) + math.log10(sweep.values[j - 1])) / 2
        self.oom_zone.setRect(QRectF(start, lo_y, hi_x - start, hi_y - lo_y))
        self.oom_zone.show()
        self.oom_label.setPos(start, hi_y)
        self.oom_label.show()


# the x axes a page of four plots is drawn against: (field, axis title) per column
AXES = ((("batch_size", "batch size"), ("seq_len", "sequence length")),
        (("num_generations", "completions per prompt (batch scales with it)"),
         ("completion_len", "completion tokens")))
AXES_CHOICES = ("batch size · sequence length", "completions per prompt · completion length")


class TimeCurveView(QWidget):
    """Step time and throughput curves of the current plan."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = fixed_label(QLabel(self), lines=2)
        self.plots: dict[tuple[str, str], _CurvePlot] = {}
        self.pages = QStackedWidget(self)
        self.graphics = self._add_page(AXES[0])
        self.axes_row = QWidget(self)   # shown for GRPO plans only
        row = QHBoxLayout(self.axes_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("x axes:", self.axes_row))
        self.axes_choice = QComboBox(self.axes_row)
        self.axes_choice.addItems(AXES_CHOICES)
        self.axes_choice.setToolTip("GRPO: draw the curves against completions per prompt (num_generations, the "
                                    "prompts per generation batch kept) and completion length")
        # GRPO never reads seq_len (its sequence is prompt + completion): its curves start on its
        # own axes; a user's pick stays for the next GRPO plans
        self.axes_choice.setCurrentIndex(1)
        self.axes_choice.currentIndexChanged.connect(self._on_axes_chosen)
        row.addWidget(self.axes_choice)
        row.addStretch(1)
        self.axes_row.hide()
        self._sweeps: Sweeps | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(quiet(self.caption))
        layout.addWidget(self.axes_row)
        layout.addWidget(self.pages, 1)

    def _add_page(self, axes: tuple[tuple[str, str], ...]) -> pg.GraphicsLayoutWidget:
        graphics = pg.GraphicsLayoutWidget(self.pages)
        graphics.ci.setContentsMargins(2, 2, 2, 2)
        for row, (metric, label, log_y) in enumerate((("step", "ms per step", True),  # fits at 1280x720
                                                       ("tps", "tokens/s per GPU", False))):
            for col, (field, x_label) in enumerate(axes):
                item = graphics.addPlot(row=row, col=col, axisItems=recalling_axes())
                self.plots[(metric, field)] = _CurvePlot(item, label, x_label, log_y)
        self.pages.addWidget(graphics)
        return graphics

    def show_estimate(self, est: Estimate) -> None:
        self.caption.setText(bound_text(est))

    @property
    def axes(self) -> tuple[str, str]:
        """The fields the shown plots are drawn against."""
        return tuple(field for field, _ in AXES[self.pages.currentIndex()])  # type: ignore[return-value]

    def show_sweeps(self, sweeps: Sweeps) -> None:
        self._sweeps = sweeps
        grpo = sweeps.generations is not None and sweeps.completion is not None
        if grpo and self.pages.count() < len(AXES):
            self._add_page(AXES[1])
        self.axes_row.setVisible(grpo)
        page = self.axes_choice.currentIndex() if grpo else 0
        if self.pages.currentIndex() != page:
            self.pages.setCurrentIndex(page)
        for field, _ in AXES[page]:
            sweep = sweeps.of(field)
            self.plots[("step", field)].show(sweep, tuple(s * 1000 for s in sweep.step_seconds))
            self.plots[("tps", field)].show(sweep, sweep.tokens_per_second)

    def _on_axes_chosen(self, _index: int) -> None:
        if self._sweeps is not None:
            self.show_sweeps(self._sweeps)

    def curve_data(self, metric: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the points the drawn curve passes through, in data units (log axes
        undone): metric 'step' (ms) or 'tps'. Read from the painted path, so a rejected plan
        (a break in the line) is missing here too."""
        plot = self.plots[(metric, field)]
        path = plot.curve.path()
        points = [path.elementAt(i) for i in range(path.elementCount())]
        xs = np.array([10 ** e.x for e in points])
        ys = np.array([10 ** e.y if plot.log_y else e.y for e in points])
        return xs, ys

    def current_point(self, metric: str, field: str) -> tuple[float, float]:
        """The marked point in data units (log axes undone)."""
        plot = self.plots[(metric, field)]
        pos = plot.current.pos()
        return 10 ** pos.x(), (10 ** pos.y() if plot.log_y else pos.y())
