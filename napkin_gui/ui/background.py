"""BackgroundEstimator: the Time curves and the advice, computed in a second process on the
machine's other core while the window paints.

An edit needs one estimate for the bars, which the window computes at once, and more for the
rest: 16 curve points (core.estimate_point) for the Time view and a few dozen estimates for
the advice. Python runs one thread at a time, so in the window's thread they queue behind the
painting. A spawned child computes them while the window paints the bars and sends each
result back through a pipe that the Qt event loop watches (QSocketNotifier).
It lowers the Time tab's p95 (bench/gui_latency.py; the figure is in bench/README.md).
The hardware table stays in the window: its 152 rows cost more to send and to paint in a
second pass than the overlap saves.

A job is (job id, kind, plan, calibration) with kind "sweeps", "advice" or "search" (the Best
plans view, which has a child of its own at low priority: ui/best_plans_search.py); a reply is
(job id, status, payload) with status "ok", "plan-error" (payload: the PlanError line) or
"error". The child runs only the newest job of each kind, curves before advice, and answers
"stale" for a job that a newer one of its kind replaced before it started (a slider drag).
If the child cannot start or dies, every job still out is answered "error" and `available`
turns False: ui/figures.py then computes in the window's thread, as it does until the child is
ready.
"""
from __future__ import annotations

import multiprocessing
import sys
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

from .estimate_worker import READY, serve


class BackgroundEstimator(QObject):
    """One child process computing curves and advice for ui/figures.py."""

    result_ready = Signal(int, str, object)  # job id, status, payload
    # the child said it is ready, or failed before: what waited for it (ui/figures.py's
    # deferred advice, ui/best_plans_search.py's search) goes on, sent there or computed here
    settled = Signal()

    def __init__(self, parent: QObject | None = None, nice: int = 0, name: str = "napkin-estimates") -> None:
        """nice > 0: the child runs at that lower CPU priority (estimate_worker.serve)."""
        super().__init__(parent)
        self.ready = False
        self.failed = ""
        self._next_job = 0
        self._pending: set[int] = set()
        self._notifier = self._poll_timer = None
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs Qt
        try:
            self._conn, child_conn = ctx.Pipe()
            self._proc = ctx.Process(target=serve, args=(child_conn, nice), daemon=True, name=name)
            self._proc.start()
            child_conn.close()
        except (OSError, RuntimeError, ValueError) as err:
            self._conn = self._proc = None
            self.failed = f"background estimates unavailable: {err}"
            return
        if sys.platform != "win32":  # a pipe end is a file descriptor the event loop can watch
            self._notifier = QSocketNotifier(self._conn.fileno(), QSocketNotifier.Type.Read, self)
            self._notifier.activated.connect(self._receive_available)
        else:  # Windows pipes are handles, not sockets: poll them
            self._poll_timer = QTimer(self, interval=1)
            self._poll_timer.timeout.connect(self._receive_available)
            self._poll_timer.start()

    @property
    def available(self) -> bool:
        """Whether jobs can be sent (the child started, said it is ready, and has not failed)."""
        return self.ready and not self.failed

    def submit(self, kind: str, plan: Any, calibration: Any = None) -> int | None:
        """Send a job; its id, or None when the child cannot take it (compute it yourself)."""
        if not self.available:
            return None
        self._next_job += 1
        job = self._next_job
        try:
            self._conn.send((job, kind, plan, calibration))
        except (OSError, ValueError, EOFError) as err:
            self._fail(f"background estimates stopped: {err}")
            return None
        self._pending.add(job)
        return job

    def wait(self, job: int, timeout_seconds: float = 30.0) -> None:
        """Block until job's result has been emitted (results of other jobs are emitted too)."""
        while job in self._pending and self._receive_within(timeout_seconds, "gave no answer"):
            pass

    def wait_ready(self, timeout_seconds: float = 30.0) -> bool:
        """Block until the child said it is ready (tests, the benchmark); False if it failed."""
        while not self.ready and self._receive_within(timeout_seconds, "did not start"):
            pass
        return self.available

    def _receive_within(self, timeout_seconds: float, silence: str) -> bool:
        """Receive one message, waiting up to timeout_seconds; False (and failed) if none came."""
        if self.failed:
            return False
        try:
            if not self._conn.poll(timeout_seconds):
                self._fail(f"background estimates {silence} in {timeout_seconds:.0f} s")
                return False
        except (OSError, EOFError) as err:
            self._fail(f"background estimates stopped: {err}")
            return False
        self._receive_one()
        return not self.failed

    def _receive_available(self) -> None:
        try:
            while self._conn is not None and not self.failed and self._conn.poll():
                self._receive_one()
        except (OSError, EOFError) as err:
            self._fail(f"background estimates stopped: {err}")

    def _receive_one(self) -> None:
        try:
            job, status, payload = self._conn.recv()
        except (OSError, EOFError) as err:
            self._fail(f"background estimates stopped: {err}")
            return
        if job == READY:
            self.ready = True
            self.settled.emit()
            return
        self._pending.discard(job)
        self.result_ready.emit(job, status, payload)

    def _fail(self, reason: str) -> None:
        """Give up on the child: every job still out is answered "error" (computed in the window)."""
        if self.failed:
            return
        self.failed = reason
        starting = not self.ready
        for job in sorted(self._pending):
            self.result_ready.emit(job, "error", reason)
        self._pending.clear()
        self.close()
        if starting:
            self.settled.emit()

    def close(self) -> None:
        """Stop the child (also when the window closes)."""
        if self._notifier is not None:
            self._notifier.setEnabled(False)
        if self._poll_timer is not None:
            self._poll_timer.stop()
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (OSError, ValueError, EOFError):
                pass
        if self._proc is not None:
            self._proc.join(timeout=1.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=1.0)
            self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.ready = False
