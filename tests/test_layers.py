"""Layering: the core imports no Qt / torch / NVML; the probe imports torch only when it runs."""
import subprocess
import sys

import pytest

HEAVY = ("PySide6", "torch", "pynvml", "transformers", "peft", "bitsandbytes", "pyqtgraph")


def modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return set(out.split())


def test_core_and_an_estimate_import_nothing_heavy():
    mods = modules_after("from napkin_gui.core.estimate import estimate\nfrom napkin_gui.core.plan import Plan\n"
                         "estimate(Plan(model='llama-3.2-1b'))")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)


def test_package_init_is_empty_of_imports():
    mods = modules_after("import napkin_gui")
    assert not any(m.startswith("napkin_gui.") for m in mods)


@pytest.mark.parametrize("module", ["napkin_gui.cli", "napkin_gui.probe.nvml", "napkin_gui.probe.runner",
                                    "napkin_gui.core.calibration"])
def test_probe_and_cli_import_without_torch(module):
    mods = modules_after(f"import {module}")
    assert "torch" not in mods and "PySide6" not in mods
