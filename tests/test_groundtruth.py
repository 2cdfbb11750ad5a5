"""The estimator against the 110 measured H100 runs in ../shared/groundtruth (skipped without it).

The thresholds are the product's accuracy promise (issue 2): peak allocated memory error median
<= 3 %, p90 <= 8 %, worst <= 15 %, and every fit/OOM verdict right on the 80 GB card.
"""
from pathlib import Path

import pytest

from napkin_gui.core import validate

RUNS = Path(__file__).resolve().parents[2] / "shared" / "groundtruth" / "h100-calibration.jsonl"

pytestmark = pytest.mark.skipif(not RUNS.exists(), reason="shared/groundtruth not beside the checkout")


@pytest.fixture(scope="module")
def checks():
    return validate.check_runs(validate.read_runs(RUNS))


def test_every_run_is_checked(checks):
    assert len(checks) == 110


def test_memory_error(checks):
    errors = [abs(c.memory_error_pct) for c in checks if c.memory_error_pct is not None]
    assert validate.percentile(errors, 50) <= 3.0
    assert validate.percentile(errors, 90) <= 8.0
    assert max(errors) <= 15.0


def test_fit_verdicts(checks):
    wrong = [(c.group, c.label) for c in checks if not c.fits_ok]
    assert wrong == []


def test_summary_line_format(checks):
    line = validate.summary_line(checks)
    assert line.startswith("memory median ") and "| fit 110/110 |" in line
