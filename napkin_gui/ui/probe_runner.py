"""ProbeRunner: the Probe action. Runs a ProbeWorker in a QThread and hands what it found to
the controller.

The probe itself runs in a spawned child process (probe.isolated) by default, so the app
never imports torch or holds a CUDA context. On a profile measured on CUDA: saved to the
store and used for the estimates (controller.set_calibration); then the result goes to
controller.set_probe_result, whose probe_changed the window shows ("estimated X GiB ·
measured Y GiB" in the probe panel, the measured timeline over the estimated one). Progress,
NVML snapshots and failures are this runner's own signals; it knows no view.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.errors import PlanError
from .controller import PlanController


class ProbeRunner(QObject):
    """Starts, cancels and reports one probe at a time."""

    running_changed = Signal(bool)
    progress = Signal(float, str)    # fraction done, what it is doing
    nvml_updated = Signal(object)    # probe.nvml.NvmlSnapshot taken during the probe
    failed = Signal(str)             # the probe raised: one line
    message = Signal(str)            # a note for the status bar (the profile could not be saved)

    def __init__(self, controller: PlanController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
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
        worker.progress.connect(self.progress)
        worker.finished.connect(self._on_worker_finished)
        worker.failed.connect(self.failed)
        worker.nvml_updated.connect(self.nvml_updated)
        self.worker = worker
        self.thread = start_in_thread(worker, parent=self)
        self.thread.finished.connect(self._on_thread_finished)
        self.running_changed.emit(True)

    def cancel(self) -> None:
        """Ask the probe to stop and wait for its thread (the child gets a grace period)."""
        if self.worker is not None:
            self.worker.cancel()
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait(5000)

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self.running_changed.emit(False)

    def _on_worker_finished(self, result: Any) -> None:
        from ..core import calibration as cal
        profile = result.profile
        if profile is not None and profile.device == "cuda":
            try:
                cal.save_profile(profile)
            except (PlanError, OSError) as err:
                self.message.emit(f"profile not saved: {err}")
            self.controller.set_calibration(profile)
            self.controller.flush()
        self.controller.set_probe_result(result)
