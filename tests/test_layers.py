"""Layering: the core imports no Qt / torch / NVML; the probe imports torch only when it runs."""
import subprocess
import sys
from pathlib import Path

import pytest

# measured runs for `validate` (test_groundtruth.py reads the same file)
GROUNDTRUTH = Path(__file__).resolve().parents[2] / "shared" / "groundtruth" / "h100-calibration.jsonl"
HEAVY = ("PySide6", "torch", "pynvml", "transformers", "peft", "bitsandbytes", "pyqtgraph")


def modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return set(out.split())


CORE_RUNS = {
    "estimate": "from napkin_gui.core.estimate import estimate\nestimate(PLAN)",
    "compare": "from napkin_gui.core.compare import compare_hardware\nassert compare_hardware(PLAN)",
    "advise": "from napkin_gui.core.advise import advise\nadvise(PLAN)",
    "validate": ("from napkin_gui.core import validate\n"
                 "checks = validate.check_runs(validate.read_runs(GROUNDTRUTH)[:5])\n"
                 "assert len(checks) == 5 and validate.summary_line(checks)"),
}


@pytest.mark.parametrize("entry", sorted(CORE_RUNS))
def test_core_entry_points_import_nothing_heavy(entry):
    """What the CLI's estimate, compare, advise and validate run, imports no Qt, torch or NVML."""
    if entry == "validate" and not GROUNDTRUTH.exists():
        pytest.skip("shared/groundtruth not beside the checkout")
    setup = (f"from napkin_gui.core.plan import Plan\nPLAN = Plan(model='llama-3.2-1b')\n"
             f"GROUNDTRUTH = {str(GROUNDTRUTH)!r}\n")
    mods = modules_after(setup + CORE_RUNS[entry])
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)
    assert not any(m.startswith(("napkin_gui.ui", "napkin_gui.report", "napkin_gui.probe")) for m in mods)


def test_package_init_is_empty_of_imports():
    mods = modules_after("import napkin_gui")
    assert not any(m.startswith("napkin_gui.") for m in mods)


@pytest.mark.parametrize("module", ["napkin_gui.cli", "napkin_gui.probe.nvml", "napkin_gui.probe.runner",
                                    "napkin_gui.core.calibration"])
def test_probe_and_cli_import_without_torch(module):
    mods = modules_after(f"import {module}")
    assert "torch" not in mods and "PySide6" not in mods
