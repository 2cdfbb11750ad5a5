"""Per-layer extrapolation of reduced-depth trial runs to the full model. Standard library only.

A decoder-only model's weights, gradients, optimizer states, saved activations and step
time all grow by the same amount per identical decoder layer; embeddings, lm_head, logits
and loss do not. Two runs at k1 < k2 layers give that slope and the intercept:
value(L) = value(k2) + (L - k2) * (value(k2) - value(k1)) / (k2 - k1).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any


def trial_depths(layer_params: Sequence[int], preferred: tuple[int, int] = (2, 4)) -> tuple[int, ...]:
    """Two depths k1 < k2 whose difference extrapolates exactly to the full model.

    layer_params: parameters of every decoder layer in order (ModelSpec.layers()). A line
    through depths k1 and k2 reaches the full count exactly when the layers after k2 are,
    on average, like the layers k1+1..k2: true for (2, 4) in a uniform model, not in
    DeepSeek-V3 (3 dense layers, then MoE), which gets (3, 4). The whole model when it
    has no more layers than k2.
    """
    n = len(layer_params)
    if n <= preferred[1]:
        return (n,)

    def exact(k1: int, k2: int) -> bool:
        step = sum(layer_params[k1:k2]) * (n - k2)
        return step == sum(layer_params[k2:]) * (k2 - k1)

    if exact(*preferred):
        return preferred
    for k2 in range(2, n + 1):
        for k1 in range(k2 - 1, 0, -1):
            if exact(k1, k2):
                return (k1, k2)
    return preferred


def linear_extrapolate(points: Sequence[tuple[int, float]], layers: int) -> float:
    """Least-squares line through (layers_run, value) points, evaluated at `layers`.

    One point: returned unchanged when it ran at `layers` (the whole model), else scaled
    by nothing (no slope is known) and returned as is.
    """
    if not points:
        raise ValueError("no points to extrapolate")
    if len(points) == 1 or len({k for k, _ in points}) == 1:
        return float(points[-1][1])
    n = len(points)
    mean_k = sum(k for k, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    slope = (sum((k - mean_k) * (v - mean_v) for k, v in points)
             / sum((k - mean_k) ** 2 for k, _ in points))
    return mean_v + slope * (layers - mean_k)


def extrapolate_seconds(points: Sequence[tuple[int, float]], layers: int) -> float:
    """linear_extrapolate for timings: a deeper model is never faster, so a negative slope
    (timer noise between two small runs) counts as zero: the largest run's time is kept."""
    top_k, top_v = max(points)
    if len({k for k, _ in points}) > 1 and linear_extrapolate(points, top_k + 1) < linear_extrapolate(points, top_k):
        return float(top_v)
    return max(float(top_v) if layers >= top_k else 0.0, linear_extrapolate(points, layers))


def extrapolate_int(points: Sequence[tuple[int, int | None]], layers: int) -> int | None:
    """linear_extrapolate for byte or parameter counts; None when any point is unmeasured."""
    if not points or any(v is None for _, v in points):
        return None
    return int(round(linear_extrapolate([(k, float(v)) for k, v in points], layers)))


_LAYER_PHASE = re.compile(r"^(forward|recompute|backward) L(\d+)$")


def extrapolate_timeline(runs: Sequence[tuple[int, Sequence[tuple[str, int]]]],
                         layers: int) -> tuple[tuple[str, int], ...]:
    """The step timeline of the full model from timelines of reduced runs.

    runs: (layers_run, ((phase, bytes), ...)) per run. Per-layer phases ("forward L{j}",
    "recompute L{j}", "backward L{j}", j from 1) are fitted per family as a + b*k + c*j (k:
    layers in the run; weights scale with k, saved activations with j); every other phase
    ("weights loaded", "logits & loss", "optimizer step", ...) as a + b*k. The full model's
    timeline follows the largest run, each run of per-layer phases stretched to j = 1..layers
    in the same direction and with the same per-layer pattern (e.g. recompute, backward).
    """
    if not runs:
        return ()
    runs = sorted(runs, key=lambda r: r[0])
    top_k, top = runs[-1]
    if len(runs) == 1 or top_k == layers:
        return tuple((p, int(b)) for p, b in top)
    families: dict[str, list[tuple[int, int, float]]] = {}
    other: dict[str, list[tuple[int, float]]] = {}
    for k, timeline in runs:
        for phase, value in timeline:
            m = _LAYER_PHASE.match(phase)
            if m:
                families.setdefault(m.group(1), []).append((k, int(m.group(2)), float(value)))
            else:
                other.setdefault(phase, []).append((k, float(value)))
    fits = {name: _fit_plane(samples) for name, samples in families.items()}

    def layer_value(family: str, j: int) -> int:
        a, b, c = fits[family]
        return max(0, int(round(a + b * layers + c * j)))

    out: list[tuple[str, int]] = []
    for segment in _segments(top):
        if isinstance(segment, str):
            out.append((segment, max(0, int(round(linear_extrapolate(other[segment], layers))))))
            continue
        pattern, ascending = segment
        order = range(1, layers + 1) if ascending else range(layers, 0, -1)
        out.extend((f"{family} L{j}", layer_value(family, j)) for j in order for family in pattern)
    return tuple(out)


def _segments(timeline: Sequence[tuple[str, int]]) -> list[Any]:
    """The timeline as plain phase names and runs of per-layer phases, each run given as
    (per-layer family pattern, ascending j?)."""
    out: list[Any] = []
    run: list[tuple[str, int]] = []
    for phase, _ in list(timeline) + [("", 0)]:
        m = _LAYER_PHASE.match(phase)
        if m:
            run.append((m.group(1), int(m.group(2))))
            continue
        if run:
            groups: list[tuple[int, list[str]]] = []
            for family, j in run:
                if groups and groups[-1][0] == j:
                    groups[-1][1].append(family)
                else:
                    groups.append((j, [family]))
            patterns = [tuple(g) for _, g in groups]
            pattern = max(set(patterns), key=patterns.count)
            out.append((pattern, groups[0][0] <= groups[-1][0]))
            run = []
        if phase:
            out.append(phase)
    return out


def _fit_plane(samples: Sequence[tuple[int, int, float]]) -> tuple[float, float, float]:
    """Least squares v = a + b*k + c*j (normal equations, 3x3, Cramer's rule)."""
    rows = [(1.0, float(k), float(j)) for k, j, _ in samples]
    vals = [v for _, _, v in samples]
    ata = [[sum(r[i] * r[m] for r in rows) for m in range(3)] for i in range(3)]
    atv = [sum(r[i] * v for r, v in zip(rows, vals)) for i in range(3)]
    det = _det3(ata)
    if abs(det) < 1e-9:
        # the runs do not separate k from j (one run only): slope in j, no slope in k
        mean_v = sum(vals) / len(vals)
        return mean_v, 0.0, 0.0
    coeffs = []
    for col in range(3):
        m = [row[:] for row in ata]
        for i in range(3):
            m[i][col] = atv[i]
        coeffs.append(_det3(m) / det)
    return coeffs[0], coeffs[1], coeffs[2]


def _det3(m: list[list[float]]) -> float:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
