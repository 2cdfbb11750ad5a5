"""Every colour of napkin in one table: memory components, verdicts, curves; the views and
the PDF report (report/charts.py) both read it, so it lives outside ui/ and imports nothing.

Component colours are Tableau 10 (Tableau Software's default categorical palette, chosen
for legibility and distinctness); order follows core.result.COMPONENTS.
"""
from __future__ import annotations

COMPONENT_COLORS: dict[str, str] = {
    "weights": "#4e79a7",
    "adapters": "#f28e2b",
    "gradients": "#59a14f",
    "optimizer_states": "#b07aa1",
    "activations": "#edc948",
    "logits_loss": "#76b7b2",
    "temporaries": "#9c755f",
    "allocator_slack": "#bab0ac",
    "cuda_context": "#79706e",
}

BACKGROUND = "#ffffff"
FOREGROUND = "#222222"
GRID = "#e3e3e3"          # grid lines, opaque (plot_style.py says why)
AXIS = "#888888"

FITS = "#2e7d32"          # verdict text / badge when the plan fits
OOM = "#c62828"           # verdict, capacity overflow, OOM zone
INVALID = "#757575"       # verdict when the plan has no estimate (ui/invalid_plan.py)
OOM_FILL = "#fbe3e3"      # OOM region, opaque light red drawn under the data
CAPACITY = "#c62828"      # capacity line
PEAK_MARK = "#222222"     # peak phase marker
MEASURED = "#000000"      # measured probe timeline overlay
CURVE = "#4e79a7"         # time curves (the report's step-seconds curve)
TOKENS_CURVE = "#f28e2b"  # the report's tokens/s curve
CURRENT_POINT = "#e15759"  # the plan's own point on a curve
PINNED_ALPHA = 110        # alpha of the pinned ("before") bar's brushes

CHEAPEST_BG = "#dff0d8"   # hardware table: cheapest fitting row
FASTEST_BG = "#d9e8fb"    # hardware table: fastest fitting row
NO_FIT_FG = "#9e9e9e"     # hardware table: rows that do not fit

ERROR_FG = "#c62828"      # inline PlanError text
SPARK = "#4e79a7"         # NVML used-memory sparkline
