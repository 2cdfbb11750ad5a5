"""ProbeRunner: the Probe action. Runs a ProbeWorker in a QThread and shows what it found.

The probe itself runs in a spawned child process (probe.isolated) by default, so the app
never imports torch or holds a CUDA context. On a profile: saved to the store, used for the
estimates, "estimated X GiB · measured Y GiB" in the strip, and the measured timeline drawn
over the estimated one.
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject

from ..core.errors import PlanError
from .controller import PlanController
from .status_strip import NvmlStrip, ProbePanel, measured_vs_estimated
from .timeline_view import MemoryTimelineView, measured_timeline


class ProbeRunner(QObject):
    """Starts, cancels and reports one probe at a time."""

    def __init__(self, controller: PlanController, panel: ProbePanel, strip: NvmlStrip,
                 timeline: MemoryTimelineView, say: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller, self.panel, self.strip, self.timeline, self.say = controller, panel, strip, timeline, say
        self.thread: Any = None
        self.worker: Any = None

    @property
    def running(self) -> bool:
        return self.thread is not None

    def start(self, probe: Any = None, **probe_kwargs: Any) -> None:
        """Probe with the current plan as the trial (probe: a test double for run_probe)."""
        if self.thread is not None:
            return
        from .probe_worker import ProbeWorker, start_in_thread
        if not callable(probe):  # QAction.triggered / clicked pass a bool
            from ..probe.isolated import run_probe_isolated as probe
        worker = ProbeWorker(trial_plan=self.controller.plan, probe=probe, **probe_kwargs)
        worker.progress.connect(self.panel.show_progress)
        worker.finished.connect(self._on_worker_finished)
        worker.failed.connect(self._on_worker_failed)
        worker.nvml_updated.connect(self.strip.show_snapshot)
        self.worker = worker
        self.thread = start_in_thread(worker, parent=self)
        self.thread.finished.connect(self._on_thread_finished)
        self.panel.set_running(True)
        self.panel.show_result("probing…")

    def cancel(self) -> None:
        """Ask the probe to stop and wait for its thread (the child gets a grace period)."""
        if self.worker is not None:
            self.worker.cancel()
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait(5000)

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self.panel.set_running(False)

    def _on_worker_finished(self, result: Any) -> None:
        from ..core import calibration as cal
        profile = result.profile
        record = result.trial.record if result.trial is not None else None
        if profile is not None and profile.device == "cuda":
            try:
                cal.save_profile(profile)
            except (PlanError, OSError) as err:
                self.say(f"profile not saved: {err}")
            self.controller.set_calibration(profile)
            self.controller.flush()
        self.panel.show_result(measured_vs_estimated(record, self.controller.estimate) or result.status)
        self.timeline.set_measured(measured_timeline(record))

    def _on_worker_failed(self, message: str) -> None:
        self.panel.show_result(message, ok=False)
