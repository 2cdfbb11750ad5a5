"""Report charts painted with QPainter onto QImage (no widgets): memory bar, timeline, batch curve.

Images are drawn at 3x the size they take in the PDF (SCALE) so they stay sharp in print.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen

from .. import palette
from ..core.result import ALLOCATED_COMPONENTS, MemoryEstimate
from ..core.sweep import Sweep
from ..units import GIB, gib
from .text import component_label

SCALE = 3  # device pixels per layout pixel


def _color(name: str) -> QColor:
    return QColor(palette.COMPONENT_COLORS.get(name, palette.AXIS))


CAPACITY_COLOR = palette.CAPACITY
INK = palette.FOREGROUND
STEP_COLOR = palette.CURVE           # step seconds curve
TOKENS_COLOR = palette.TOKENS_CURVE  # tokens/s curve
GRID = palette.GRID


def _new_image(width: int, height: int) -> tuple[QImage, QPainter]:
    image = QImage(width * SCALE, height * SCALE, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    painter.scale(SCALE, SCALE)
    font = QFont("DejaVu Sans")
    font.setPixelSize(11)
    painter.setFont(font)
    return image, painter


def nice_step(span: float, target_ticks: int = 6) -> float:
    """A 1/2/5 x 10^k tick step giving about target_ticks ticks over span."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    mag = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * mag:
            return mult * mag
    return 10 * mag


