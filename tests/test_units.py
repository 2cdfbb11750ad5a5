"""napkin_gui/units.py: one way to print each quantity, and the modules that print use it."""
import ast
import math
import pathlib
import subprocess
import sys

import pytest

from napkin_gui import units

ROOT = pathlib.Path(__file__).resolve().parents[1] / "napkin_gui"


@pytest.mark.parametrize("nbytes, digits, text", [
    (0, 2, "0.00 GiB"), (2**30, 2, "1.00 GiB"), (int(35.65 * 2**30), 2, "35.65 GiB"),
    (1536 * 2**30, 1, "1,536.0 GiB"), (80 * 2**30, 0, "80 GiB"), (None, 2, units.MISSING),
    (math.nan, 2, units.MISSING)])
def test_gib(nbytes, digits, text):
    assert units.gib(nbytes, digits) == text


@pytest.mark.parametrize("nbytes, text", [(int(0.4 * 2**30), "+0.4 GiB"), (-int(10.7 * 2**30), "-10.7 GiB"),
                                          (1000, "±0.0 GiB"), (-1000, "±0.0 GiB")])
def test_gib_delta_signs_and_zero(nbytes, text):
    assert units.gib_delta(nbytes) == text


@pytest.mark.parametrize("value, text", [
    (0.00085, "850 µs"), (0.0123, "12.3 ms"), (0.1234, "123 ms"), (1.5069, "1.51 s"), (12.62, "12.6 s"),
    (126.2, "126 s"), (4321.0, "4,321 s"), (0.0, "0 ms"), (None, units.MISSING), (math.inf, units.MISSING)])
def test_seconds_three_significant_figures(value, text):
    assert units.seconds(value) == text


def test_hours_usd_counts():
    assert units.hours(5.114) == "5.11 h" and units.hours(1234.4) == "1,234 h" and units.hours(None) == units.MISSING
    assert units.usd(13.744) == "$13.74" and units.usd(1234.4) == "$1,234" and units.usd(None) == units.MISSING
    assert units.usd_per_hour(2.5) == "$2.50/h"
    assert units.count(5436.4) == "5,436" and units.count(None) == units.MISSING
    assert units.percent(0.123) == "12 %" and units.percent(-0.5, signed=True) == "-50 %"


@pytest.mark.parametrize("n, text", [(8_072_204_288, "8.07 B"), (7_615_616_512, "7.62 B"), (41_943_040, "41.9 M"),
                                     (950_000, "950 K"), (12, "12")])
def test_params_one_scale(n, text):
    """Issue 12.5: 'trainable 7,615.6 M' beside '7.62 B' for the same kind of number."""
    assert units.params(n) == text


def test_plural():
    assert units.plural(1, "GPU") == "1 GPU" and units.plural(2, "GPU") == "2 GPUs"
    assert units.plural(0.5, "epoch") == "0.5 epochs" and units.plural(1.0, "epoch") == "1 epoch"


def test_units_imports_only_the_standard_library():
    tree = ast.parse((ROOT / "units.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert names <= {"__future__", "math"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]


def _sources():
    for path in sorted(ROOT.rglob("*.py")):
        if path.name != "units.py":
            yield path, path.read_text()


def test_no_module_keeps_its_own_gib_constant_or_formatter():
    """Issue 14.2: GiB is divided out in units.py only; nobody defines GIB = 2**30 again."""
    own = [str(p.relative_to(ROOT)) for p, text in _sources() if "GIB = 2**30" in text or "def _gib(" in text
           or "def _fmt_gib(" in text or "def seconds_text(" in text]
    assert own == []


def test_one_missing_mark():
    """One dash for a missing value: no en dash '–' cell anywhere in the printing modules."""
    offenders = [str(p.relative_to(ROOT)) for p, text in _sources()
                 if '"–"' in text or "'–'" in text or '"—" if' in text]
    assert offenders == []


def test_report_imports_no_ui_module():
    """report/charts.py read ui/palette.py (with a fallback copy); the palette lives at napkin_gui/palette.py."""
    for path in (ROOT / "report").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith(("ui", "napkin_gui.ui")), (path.name, node.module)
    assert not (ROOT / "ui" / "palette.py").exists()
    code = "import sys, napkin_gui.report.charts; print([m for m in sys.modules if m.startswith('napkin_gui.ui')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}).stdout
    assert out.strip() == "[]"
