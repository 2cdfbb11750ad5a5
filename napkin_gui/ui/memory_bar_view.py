"""MemoryBarView: the peak memory of one GPU as a stacked bar, capacity line, OOM verdict.

Row 1 is the current plan, row 0 an optional pinned plan ("before"). One BarGraphItem
holds all 2 x 9 segments with its brushes given once; updates only move x0/width.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from ..core.result import COMPONENT_LABELS, COMPONENTS, Estimate
from .. import palette
from ..core.user_prices import price_citation
from ..core.names import short_gpu_name, value_name
from ..units import count, gib, hours, plural, seconds, to_gib, usd, usd_per_hour
from .hover_tips import keep_hover_tips
from .plot_style import QuietHost, fixed_label, nice_ceiling, quiet, set_view_if_changed, style_plot
from .recalling_axis import recalling_axes

ROW_NOW, ROW_PINNED = 1.0, 0.0
BAR_HEIGHT = 0.6


def describe_plan(est: Estimate) -> str:
    """A short label of a plan for the pinned bar."""
    p = est.plan
    return (f"{p.model} · {value_name('method', p.method)} · bs {p.batch_size}×{p.seq_len} · "
            f"{short_gpu_name(est.gpu.name)} × {p.n_gpus}")


def verdict_text(est: Estimate) -> str:
    mem = est.memory
    used, cap = to_gib(mem.device_used_bytes), gib(mem.capacity_bytes, 1)
    if mem.fits:
        return f"✓ fits — {gib(mem.headroom_bytes, 1)} free ({used:.1f} of {cap} per GPU)"
    return f"✗ OUT OF MEMORY — over by {gib(-mem.headroom_bytes, 1)} ({used:.1f} of {cap} per GPU)"


def summary_text(est: Estimate) -> str:
    """Peak figures, time and cost in one line."""
    mem, t = est.memory, est.time
    parts = [f"peak allocated {gib(mem.peak_allocated_bytes)} at {mem.peak_phase}",
             f"reserved {gib(mem.peak_reserved_bytes)}",
             f"step {seconds(t.step_seconds)}",
             f"{count(t.tokens_per_second)} tokens/s per GPU",
             f"{t.bound}-bound"]
    if est.total is not None:
        parts.append(f"total {hours(est.total.hours)} · {usd(est.total.cost_usd)}")
    if mem.host_bytes:
        parts.append(f"host RAM {gib(mem.host_bytes, 1)} per GPU")
    if est.calibration:
        parts.append(f"calibrated: {est.calibration}")
    return "  ·  ".join(parts)


def price_tooltip(est: Estimate) -> str:
    """Where the cost's price is from: '$2.99/h per GPU: <source>, <date>'."""
    return (f"{usd_per_hour(est.gpu.price_usd_per_hour)} per GPU: "
            f"{price_citation(est.gpu.price_source, est.gpu.price_date)}")


def legend_html() -> str:
    cells = "".join(f"<span style='color:{palette.COMPONENT_COLORS[n]}; font-size:14px'>■</span>"
                    f"&nbsp;{COMPONENT_LABELS[n]}&nbsp;&nbsp; " for n in COMPONENTS)
    return f"<span>{cells}</span>"


