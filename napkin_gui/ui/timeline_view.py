"""MemoryTimelineView: core's memory.timeline as a stacked step chart, one band per component.

Band k is a step curve of the cumulative sum of components 0..k filled down to zero, drawn
under band k-1, so each colour shows exactly its component. Items are built once; updates
only set their paths / values. The bands and the total are plain QGraphicsPathItems whose
polygons numpy fills in place: a pyqtgraph PlotDataItem re-derives its step data, bounds and
path in Python on every setData and paint, eight times per edit (bench/README.md).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QCursor, QFontMetricsF, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QLabel, QToolTip, QVBoxLayout, QWidget

from ..core.result import ALLOCATED_COMPONENTS, COMPONENT_LABELS, Estimate
from .. import palette
from ..units import GIB, gib, to_gib
from .hover_tips import keep_hover_tips
from .plot_style import fixed_label, nice_ceiling, quiet, set_view_if_changed, style_plot
from .recalling_axis import recalling_axes


# stage of the step (prefix of core/memory/timeline.py phase names) -> axis label
STAGES = (("weights", "load"), ("forward", "forward →"), ("logits", "loss"),
          ("backward", "← backward"), ("optimizer", "optim"), ("after", "zero grad"))
# preference / RL steps (core/memory/algorithm_timeline.py phase names): (prefixes, label, the
# shorter label used when the long ones cannot all fit the axis's width)
ALGORITHM_STAGES = ((("weights",), "load", "load"), (("KL",), "KL batch", "KL"),
                    (("generate",), "generate", "generate"),
                    (("old-policy",), "old-policy log-probs", "old-policy"),
                    (("reference",), "reference log-probs", "reference"),
                    (("forward",), "policy forward →", "forward →"), (("policy log-probs",), "log-probs", "loss"),
                    (("log-probs backward", "backward"), "← policy backward", "← backward"),
                    (("optimizer",), "optim", "optim"), (("after",), "zero grad", "zero grad"))
# px between neighbouring stage labels: about three word spaces, so two labels never read as one
LABEL_GAP_PX = 16


def stage_ticks(phases: Sequence[str], short: bool = False) -> list[tuple[float, str]]:
    """One axis tick per stage, at the middle of its run of phases, left to right; a preference
    or RL step (it has a "policy log-probs" phase) names its own stages: generate, reference
    log-probs, policy forward and backward (short: their shorter names)."""
    if "policy log-probs" in phases:
        stages = tuple((prefixes, short_label if short else label) for prefixes, label, short_label in ALGORITHM_STAGES)
    else:
        stages = tuple(((prefix,), label) for prefix, label in STAGES)
    ticks = []
    for prefixes, label in stages:
        where = [i for i, phase in enumerate(phases) if phase.startswith(prefixes)]
        if where:
            ticks.append(((where[0] + where[-1]) / 2 + 0.5, label))
    return sorted(ticks)


def fit_ticks(ticks: list[tuple[float, str]], span: float, units_per_px: float,
              width_px: Callable[[str], float]) -> list[tuple[float, str]]:
    """The stage ticks moved so each label lies inside [0, span] and clear of its neighbours.

    pyqtgraph drops a label that crosses the axis's end: the last stages are a phase or two
    wide, so 'zero grad' vanished and 'optim' sat on the edge. A label is kept inside the axis;
    labels of narrow stages push the next ones right (GRPO's load, generate and reference
    log-probs are a phase each, before the wide forward), then earlier labels make room to
    their left for the ones after them, and two labels that still cannot both fit become one
    ('optim · zero grad'). Neighbours stand LABEL_GAP_PX apart: at 6 px (a word space) 'optim'
    and 'zero grad' read as one phrase."""
    gap = LABEL_GAP_PX * units_per_px

    def half(label: str) -> float:
        return width_px(label) / 2 * units_per_px + gap / 2

    placed = [(min(max(x, half(label)), span - half(label)), label) for x, label in ticks]
    for i in range(1, len(placed)):  # left to right: clear of the label before, inside the axis
        (prev_x, prev_label), (x, label) = placed[i - 1], placed[i]
        placed[i] = (min(max(x, prev_x + half(prev_label) + half(label)), span - half(label)), label)
    for i in range(len(placed) - 2, -1, -1):  # right to left: make room for the label after
        (x, label), (next_x, next_label) = placed[i], placed[i + 1]
        placed[i] = (min(x, next_x - half(next_label) - half(label)), label)
    for i in range(len(placed) - 1):
        if placed[i][0] < half(placed[i][1]) - 1e-9:  # no room left of it: merge with its neighbour
            (x, label), (next_x, next_label) = placed[i], placed[i + 1]
            merged = placed[:i] + [((x + next_x) / 2, f"{label} · {next_label}")] + placed[i + 2:]
            return fit_ticks(merged, span, units_per_px, width_px)
    return placed


def step_path(edges: np.ndarray, values: np.ndarray, filled: bool) -> QPainterPath:
    """values[i] held from edges[i] to edges[i + 1], as a path in view coordinates; filled:
    closed down to zero (a band), else the outline alone (the total)."""
    xs, ys = np.repeat(edges, 2)[1:-1], np.repeat(values, 2)
    if filled:
        xs, ys = np.concatenate(([edges[0]], xs, [edges[-1]])), np.concatenate(([0.0], ys, [0.0]))
    polygon = pg.functions.create_qpolygonf(len(xs))
    points = pg.functions.ndarray_from_qpolygonf(polygon)
    points[:, 0], points[:, 1] = xs, ys
    path = QPainterPath()
    path.addPolygon(polygon)
    if filled:
        path.closeSubpath()
    return path


def stacked(est: Estimate) -> np.ndarray:
    """[component, phase] cumulative GiB of the allocated components."""
    table = np.array(est.memory.phase_values, dtype=float).T
    return np.cumsum(table / GIB, axis=0)


class MemoryTimelineView(QWidget):
    """Allocated memory phase by phase through one training step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.estimate: Estimate | None = None
        self._stale = False
        self.measured: tuple[tuple[str, int], ...] = ()
        self._ticks: list[tuple[float, str]] = []
        self._ticks_key: tuple = ()
        self.caption = fixed_label(QLabel(self), lines=2)  # one line was cut at 1280 px
        self.plot = pg.PlotWidget(self, axisItems=recalling_axes())
        item = self.plot.getPlotItem()
        style_plot(item, grid_x=False, grid_y=True)
        item.setLabel("left", "allocated GiB per GPU")
        self.bands: dict[str, QGraphicsPathItem] = {}
        for k, name in enumerate(ALLOCATED_COMPONENTS):
            # filled, no outline: stroking 7 antialiased step paths is slow (bench/README.md)
            band = QGraphicsPathItem()
            band.setBrush(QColor(palette.COMPONENT_COLORS[name]))
            band.setPen(QPen(Qt.PenStyle.NoPen))
            band.setZValue(-k)
            item.addItem(band, ignoreBounds=True)
            self.bands[name] = band
        self.total_curve = QGraphicsPathItem()
        self.total_curve.setPen(pg.mkPen(palette.FOREGROUND, width=1.5))
        item.addItem(self.total_curve, ignoreBounds=True)
        self.measured_curve = pg.PlotDataItem(pen=pg.mkPen(palette.MEASURED, width=2.5, style=Qt.PenStyle.DashLine),
                                              name="measured")
        self.measured_curve.setZValue(5)
        item.addItem(self.measured_curve)
        self.capacity_line = pg.InfiniteLine(pos=0, angle=0, movable=False,
                                             pen=pg.mkPen(palette.CAPACITY, width=2, style=Qt.PenStyle.DashLine),
                                             label="capacity {value:.1f} GiB",
                                             labelOpts={"position": 0.08, "color": palette.CAPACITY,
                                                        "anchors": [(0, 1), (0, 1)]})
        item.addItem(self.capacity_line)
        self.peak_line = pg.InfiniteLine(pos=0, angle=90, movable=False,
                                         pen=pg.mkPen(palette.PEAK_MARK, width=1, style=Qt.PenStyle.DotLine),
                                         label="peak", labelOpts={"position": 0.985, "color": palette.PEAK_MARK,
                                                                   "anchors": [(1, 0), (1, 0)]})
        item.addItem(self.peak_line)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        keep_hover_tips(self.plot)
        item.getViewBox().sigResized.connect(self._on_view_box_resized)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(quiet(self.caption))
        layout.addWidget(self.plot, 1)

    def show_estimate(self, est: Estimate) -> None:
        """Draw est's timeline now, or when the view is next shown (hidden tab)."""
        self.estimate = est
        self._stale = not self.isVisible()
        if not self._stale:
            self._draw(est)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._stale and self.estimate is not None:
            self._stale = False
            self._draw(self.estimate)

    def _draw(self, est: Estimate) -> None:
        mem = est.memory
        phases = list(mem.phases)
        edges = np.arange(len(phases) + 1, dtype=float)
        cum = stacked(est)
        for k, name in enumerate(ALLOCATED_COMPONENTS):
            self.bands[name].setPath(step_path(edges, cum[k], filled=True))
        self.total_curve.setPath(step_path(edges, cum[-1], filled=False))
        peak_index = phases.index(mem.peak_phase) if mem.peak_phase in phases else int(np.argmax(cum[-1]))
        self.peak_line.setValue(peak_index + 0.5)
        # the label on the side of the line with more room: left of a peak in the step's second
        # half, right of one in its first (GRPO's generate is the second phase of ~60)
        # (its top just below the plot's: a centred label crossed the top of a 720 px window's plot)
        side = (1, 0) if peak_index + 0.5 > len(phases) / 2 else (0, 0)
        label = self.peak_line.label
        if label.anchors[0] != side:
            label.anchors = [side, side]
        label.setFormat(f"peak: {mem.peak_phase}")
        cap = to_gib(mem.capacity_bytes)
        self.capacity_line.setValue(cap)
        self._show_measured(phases)
        top = max(cap, float(cum[-1].max()), self._measured_max())
        item = self.plot.getPlotItem()
        set_view_if_changed(item, (0, len(phases)), (0, nice_ceiling(top * 1.08)))  # snapped: the axis rarely changes
        self._show_ticks(phases)
        note = " · dashed: measured by the probe" if self.measured else ""
        self.caption.setText(f"Allocated memory through one step: peak {gib(mem.peak_allocated_bytes)} "
                             f"at {mem.peak_phase}; NVML adds allocator slack and the CUDA context{note}")

    def _show_ticks(self, phases: Sequence[str]) -> None:
        """Stage labels along the bottom axis, fitted to the plot's current width; an edit that
        keeps the phases and the width (most do) reuses the last fit."""
        width = self.plot.getPlotItem().getViewBox().width()
        key = (tuple(phases), width)
        if key == self._ticks_key:
            return
        self._ticks_key = key
        axis = self.plot.getPlotItem().getAxis("bottom")
        metrics = QFontMetricsF(axis.style["tickFont"] or axis.font())
        ticks = stage_ticks(phases)
        if width > 0:
            fitted = fit_ticks(ticks, len(phases), len(phases) / width, metrics.horizontalAdvance)
            if len(fitted) < len(ticks):   # some had to merge: the shorter names, if they fit apart
                short = fit_ticks(stage_ticks(phases, short=True), len(phases), len(phases) / width,
                                  metrics.horizontalAdvance)
                fitted = short if len(short) > len(fitted) else fitted
            ticks = fitted
        if ticks != self._ticks:  # new ticks re-generate the axis
            self._ticks = ticks
            axis.setTicks([ticks])

    def _on_view_box_resized(self, *_args: Any) -> None:
        if self.estimate is not None and not self._stale:
            self._show_ticks(list(self.estimate.memory.phases))

    def set_measured(self, timeline: Sequence[tuple[str, int]] | None) -> None:
        """Overlay a probe TrialRecord's timeline (phase, bytes); None or () removes it."""
        self.measured = tuple(timeline or ())
        if self.estimate is not None:
            self.show_estimate(self.estimate)

    def _measured_max(self) -> float:
        return max((b for _, b in self.measured), default=0) / GIB

    def _show_measured(self, phases: list[str]) -> None:
        if not self.measured:
            self.measured_curve.setData([], [])
            return
        index = {p: i for i, p in enumerate(phases)}
        known = [(index[p], b) for p, b in self.measured if p in index]
        if len(known) < len(self.measured) / 2:  # other phase names: spread them over the step
            scale = len(phases) / max(len(self.measured), 1)
            known = [(i * scale, b) for i, (_, b) in enumerate(self.measured)]
        xs = np.array([x + 0.5 for x, _ in known])
        ys = np.array([b / GIB for _, b in known])
        self.measured_curve.setData(xs, ys)

    def tooltip_at(self, x: float) -> str:
        est = self.estimate
        if est is None or not 0 <= x < len(est.memory.timeline):
            return ""
        point = est.memory.timeline[int(x)]
        rows = "".join(f"<br>{COMPONENT_LABELS[n]}: {gib(v)}"
                       for n, v in point.by_component if v)
        return f"<b>{point.phase}</b>: {gib(point.allocated_bytes)} allocated{rows}"

    def _on_scene_mouse_moved(self, pos: QPointF) -> None:
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            return
        text = self.tooltip_at(vb.mapSceneToView(pos).x())
        if text:
            QToolTip.showText(QCursor.pos(), text, self.plot)


def measured_timeline(record: Any) -> tuple[tuple[str, int], ...]:
    """The full-model timeline of a probe TrialRecord ((phase, bytes)), () without one."""
    return tuple(getattr(record, "timeline", ()) or ())
