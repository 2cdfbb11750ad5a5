"""The probe in a QThread, and a live NVML poller for the status strip.

ProbeWorker runs probe.runner.run_probe() off the GUI thread and reports only through
signals; it never touches a widget (STYLE.md section 4). Usage:

    worker = ProbeWorker(trial_plan=plan)
    thread = start_in_thread(worker, parent=self)      # QThread, started
    worker.finished.connect(self._on_probe_finished)   # ProbeResult with a profile
    worker.failed.connect(self._on_probe_failed)       # one status line
    ...
    worker.cancel()                                    # from the GUI thread, any time
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot


class ProbeWorker(QObject):
    """Runs one probe; emits progress(fraction, text), nvml_updated(NvmlSnapshot), then
    exactly one of finished(ProbeResult) (a profile was built) or failed(str) (no GPU,
    torch missing, cancelled, any error: the one line to show)."""

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    nvml_updated = Signal(object)

    def __init__(self, trial_plan: Any = None, probe: Callable[..., Any] | None = None,
                 parent: QObject | None = None, **probe_kwargs: Any) -> None:
        """probe: run_probe or a test double; probe_kwargs go to it (device, nvml_backend, ...)."""
        super().__init__(parent)
        self._trial_plan = trial_plan
        self._probe = probe
        self._kwargs = probe_kwargs
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Ask the probe to stop at its next check (between benchmarks and training steps)."""
        self._stop.set()

    def is_cancelled(self) -> bool:
        return self._stop.is_set()

    @Slot()
    def run(self) -> None:
        try:
            probe = self._probe
            if probe is None:
                from ..probe.runner import run_probe as probe
            result = probe(self._trial_plan, progress=self.progress.emit, should_stop=self._stop.is_set,
                           nvml_snapshot=self.nvml_updated.emit, **self._kwargs)
        except Exception as err:  # noqa: BLE001 - a probe failure is a status line
            text = str(err).strip().splitlines()
            self.failed.emit(f"probe failed: {type(err).__name__}: {text[0] if text else ''}")
            return
        if getattr(result, "profile", None) is not None and not result.cancelled:
            self.finished.emit(result)
        else:
            self.failed.emit(result.status)


def start_in_thread(worker: ProbeWorker, parent: QObject | None = None) -> QThread:
    """Move worker (which must have no parent) to a new QThread and start it.

    Keep the returned thread (or give it a parent) and the worker until the thread has
    finished, then drop the worker: it is owned by Python. (It used to be deleteLater'd too,
    and the caller dropping its last reference then deleted it a second time: a crash in
    about 1 of 3 runs of tests/test_ui_figures.py's probe test.) To stop early:
    worker.cancel(), then thread.wait().
    """
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    worker.finished.connect(thread.quit)
    worker.failed.connect(thread.quit)
    thread.start()
    return thread


class NvmlPoller(QObject):
    """Reads NVML every `interval_ms` on the GUI thread (a read takes about a millisecond)
    and emits updated(NvmlSnapshot); keeps the last `history` used-memory samples per GPU
    uuid for the strip's sparklines. backend: a probe.nvml.NvmlBackend (tests: a fake)."""

    updated = Signal(object)

    def __init__(self, backend: Any = None, interval_ms: int = 2000, history: int = 60,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        from ..probe.nvml import NvmlBackend
        self._backend = backend if backend is not None else NvmlBackend()
        self._history: dict[str, deque[int]] = {}
        self._length = history
        self.last: Any = None
        self._timer = QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.poll()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._backend.shutdown()

    def is_active(self) -> bool:
        return self._timer.isActive()

    @Slot()
    def poll(self) -> None:
        from ..probe.nvml import read_devices
        snap = read_devices(self._backend)
        for gpu in snap.gpus:
            key = gpu.uuid or str(gpu.index)
            self._history.setdefault(key, deque(maxlen=self._length)).append(gpu.used_bytes)
        self.last = snap
        self.updated.emit(snap)

    def history(self, uuid: str) -> tuple[int, ...]:
        """Used bytes of one GPU, oldest first (the sparkline's data)."""
        return tuple(self._history.get(uuid, ()))
