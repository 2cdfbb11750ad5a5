"""The bottom strip: live NVML memory per GPU (sparklines) and the Probe action.

NvmlStrip listens to probe_worker.NvmlPoller.updated; ProbePanel runs a ProbeWorker in a
QThread (probe_worker.start_in_thread) and only ever hears from it through signals.
torch is imported by the probe itself, inside the worker thread, never at startup.
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QWidget

from .. import palette
from ..units import gib, seconds, to_gib


class ElidedLabel(QLabel):
    """One line of plain text cut with '…' to the label's width, the whole text in its tooltip.

    A QLabel's text is laid out at its own length: squeezed in the status bar, the probe's
    error line ran under the Probe GPU button beside it.
    """

    def __init__(self, parent: QWidget | None = None, preferred_width: int = 380) -> None:
        super().__init__(parent)
        self.full_text = ""
        self._preferred = preferred_width
        self.setMinimumWidth(80)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text)
        self._elide()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(self._preferred, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(self.minimumWidth(), super().minimumSizeHint().height())

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(self.contentsRect().width(), 0)
        self.setText(self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideRight, width))


class Sparkline(QWidget):
    """A tiny line of used memory over time, scaled to the card's total."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: tuple[int, ...] = ()
        self.total = 1
        self.setFixedSize(QSize(90, 20))

    def set_values(self, values: tuple[int, ...], total: int) -> None:
        self.values, self.total = values, max(total, 1)
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#f3f3f3"))
        if len(self.values) > 1:
            w, h = self.width() - 2, self.height() - 2
            step = w / (len(self.values) - 1)
            points = [QPointF(1 + i * step, 1 + h - h * v / self.total) for i, v in enumerate(self.values)]
            painter.setPen(QPen(QColor(palette.SPARK), 1.5))
            painter.drawPolyline(QPolygonF(points))
        painter.end()


class NvmlStrip(QWidget):
    """One label + sparkline per GPU NVML sees, or NVML's one-line status when it sees none."""

    def __init__(self, history: Callable[[str], tuple[int, ...]] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history = history or (lambda uuid: ())
        self.layout_ = QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("NVML: not read yet", self)
        self.status.setStyleSheet("color: #555;")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.layout_.addWidget(self.status)
        self.gpu_widgets: list[tuple[QLabel, Sparkline]] = []

    def show_snapshot(self, snapshot: Any) -> None:
        """Show an NvmlSnapshot: per-GPU used memory, or its status line."""
        gpus = tuple(getattr(snapshot, "gpus", ()) or ()) if snapshot is not None and snapshot.ok else ()
        self.status.setVisible(not gpus)
        self.status.setText(f"NVML: {snapshot.status}" if snapshot is not None else "NVML: not read")
        self.status.setToolTip(self.status.text())
        while len(self.gpu_widgets) < len(gpus):
            label, spark = QLabel(self), Sparkline(self)
            self.layout_.addWidget(label)
            self.layout_.addWidget(spark)
            self.gpu_widgets.append((label, spark))
        for i, (label, spark) in enumerate(self.gpu_widgets):
            visible = i < len(gpus)
            label.setVisible(visible)
            spark.setVisible(visible)
            if not visible:
                continue
            gpu = gpus[i]
            label.setText(f"GPU{gpu.index} {gpu.name}: {to_gib(gpu.used_bytes):.1f}/{gib(gpu.total_bytes, 0)}")
            spark.set_values(self._history(gpu.uuid or str(gpu.index)) or (gpu.used_bytes,), gpu.total_bytes)


class ProbePanel(QWidget):
    """Probe button, progress bar, cancel, and the outcome line."""

    probe_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.button = QPushButton("Probe GPU", self)
        self.button.setToolTip("Measure this machine's GPU and run a short reduced-depth trial of the plan (Ctrl+R).")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(160)
        self.progress.setTextVisible(True)
        self.cancel = QPushButton("Cancel", self)
        self.result = ElidedLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.result, self.progress, self.cancel, self.button):
            layout.addWidget(w)
        self.button.clicked.connect(self.probe_requested)
        self.cancel.clicked.connect(self.cancel_requested)
        self.set_running(False)

    def set_running(self, running: bool) -> None:
        self.button.setEnabled(not running)
        self.progress.setVisible(running)
        self.cancel.setVisible(running)
        if running:
            self.progress.setValue(0)

    def show_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.progress.setFormat(f"{text} %p%")

    def show_result(self, text: str, ok: bool = True) -> None:
        self.result.set_full_text(text)
        self.result.setStyleSheet("" if ok else f"color: {palette.ERROR_FG};")


def measured_vs_estimated(record: Any, est: Any) -> str:
    """'estimated X GiB · measured Y GiB' for a TrialRecord against the plan's Estimate."""
    if record is None:
        return ""
    pairs = (("device_used_bytes", "device used"), ("peak_reserved_bytes", "peak reserved"),
             ("peak_allocated_bytes", "peak allocated"))
    for attr, label in pairs:
        measured = getattr(record, attr, None)
        if measured is not None:
            estimated = getattr(est.memory, attr) if est is not None else None
            head = f"{label}: estimated {gib(estimated, 1)} · " if estimated is not None else f"{label}: "
            return head + f"measured {gib(measured, 1)}"
    if getattr(record, "step_seconds", None) is not None and est is not None:
        return f"step: estimated {seconds(est.time.step_seconds)} · measured {seconds(record.step_seconds)}"
    return ""
