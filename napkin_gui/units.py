"""How napkin prints a quantity: GiB, seconds, hours, dollars, counts, parameters, the missing mark.

One function per kind of quantity, used by the CLI, the PDF report, the views and the core's
advice wording, so the same number reads the same everywhere. Standard library only (the core
may import it, like core/text.py). Bytes are shown in GiB (2**30, what torch.cuda and
nvidia-smi's MiB columns count); a card's memory too, never decimal GB.
"""
from __future__ import annotations

import math

GIB = 2**30
MISSING = "—"  # no value: no dataset size (hours, cost), not measured, not finite


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def to_gib(nbytes: float) -> float:
    """Bytes as a number of GiB (plot coordinates, axis values)."""
    return nbytes / GIB


def gib(nbytes: float | None, digits: int = 2) -> str:
    """'12.34 GiB'; MISSING for None."""
    return f"{nbytes / GIB:,.{digits}f} GiB" if _finite(nbytes) else MISSING


def gib_delta(nbytes: float, digits: int = 1) -> str:
    """A signed change: '+0.4 GiB', '-10.7 GiB' (a change that rounds to zero reads '±0.0 GiB')."""
    text = f"{nbytes / GIB:+,.{digits}f}"
    if float(text.replace(",", "")) == 0:   # "+1,192.5": thousands separators
        text = "±" + text[1:]
    return f"{text} GiB"


def seconds(value: float | None) -> str:
    """The one way napkin prints a duration under an hour (a step, a time term): three
    significant figures in µs, ms or s: '850 µs', '12.3 ms', '1.51 s', '126 s'."""
    if not _finite(value):
        return MISSING
    v = abs(value)
    if v == 0:
        return "0 ms"
    if v < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if v < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:,.3g} s" if v < 1000 else f"{value:,.0f} s"


def hours(value: float | None) -> str:
    """Wall-clock time of a whole run: '5.11 h' ('—' without a dataset size)."""
    if not _finite(value):
        return MISSING
    return f"{value:,.2f} h" if value < 100 else f"{value:,.0f} h"


def usd(value: float | None) -> str:
    """'$13.74', '$1,234' (whole dollars from $100 on); MISSING for None."""
    if not _finite(value):
        return MISSING
    return f"${value:,.2f}" if abs(value) < 100 else f"${value:,.0f}"


def usd_per_hour(value: float) -> str:
    """A rental price: '$2.50/h'."""
    return f"${value:,.2f}/h"


def count(value: float | None) -> str:
    """A whole count with thousands separators: '5,436'."""
    return f"{value:,.0f}" if _finite(value) else MISSING


def params(n: int) -> str:
    """A parameter count in one unit scale: '8.07 B', '41.9 M', '950 K', '12'."""
    if n >= 1e9:
        return f"{n / 1e9:,.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    if n >= 1e4:
        return f"{n / 1e3:.0f} K"
    return f"{n:,}"


def percent(fraction: float, signed: bool = False) -> str:
    """'12 %' or, signed, '+12 %'."""
    return f"{fraction * 100:+.0f} %" if signed else f"{fraction * 100:.0f} %"


def host_ram_text(memory, n_gpus: int) -> str:
    """What the host RAM figure (MemoryEstimate.host_bytes, one GPU's offloaded state) adds up
    to on the machine: 'offloaded state of each GPU, x 2 GPUs = 39.88 GiB of CPU RAM'."""
    if n_gpus == 1:
        return "offloaded state, in CPU RAM"
    return f"offloaded state of each GPU, x {plural(n_gpus, 'GPU')} = {gib(memory.host_bytes * n_gpus)} of CPU RAM"


def managed_text(memory) -> str:
    """What the managed figure (MemoryEstimate.managed_bytes, paged optimizer states) holds and,
    when not all of it fits beside torch's reserve, how much lives in host RAM and what the
    optimizer step pages over PCIe (memory.summary.paged_traffic_bytes)."""
    if not memory.paged_out_bytes:
        return "paged optimizer states (CUDA managed memory), all on the card"
    return (f"paged optimizer states (CUDA managed memory): {gib(memory.paged_out_bytes)} paged out to host RAM, "
            f"{gib(memory.paged_traffic_bytes // 2)} paged in and out over PCIe each optimizer step")


def plural(n: int | float, word: str, many: str | None = None) -> str:
    """'1 GPU', '2 GPUs', '1 epoch', '0.5 epochs'."""
    return f"{n:g} {word if n == 1 else many or word + 's'}"
