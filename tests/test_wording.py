"""Issue 12.5: what the CLI, the advice, the report and the views say, in one set of words.

Each test failed on the code before: "fits on a 43 GB card", "trainable 7,615.6 M" beside
"7.62 B", "host RAM" with no "per GPU", unexplained advice colours and "+0.4 GiB" on a card
swap, 0.00 GiB rows with a parameter count as their formula, "1 GPUs" and "(...pricing))" in
the PDF.
"""
import dataclasses
import html
import re
from pathlib import Path

import pytest

from napkin_gui import palette, units
from napkin_gui.cli import format_estimate
from napkin_gui.core import advise
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import Plan, load_plan

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
QLORA_70B = load_plan(EXAMPLES / "llama-3.1-70b-qlora-2x4090.napkin.json")
LORA_8B = load_plan(EXAMPLES / "llama-3.1-8b-lora.napkin.json")
FULL_7B = load_plan(EXAMPLES / "qwen2.5-7b-full.napkin.json")


def test_smallest_card_is_in_gib_like_every_memory_figure():
    text = advise._smallest_card(dataclasses.replace(FULL_7B, method="lora", n_gpus=1, sharding="none"))
    assert re.fullmatch(r"fits on a \d+ GiB card \(.+\)", text), text
    assert " GB card" not in text


def test_parameter_counts_read_in_one_scale():
    est = estimate(FULL_7B)
    line = format_estimate(est).splitlines()[1]
    assert line == f"params {units.params(est.total_params)}, trainable {units.params(est.trainable_params)}"
    assert "7,6" not in line and line.count(" B") == 2  # 'trainable 7,615.6 M' beside '7.62 B'


def test_host_ram_is_labelled_per_gpu_with_the_machine_total():
    est = estimate(QLORA_70B)
    assert est.memory.host_bytes > 0 and QLORA_70B.n_gpus == 2
    line = next(x for x in format_estimate(est).splitlines() if x.strip().startswith("host RAM"))
    assert line.split()[:4] == ["host", "RAM", "per", "GPU"]
    assert f"x 2 GPUs = {units.gib(2 * est.memory.host_bytes)} of CPU RAM" in line
    from napkin_gui.report.text import component_rows
    label, value, note = next(r for r in component_rows(est.memory, QLORA_70B.n_gpus) if r[0].startswith("host"))
    assert label == "host RAM per GPU" and "x 2 GPUs" in note


def test_zero_rows_say_why_they_are_zero():
    """The offloaded 70B QLoRA printed 'weights 0.00 GiB  68,451,041,280 linear params x NF4 ...'."""
    for plan in (QLORA_70B, dataclasses.replace(LORA_8B, method="full", optimizer="paged-adamw-8bit", n_gpus=8,
                                                sharding="fsdp")):
        for comp in estimate(plan).memory.components:
            if comp.bytes == 0:
                assert comp.formula.startswith(("0 ", "no ")), (comp.name, comp.formula)
    weights = next(c for c in estimate(QLORA_70B).memory.components if c.name == "weights")
    assert weights.formula.startswith("0 on the GPU: offloaded to host RAM") and "NF4" in weights.formula


def test_a_card_swap_says_what_it_uses_of_that_card():
    """'fastest card that fits: NVIDIA B200 180GB: +0.4 GiB' (more memory on a bigger card?)."""
    swap = next(a for a in advise.advise(LORA_8B) if a.title.startswith("fastest card"))
    after = estimate(swap.plan)
    assert f"{units.gib(after.memory.device_used_bytes, 1)} of its {units.gib(after.memory.capacity_bytes, 1)} per GPU" \
        in swap.reason
    assert "CUDA context" in swap.reason
    same_card = next(a for a in advise.advise(LORA_8B) if a.title.startswith("largest batch"))
    assert f"{units.gib_delta(same_card.memory_delta_bytes)} per GPU" in same_card.reason


def test_advice_colours_are_explained(qtbot):
    from napkin_gui.ui.advice_panel import AdvicePanel
    panel = AdvicePanel()
    qtbot.addWidget(panel)
    title = panel.title.text()
    assert palette.FITS in title and "fits after the change" in title


@pytest.mark.parametrize("n_gpus", [1, 2])
def test_report_has_no_1_gpus_and_no_double_parenthesis(n_gpus):
    from napkin_gui.report.data import collect_report_data
    from napkin_gui.report.html import report_html
    page = report_html(collect_report_data(dataclasses.replace(QLORA_70B, n_gpus=n_gpus)))
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "1 GPUs" not in text
    assert not re.search(r"\)\s*\)", text), re.search(r".{60}\)\s*\)", text)
    assert "Price: RunPod Community Cloud on-demand list price (runpod.io/pricing)" in text


def test_one_gpu_time_term_names_no_collectives():
    pcie = next(t for t in estimate(Plan(model="llama-3.2-1b")).time.terms if t.name == "pcie")
    assert pcie.formula == "CPU offload traffic (one GPU: no collectives)"


@pytest.mark.parametrize("framework, dtype", [("transformers", "fp32"), ("torchtune", "bf16"),
                                              ("litgpt", "bf16"), ("unsloth", "fp32")])
def test_adapter_formula_names_the_dtype_its_bytes_use(framework, dtype):
    """The adapters row said 'fp32' for every framework, while torchtune and litgpt (bf16-true)
    keep adapters in the model's dtype (core/memory/lora.py adapter_dtype) and their bytes did."""
    plan = dataclasses.replace(LORA_8B, framework=framework, loss="standard", precision="bf16",
                               grad_ckpt=True)
    est = estimate(plan)
    adapters = next(c for c in est.memory.components if c.name == "adapters")
    assert adapters.formula.endswith(f"per target, {dtype}")
    assert adapters.bytes == {"fp32": 4, "bf16": 2}[dtype] * est.trainable_params
