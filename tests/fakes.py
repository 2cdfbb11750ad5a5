"""FakeEstimator: stands in for ui/background.py's BackgroundEstimator in the window's tests
(test_ui_background.py, test_ui_figures.py, test_best_plans_view.py): it records each job and
answers only when the test emits result_ready.

As the real one, a fake made with starting=True takes no job (submit returns None) until the
test calls come_up() or fail_to_start(), each of which emits `settled`.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal


class FakeEstimator(QObject):
    result_ready = Signal(int, str, object)  # job id, status, payload
    settled = Signal()                       # the child is ready or has failed

    def __init__(self, starting: bool = False) -> None:
        super().__init__()
        self.ready, self.failed = not starting, ""
        self.jobs: list[tuple[int, str, Any, Any]] = []   # (job id, kind, plan, calibration)

    def submit(self, kind: str, plan: Any, calibration: Any = None) -> int | None:
        if self.ready and not self.failed:  # up: the job is recorded
            self.jobs.append((len(self.jobs) + 1, kind, plan, calibration))
            return len(self.jobs)
        return None

    def wait(self, job: int, timeout_seconds: float = 30.0) -> None:
        pass

    def wait_ready(self, timeout_seconds: float = 30.0) -> bool:
        if not self.ready and not self.failed:
            self.come_up()
        return not self.failed

    def come_up(self) -> None:
        self.ready = True
        self.settled.emit()

    def fail_to_start(self, reason: str = "background estimates did not start in 30 s") -> None:
        self.failed = reason
        self.settled.emit()