def _pen(color: str, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(QColor(color), width)
    pen.setStyle(style)
    return pen


def _text(p: QPainter, x: float, y: float, text: str, align: Qt.AlignmentFlag, w: float = 200) -> None:
    """Draw text anchored at (x, y): align picks which side of the box the point is on."""
    h = 16
    left = x - w if align & Qt.AlignmentFlag.AlignRight else x - w / 2 if align & Qt.AlignmentFlag.AlignHCenter else x
    top = y - h / 2
    p.drawText(QRectF(left, top, w, h), int(align | Qt.AlignmentFlag.AlignVCenter), text)


def _legend(p: QPainter, names: Sequence[str], x: float, y: float, width: float,
            values: dict[str, str] | None = None) -> None:
    """Colour swatches + labels, wrapped over rows of fixed-width cells."""
    cell = LEGEND_CELL if values else 130
    per_row = max(1, int(width // cell))
    for i, name in enumerate(names):
        cx, cy = x + (i % per_row) * cell, y + (i // per_row) * LEGEND_ROW
        p.fillRect(QRectF(cx, cy - 5, 10, 10), _color(name))
        label = component_label(name) + (f"  {values[name]}" if values else "")
        _text(p, cx + 15, cy, label, Qt.AlignmentFlag.AlignLeft, cell - 18)


LEGEND_CELL, LEGEND_ROW = 210, 18


def memory_bar_image(mem: MemoryEstimate, width: int = 640) -> QImage:
    """One horizontal stacked bar of the device-used memory, with the GPU capacity line."""
    left, right, top, bar_h = 12, width - 12, 40, 34
    parts = [(c.name, c.bytes) for c in mem.components if c.bytes > 0]
    legend_rows = -(-len(parts) // max(1, (right - left) // LEGEND_CELL))
    image, p = _new_image(width, top + bar_h + 36 + legend_rows * LEGEND_ROW)
    total = sum(b for _, b in parts)
    top_gib = max(total, mem.capacity_bytes, 1) * 1.04 / GIB
    sx = (right - left) / top_gib
    step = nice_step(top_gib)
    tick = 0.0
    while tick <= top_gib:
        x = left + tick * sx
        p.setPen(_pen(GRID))
        p.drawLine(QPointF(x, top - 4), QPointF(x, top + bar_h + 4))
        p.setPen(_pen(INK))
        _text(p, x, top + bar_h + 14, f"{tick:g}", Qt.AlignmentFlag.AlignHCenter, 60)
        tick += step
    x = float(left)
    for name, nbytes in parts:
        w = nbytes / GIB * sx
        p.fillRect(QRectF(x, top, w, bar_h), _color(name))
        p.setPen(_pen("white", 0.8))
        p.drawLine(QPointF(x + w, top), QPointF(x + w, top + bar_h))
        x += w
    cap_x = left + mem.capacity_bytes / GIB * sx
    p.setPen(_pen(CAPACITY_COLOR, 2, Qt.PenStyle.DashLine))
    p.drawLine(QPointF(cap_x, top - 8), QPointF(cap_x, top + bar_h + 8))
    p.setPen(_pen(CAPACITY_COLOR))
    align = Qt.AlignmentFlag.AlignRight if cap_x > width * 0.6 else Qt.AlignmentFlag.AlignLeft
    _text(p, cap_x + (-4 if align == Qt.AlignmentFlag.AlignRight else 4), top - 10,
          f"capacity {gib(mem.capacity_bytes, 1)}", align, 220)
    p.setPen(_pen(INK))
    _text(p, left, 10, f"per GPU: device used {gib(mem.device_used_bytes)} "
          f"of {gib(mem.capacity_bytes)}", Qt.AlignmentFlag.AlignLeft, 400)
    values = {name: gib(nbytes) for name, nbytes in parts}
    _legend(p, [n for n, _ in parts], left, top + bar_h + 36, right - left, values)
    p.end()
    return image


def _phase_groups(phases: Sequence[str]) -> list[tuple[str, int, int]]:
    """(group label, first index, last index) for runs of phases with the same first word."""
    groups: list[tuple[str, int, int]] = []
    for i, phase in enumerate(phases):
        key = phase.split(" ")[0]
        if groups and groups[-1][0] == key:
            groups[-1] = (key, groups[-1][1], i)
        else:
            groups.append((key, i, i))
    return groups


def _labelled_point(p: QPainter, px: float, py: float, label: str, right_half: bool) -> None:
    """A hollow marker at (px, py) with a label on a white box above it."""
    p.setPen(_pen(INK, 1.5))
    p.setBrush(QColor("white"))
    p.drawEllipse(QPointF(px, py), 4, 4)
    w = p.fontMetrics().horizontalAdvance(label) + 4
    x = px - 8 - w if right_half else px + 8
    p.fillRect(QRectF(x, py - 20, w, 14), QColor(255, 255, 255, 220))
    _text(p, x + 2, py - 13, label, Qt.AlignmentFlag.AlignLeft, w + 20)


def _stacked_steps(p: QPainter, pts, left: float, bottom: float, sx: float, sy: float) -> None:
    """One filled step band per component; each band's top is the sum up to that component."""
    for ci, name in reversed(list(enumerate(ALLOCATED_COMPONENTS))):
        path = QPainterPath(QPointF(left, bottom))
        for i, pt in enumerate(pts):
            parts = dict(pt.by_component)
            y = bottom - sum(parts.get(c, 0) for c in ALLOCATED_COMPONENTS[:ci + 1]) / GIB * sy
            path.lineTo(QPointF(left + i * sx, y))
            path.lineTo(QPointF(left + (i + 1) * sx, y))
        path.lineTo(QPointF(left + len(pts) * sx, bottom))
        path.closeSubpath()
        p.fillPath(path, QBrush(_color(name)))


def timeline_image(mem: MemoryEstimate, width: int = 640, height: int = 260) -> QImage:
    """Allocated memory through one step: stacked steps per component, peak marked."""
    image, p = _new_image(width, height)
    pts = mem.timeline
    left, right, top, bottom = 48, width - 12, 24, height - 56
    top_gib = max(max((pt.allocated_bytes for pt in pts), default=0), mem.capacity_bytes) * 1.12 / GIB
    sx, sy = (right - left) / max(len(pts), 1), (bottom - top) / max(top_gib, 1e-9)
    for tick in _ticks(top_gib):
        y = bottom - tick * sy
        p.setPen(_pen(GRID))
        p.drawLine(QPointF(left, y), QPointF(right, y))
        p.setPen(_pen(INK))
        _text(p, left - 4, y, f"{tick:g}", Qt.AlignmentFlag.AlignRight, 44)
    _stacked_steps(p, pts, left, bottom, sx, sy)
    for label, first, last in _phase_groups([pt.phase for pt in pts]):
        x0, x1 = left + first * sx, left + (last + 1) * sx
        p.setPen(_pen("#999999", 0.6, Qt.PenStyle.DotLine))
        p.drawLine(QPointF(x0, top), QPointF(x0, bottom))
        p.setPen(_pen(INK))
        if x1 - x0 > 28:
            _text(p, (x0 + x1) / 2, bottom + 10, label, Qt.AlignmentFlag.AlignHCenter, x1 - x0)
    cap_y = bottom - mem.capacity_bytes / GIB * sy
    p.setPen(_pen(CAPACITY_COLOR, 1.5, Qt.PenStyle.DashLine))
    p.drawLine(QPointF(left, cap_y), QPointF(right, cap_y))
    p.fillRect(QRectF(right - 84, cap_y - 16, 82, 14), QColor(255, 255, 255, 220))
    p.setPen(_pen(CAPACITY_COLOR))
    _text(p, right - 2, cap_y - 9, "GPU capacity", Qt.AlignmentFlag.AlignRight, 120)
    if pts:
        ip = max(range(len(pts)), key=lambda i: pts[i].allocated_bytes)
        px, py = left + (ip + 0.5) * sx, bottom - pts[ip].allocated_bytes / GIB * sy
        _labelled_point(p, px, py, f"peak {gib(pts[ip].allocated_bytes)} at {pts[ip].phase}",
                        px > width * 0.6)
    p.setPen(_pen(INK))
    p.drawLine(QPointF(left, bottom), QPointF(right, bottom))
    _text(p, left, top - 14, "GiB allocated, phase by phase through one training step",
          Qt.AlignmentFlag.AlignLeft, 400)
    _legend(p, list(ALLOCATED_COMPONENTS), left, bottom + 30, right - left)
    p.end()
    return image


def _oom_band(p: QPainter, x0: float, right: float, top: float, bottom: float, label_only: bool) -> None:
    """The shaded 'does not fit' region (drawn first), or its label (drawn over the curves)."""
    if not label_only:
        p.fillRect(QRectF(x0, top, right - x0, bottom - top), QColor(198, 40, 40, 40))
        return
    label = "does not fit"
    box = QRectF(x0 + 3, top + 3, p.fontMetrics().horizontalAdvance(label) + 6, 14)
    p.fillRect(box, QColor(255, 255, 255, 210))
    p.setPen(_pen(CAPACITY_COLOR))
    _text(p, box.left() + 3, box.center().y(), label, Qt.AlignmentFlag.AlignLeft, 120)


def _curve(p: QPainter, xy: Sequence[QPointF], fits: Sequence[bool], color: str) -> None:
    """A polyline with a dot per point: filled where the plan fits, hollow where it does not."""
    p.setPen(_pen(color, 2))
    for a, b in zip(xy, xy[1:]):
        p.drawLine(a, b)
    for q, ok in zip(xy, fits):
        p.setBrush(QColor(color) if ok else QColor("white"))
        p.drawEllipse(q, 3, 3)


def batch_curve_image(sweep: Sweep, width: int = 640, height: int = 220) -> QImage:
    """Step seconds (left axis) and tokens/s per GPU (right axis) against batch size (log 2):
    the priced points of core.sweep.batch_sweep, the plan's own size marked, the sizes from
    which none fits shaded."""
    image, p = _new_image(width, height)
    left, right, top, bottom = 52, width - 60, 24, height - 40
    points = sweep.priced()
    if not points:
        p.end()
        return image
    sizes, steps, tokens, fits = (list(column) for column in zip(*points))
    sx = (right - left) / max(len(points) - 1, 1)
    max_s = max(steps) * 1.1
    max_t = max(tokens) * 1.1

    def y_of(v: float, top_v: float) -> float:
        return bottom - v / top_v * (bottom - top)

    oom_from = sweep.first_oom_value
    first_oom = None if oom_from is None else next((i for i, b in enumerate(sizes) if b >= oom_from), None)
    x0 = left + (first_oom or 0) * sx - (sx / 2 if first_oom else 0)
    if first_oom is not None:
        _oom_band(p, x0, right, top, bottom, label_only=False)
    for v in _ticks(max_s):
        p.setPen(_pen(GRID))
        p.drawLine(QPointF(left, y_of(v, max_s)), QPointF(right, y_of(v, max_s)))
        p.setPen(_pen(STEP_COLOR))
        _text(p, left - 4, y_of(v, max_s), f"{v:g}", Qt.AlignmentFlag.AlignRight, 48)
    p.setPen(_pen(TOKENS_COLOR))
    for v in _ticks(max_t):
        _text(p, right + 4, y_of(v, max_t), f"{v:,.0f}", Qt.AlignmentFlag.AlignLeft, 56)
    for i, size in enumerate(sizes):
        p.setPen(_pen(INK, 1.5))
        if size == sweep.current:
            p.drawLine(QPointF(left + i * sx, top), QPointF(left + i * sx, bottom))
        _text(p, left + i * sx, bottom + 10, str(size), Qt.AlignmentFlag.AlignHCenter, 40)
    _curve(p, [QPointF(left + i * sx, y_of(v, max_s)) for i, v in enumerate(steps)], fits, STEP_COLOR)
    _curve(p, [QPointF(left + i * sx, y_of(v, max_t)) for i, v in enumerate(tokens)], fits, TOKENS_COLOR)
    if first_oom is not None:
        _oom_band(p, x0, right, top, bottom, label_only=True)
    p.setPen(_pen(INK))
    p.drawLine(QPointF(left, bottom), QPointF(right, bottom))
    _text(p, (left + right) / 2, bottom + 26, "micro-batch size (current one marked)", Qt.AlignmentFlag.AlignHCenter, 300)
    p.setPen(_pen(STEP_COLOR))
    _text(p, left - 44, top - 14, "step seconds", Qt.AlignmentFlag.AlignLeft, 160)
    p.setPen(_pen(TOKENS_COLOR))
    _text(p, right + 56, top - 14, "tokens/s per GPU", Qt.AlignmentFlag.AlignRight, 160)
    p.end()
    return image


def _ticks(top_value: float) -> list[float]:
    step = nice_step(top_value, 5)
    return [i * step for i in range(int(top_value / step) + 1)]
