"""The estimation core: pure Python (+numpy at most), no Qt, no torch, no NVML.

`from napkin_gui.core import estimate` is the one call everything else makes.
"""


def estimate(plan, calibration=None):
    """core.estimate(plan) -> Estimate (see core/estimate.py)."""
    from .estimate import estimate as _estimate
    return _estimate(plan, calibration)