class MemoryBarView(QWidget):
    """Stacked bar(s) of the peak per-GPU memory; hover a segment for bytes and formula."""

    pin_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.estimate: Estimate | None = None
        self.pinned: Estimate | None = None
        self.verdict = QLabel(self)
        self.verdict.setObjectName("verdict")
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.summary = fixed_label(QLabel(self), lines=2)
        self.pin_button = QPushButton("Pin as before", self)
        self.pin_button.setCheckable(True)
        self.pin_button.setToolTip("Keep the current plan's bar for a before / after comparison (Ctrl+P).")
        self.pin_button.toggled.connect(self._on_pin_button_toggled)
        self.legend = fixed_label(QLabel(legend_html(), self), lines=2)
        # the pinned plan's description: a line of its own (on the plot, after the bar, it ran off the right edge)
        self.pinned_caption = fixed_label(QLabel(self), lines=1)
        self.pinned_caption.setStyleSheet("color: #555;")
        self.pinned_caption.hide()
        self.plot = pg.PlotWidget(self, axisItems=recalling_axes())
        self.plot.setMinimumHeight(140)
        item = self.plot.getPlotItem()
        style_plot(item, grid_x=True, grid_y=False)
        item.setLabel("bottom", "GiB per GPU")
        n = len(COMPONENTS)
        colors = [QColor(palette.COMPONENT_COLORS[c]) for c in COMPONENTS]
        faded = [QColor(c.red(), c.green(), c.blue(), palette.PINNED_ALPHA) for c in colors]
        self.bars = pg.BarGraphItem(x0=np.zeros(2 * n), width=np.zeros(2 * n),
                                    y=np.array([ROW_NOW] * n + [ROW_PINNED] * n), height=BAR_HEIGHT,
                                    brushes=colors + faded, pens=[pg.mkPen("w", width=1)] * (2 * n))
        item.addItem(self.bars)
        self.oom_zone = pg.LinearRegionItem((0, 1), movable=False, brush=pg.mkBrush(palette.OOM_FILL),
                                            pen=pg.mkPen(None))
        self.oom_zone.setZValue(-10)
        self.oom_zone.hide()
        item.addItem(self.oom_zone)
        self.capacity_line = pg.InfiniteLine(pos=0, angle=90, movable=False,
                                             pen=pg.mkPen(palette.CAPACITY, width=2, style=Qt.PenStyle.DashLine),
                                             label="capacity {value:.1f} GiB",
                                             labelOpts={"position": 0.93, "color": palette.CAPACITY})
        item.addItem(self.capacity_line)
        self.row_labels = {ROW_NOW: pg.TextItem(anchor=(0, 0.5), color=palette.FOREGROUND),
                           ROW_PINNED: pg.TextItem(anchor=(0, 0.5), color=palette.FOREGROUND)}
        for label in self.row_labels.values():
            item.addItem(label)
        self._set_row_ticks()
        self.plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        keep_hover_tips(self.plot)

        header = QHBoxLayout()
        header.addWidget(QuietHost(self.verdict, self.pin_button.sizeHint().height() + 4, self), 1)
        header.addWidget(self.pin_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(quiet(self.summary))
        layout.addWidget(self.pinned_caption)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)

    # ------------------------------------------------------------------ data in
    def show_estimate(self, est: Estimate) -> None:
        self.estimate = est
        self._update()

    def set_pinned(self, est: Estimate | None) -> None:
        """Pin an estimate as the 'before' bar (None: remove it)."""
        self.pinned = est
        with QSignalBlocker(self.pin_button):
            self.pin_button.setChecked(est is not None)
        self._set_row_ticks()
        self._update()

    def _on_pin_button_toggled(self, on: bool) -> None:
        self.set_pinned(self.estimate if on else None)
        self.pin_toggled.emit(on)

    # ------------------------------------------------------------------ drawing
    def _set_row_ticks(self) -> None:
        ticks = [(ROW_NOW, "now")]
        if self.pinned is not None:
            ticks.append((ROW_PINNED, "before"))
        self.plot.getPlotItem().getAxis("left").setTicks([ticks])

    def segments(self, row: float = ROW_NOW) -> list[tuple[str, float, float]]:
        """(component, x0 GiB, width GiB) of one row as drawn."""
        n = len(COMPONENTS)
        start = 0 if row == ROW_NOW else n
        x0, width = self.bars.opts["x0"], self.bars.opts["width"]
        return [(COMPONENTS[i], float(x0[start + i]), float(width[start + i])) for i in range(n)]

    def _update(self) -> None:
        est = self.estimate
        if est is None:
            return
        widths = [to_gib(c.bytes) for c in est.memory.components]
        pinned = [to_gib(c.bytes) for c in self.pinned.memory.components] if self.pinned else [0.0] * len(widths)
        x0 = np.concatenate([np.cumsum([0.0] + widths[:-1]), np.cumsum([0.0] + pinned[:-1])])
        self.bars.setOpts(x0=x0, width=np.array(widths + pinned))
        cap = to_gib(est.memory.capacity_bytes)
        used = to_gib(est.memory.device_used_bytes)
        pinned_used = sum(pinned)
        longest = max(used, pinned_used)
        # past the capacity the range snaps to nice steps, so most edits keep the axis as it is
        right = cap * 1.32 if longest <= cap else max(cap * 1.32, nice_ceiling(longest * 1.32))
        self.capacity_line.setValue(cap)
        self.oom_zone.setRegion((cap, right))
        self.oom_zone.setVisible(not est.memory.fits)
        set_view_if_changed(self.plot.getPlotItem(), (0, right), (-0.5 if self.pinned else 0.55, 1.45))
        self._label_row(ROW_NOW, est, used)
        if self.pinned is not None:
            self._label_row(ROW_PINNED, self.pinned, pinned_used)
        self.row_labels[ROW_PINNED].setVisible(self.pinned is not None)
        if self.pinned is not None:
            text = f"before: {describe_plan(self.pinned)}"
            if self.pinned_caption.text() != text:
                self.pinned_caption.setText(text)
                self.pinned_caption.setToolTip(text)
        if self.pinned_caption.isHidden() == (self.pinned is not None):
            self.pinned_caption.setVisible(self.pinned is not None)
        self._show_verdict(verdict_text(est), palette.FITS if est.memory.fits else palette.OOM)
        self.summary.setText(summary_text(est))
        tip = price_tooltip(est)
        if tip != self.summary.toolTip():
            self.summary.setToolTip(tip)

    def show_invalid(self, reason: str) -> None:
        """The plan has no estimate: a grey banner with the core's reason, no figures in the
        summary (the bars, still the previous plan's, are faded by ui/invalid_plan.grey_out)."""
        self._show_verdict(f"✗ no estimate — {reason}", palette.INVALID, tip=reason)
        self.summary.setText("No figures: the plan is not valid (the line above says why; fix the field or undo).")
        self.summary.setToolTip("")

    def _show_verdict(self, text: str, color: str, tip: str = "") -> None:
        self.verdict.setText(text)
        if self.verdict.toolTip() != tip:
            self.verdict.setToolTip(tip)
        if self.verdict.property("color") != color:  # a new style sheet re-polishes the label
            self.verdict.setProperty("color", color)
            self.verdict.setStyleSheet(f"QLabel#verdict {{ color: white; background: {color}; font-size: 15px;"
                                       " font-weight: bold; padding: 4px 8px; border-radius: 3px; }")

    def _label_row(self, row: float, est: Estimate, used: float) -> None:
        mark = "✓" if est.memory.fits else "✗ OOM"
        prefix = f"each of {plural(est.plan.n_gpus, 'GPU')}: " if est.plan.n_gpus > 1 else ""
        text = f" {prefix}{used:.1f} GiB {mark}"
        label = self.row_labels[row]
        label.setText(text)
        label.setPos(used, row)

    # ------------------------------------------------------------------ hover
    def segment_at(self, x: float, y: float) -> tuple[Estimate, Any] | None:
        """The (estimate, MemoryComponent) drawn under view point (x GiB, y row), if any."""
        for row, est in ((ROW_NOW, self.estimate), (ROW_PINNED, self.pinned)):
            if est is None or abs(y - row) > BAR_HEIGHT / 2:
                continue
            for (name, x0, width), comp in zip(self.segments(row), est.memory.components):
                if width > 0 and x0 <= x < x0 + width:
                    return est, comp
        return None

    def tooltip_at(self, x: float, y: float) -> str:
        found = self.segment_at(x, y)
        if found is None:
            return ""
        est, comp = found
        share = comp.bytes / max(est.memory.device_used_bytes, 1)
        return (f"<table width=460><tr><td><b>{COMPONENT_LABELS[comp.name]}</b>: {gib(comp.bytes, 3)} "
                f"({comp.bytes:,} bytes, {share:.0%} of used)<br>{comp.formula}</td></tr></table>")

    def _on_scene_mouse_moved(self, pos: QPointF) -> None:
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            return
        point = vb.mapSceneToView(pos)
        text = self.tooltip_at(point.x(), point.y())
        if text:
            QToolTip.showText(QCursor.pos(), text, self.plot)
        else:
            QToolTip.hideText()
