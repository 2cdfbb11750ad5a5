"""The memory timeline of preference / RL plans in the window at its default size and at
1280 x 720: GRPO's stages (generate -> reference log-probs -> policy forward / backward ->
optimizer step) and DPO's reference phase are labelled along the axis, no drawn label leaves the
axis or overlaps another, and the peak is marked with a label inside the plot."""
from __future__ import annotations

from dataclasses import replace

import pytest
from drawn_text import axis_texts
from test_sweep_grpo import GRPO

from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan, check_combination

# 16 x 8 = 128 sequences decoded together: the KV cache makes generate the peak
GRPO_GENERATE_PEAK = replace(GRPO, grad_accum=16, completion_len=2048)
DPO = replace(GRPO, algorithm="dpo", reference="copy", completion_len=256, num_generations=8, batch_size=2,
              seq_len=2048, prompt_len=1024, grad_accum=8)


def _drawn_labels(view):
    axis = view.plot.getPlotItem().getAxis("bottom")
    return axis.boundingRect(), [(rect, text) for rect, _, text in axis_texts(axis)]


@pytest.mark.parametrize("size", [None, (1280, 720)], ids=["default", "1280x720"])
@pytest.mark.parametrize("plan, expected", [
    (GRPO, ("load", "generate", "reference", "forward →", "backward", "optim", "zero grad")),
    (GRPO_GENERATE_PEAK, ("generate", "reference", "forward →", "backward", "optim")),
    (DPO, ("load", "forward →", "reference", "backward", "optim", "zero grad"))],
    ids=["grpo", "grpo-generate-peak", "dpo"])
def test_algorithm_stages_are_labelled_and_none_is_clipped(open_window, plan, expected, size):
    w = open_window(plan, size=size, tab="timeline_view")
    if size is None:
        assert (w.width(), w.height()) == (1600, 1000)   # MainWindow's default size
    view = w.timeline_view
    est = estimate(check_combination(plan))
    bounds, labels = _drawn_labels(view)
    texts = [text for _, text in labels]
    for word in expected:   # each stage named by one drawn label, in step order
        assert sum(word in text for text in texts) == 1, (word, texts)
    order = [next(i for i, t in enumerate(texts) if word in t) for word in expected]
    assert order == sorted(order), texts
    assert all("·" not in text for text in texts), texts   # nothing had to be merged
    rects = [rect for rect, _ in labels]
    assert all(bounds.left() - 1 <= r.left() and r.right() <= bounds.right() + 1 for r in rects), (bounds, labels)
    assert all(a.right() <= b.left() for a, b in zip(rects, rects[1:])), labels   # no two overlap
    # the peak: a line at its phase, a label naming it, inside the plot
    peak = view.peak_line
    assert est.memory.phases[int(peak.value())] == est.memory.peak_phase
    assert peak.label.toPlainText() == f"peak: {est.memory.peak_phase}"
    box = view.plot.getPlotItem().getViewBox().sceneBoundingRect()
    assert box.contains(peak.label.sceneBoundingRect()), (peak.label.sceneBoundingRect(), box)
    if plan is GRPO_GENERATE_PEAK:
        assert est.memory.peak_phase == "generate"
    if plan.algorithm == "dpo":
        phases = est.memory.phases
        assert phases.index("policy log-probs") < phases.index("reference log-probs") < phases.index("backward L1")


MIN_LABEL_GAP_PX = 12   # at 6 px (a word space) neighbours read as one phrase ("optim zero grad")
SFT = Plan(model="llama-3.1-8b", method="lora", batch_size=4, seq_len=2048, grad_accum=4, grad_ckpt=True,
           gpu="h100-80gb-sxm")


@pytest.mark.parametrize("size", [None, (1280, 720)], ids=["default", "1280x720"])
@pytest.mark.parametrize("plan", [GRPO, GRPO_GENERATE_PEAK, DPO, SFT], ids=["grpo", "grpo-generate-peak", "dpo", "sft"])
def test_neighbouring_stage_labels_keep_a_gap(open_window, plan, size):
    """Adjacent stage labels as drawn (their text rects) stand at least a few px apart: under Xvfb
    "optim" and "zero grad" sat almost touching at 1600 x 1000 and 1280 x 720."""
    view = open_window(plan, size=size, tab="timeline_view").timeline_view
    _, labels = _drawn_labels(view)
    assert len(labels) >= 4, labels
    gaps = [b.left() - a.right() for (a, _), (b, _) in zip(labels, labels[1:])]
    assert min(gaps) >= MIN_LABEL_GAP_PX, list(zip(gaps, [t for _, t in labels[1:]]))
