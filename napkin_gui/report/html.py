"""ReportData -> the report's HTML (the subset QTextDocument renders) and its image names."""
from __future__ import annotations

from collections.abc import Sequence

from ..core.names import algorithm_label, tokens_text
from ..core.user_prices import price_citation
from ..units import params, usd_per_hour
from .data import ReportData
from .text import (algorithm_rows, esc, component_rows, plan_rows, term_rows, time_rows, title_text, total_text,
                   verdict_text)

# names the QImages are registered under (QTextDocument.addResource)
MEMORY_BAR = "memory-bar.png"
TIMELINE = "timeline.png"
BATCH_CURVE = "batch-curve.png"
IMAGE_WIDTH = 640  # layout pixels: the full text width of an A4 page at 15 mm margins

STYLE = """
h1 { font-size: 14pt; margin-bottom: 2px; }
h2 { font-size: 11pt; margin-top: 12px; margin-bottom: 4px; color: #333333; }
td, th { padding: 2px 5px; }
th { background-color: #eeeeee; text-align: left; }
.sub { color: #555555; }
.formula { color: #555555; font-size: 7.5pt; }
.num { text-align: right; }
.ok { background-color: #e3f4e1; }
.bad { background-color: #fbe3e1; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], num_cols: Sequence[int] = (),
           formula_cols: Sequence[int] = (), width: str = "100%", small: bool = False) -> str:
    out = [f'<table border="0.5" cellspacing="0" cellpadding="2" width="{width}" style="border-color:#bbbbbb">']
    if header:
        size = ' style="font-size:7.5pt"' if small else ""
        out.append("<tr>" + "".join(f"<th{size}>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "num" if i in num_cols else "formula" if i in formula_cols else ""
            align = ' align="right"' if i in num_cols else ""
            size = ' style="font-size:7.5pt"' if small else ""
            cells.append(f'<td class="{cls}"{align}{size}>{esc(cell)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _plan_table(data: ReportData) -> str:
    rows = plan_rows(data.estimate.plan)
    half = (len(rows) + 1) // 2
    paired = [(a[0], a[1], *(rows[half + i] if half + i < len(rows) else ("", "")))
              for i, a in enumerate(rows[:half])]
    return _table(("field", "value", "field", "value"), paired)


def _verdict(data: ReportData) -> str:
    mem = data.estimate.memory
    cls = "ok" if mem.fits else "bad"
    return (f'<table width="100%" cellpadding="6" cellspacing="0" style="margin-top:6px"><tr><td class="{cls}">'
            f"<b>{esc(verdict_text(mem))}</b></td></tr></table>")


def _figure(title: str, name: str) -> str:
    """Heading and chart in one block, so a page break never separates them."""
    return (f'<p style="margin-top:12px"><span style="font-size:11pt; font-weight:bold; color:#333333">'
            f'{esc(title)}</span><br/><img src="{name}" width="{IMAGE_WIDTH}"></p>')


def _algorithm_section(est) -> list[str]:
    """The preference / RL phases (nothing for SFT)."""
    rows = algorithm_rows(est)
    if not rows:
        return []
    return [f"<h2>{esc(est.plan.algorithm.upper())} phases</h2>",
            _table(("phase", "GiB allocated", "what runs"), rows, num_cols=(1,), formula_cols=(2,))]


def price_text(est) -> str:
    """'napkin estimate for NVIDIA H100 80GB SXM5 at $2.69/h. Price: RunPod ... (runpod.io/pricing).'
    The source is a sentence of its own: sources end in their own parenthesis."""
    text = f"napkin estimate for {est.gpu.name} at {usd_per_hour(est.gpu.price_usd_per_hour)} per GPU."
    source = price_citation(est.gpu.price_source, est.gpu.price_date).strip().rstrip(".")
    return f"{text} Price: {source}." if source else text


def report_html(data: ReportData) -> str:
    """The whole report as one HTML string; images are referenced by the names above."""
    est = data.estimate
    plan = est.plan
    sub = (f"{esc(plan.precision)}{esc(algorithm_label(plan))} · {esc(plan.optimizer)} · batch {plan.batch_size} × "
           f"{tokens_text(plan)} tokens"
           f" · {params(est.total_params)} params, {params(est.trainable_params)} trainable"
           f" · report of {esc(data.created)}")
    parts = [f"<html><head><style>{STYLE}</style></head><body>",
             f"<h1>{esc(title_text(est))}</h1>",
             f'<p class="sub">{sub}</p>']
    if est.calibration:
        parts.append(f'<p class="sub">Calibrated with probe profile: {esc(est.calibration)}</p>')
    # page 1: verdict, memory, plan; page 2: the step charts and time; page 3: hardware, advice
    parts += [_verdict(data), _figure("Memory per GPU at the peak", MEMORY_BAR),
              _table(("component", "GiB", "formula"), component_rows(est.memory, plan.n_gpus), num_cols=(1,), formula_cols=(2,)),
              *_algorithm_section(est),
              "<h2>Plan</h2>", _plan_table(data),
              f'<p style="page-break-before: always"></p>{_figure("Memory through one step", TIMELINE)}']
    if data.sweep.priced():
        parts.append(_figure("Batch size: step time and throughput", BATCH_CURVE))
    parts += ["<h2>Time</h2>",
              _table((), time_rows(est.time, plan.grad_accum), num_cols=(1,), width="60%"),
              "<p></p>",
              _table(("term", "seconds", "roofline"), term_rows(est.time), num_cols=(1,), formula_cols=(2,))]
    total = total_text(est)
    parts.append(f"<p><b>Total:</b> {esc(total)}</p>" if total
                 else '<p class="sub">No dataset size in the plan (dataset_tokens = 0): no total time or cost.</p>')
    if data.hardware_rows or data.hardware_note or data.advice or est.warnings or data.best_rows or data.best_note:
        parts.append('<p style="page-break-before: always"></p>')
    if data.best_rows:
        parts += ["<h2>Best plans: fastest and cheapest that train the same thing</h2>",
                  _table(data.best_header, data.best_rows, num_cols=(2, 4, 5, 6, 7), small=True)]
    if data.best_note:
        parts.append(f'<p class="sub">{esc(data.best_note)}</p>')
    if data.hardware_rows:
        parts += ["<h2>Hardware that fits: cheapest and fastest</h2>",
                  _table(data.hardware_header, data.hardware_rows, num_cols=(1, 3, 4, 5, 6, 7, 8), small=True)]
    if data.hardware_note:
        parts.append(f'<p class="sub">{esc(data.hardware_note)}</p>')
    if data.advice:
        parts += ["<h2>Advice</h2>", "<ol>" + "".join(f"<li>{esc(a)}</li>" for a in data.advice) + "</ol>"]
    if est.warnings:
        parts += ["<h2>Warnings</h2>", "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in est.warnings) + "</ul>"]
    parts.append(f'<p class="sub">{esc(price_text(est))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)
