"""`napkin search` and `napkin report` on the GRPO example plan: every plan printed keeps the
algorithm and its fields (algorithm, reference, prompt_len, completion_len, num_generations,
generation), TRL accepts it (generation batch divisible by num_generations), and the text says
what is trained."""
import json
from pathlib import Path

from napkin_gui.cli import main
from napkin_gui.core.plan import check_combination, load_plan, plan_from_dict

EXAMPLE = Path(__file__).resolve().parents[1] / "resources" / "examples" / "qwen2.5-1.5b-grpo-lora.napkin.json"
KEPT = ("algorithm", "reference", "prompt_len", "completion_len", "num_generations", "generation")
CARDS = "rtx-4090,a100-80gb-sxm"


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_search_keeps_the_grpo_fields(capsys):
    base = load_plan(EXAMPLE)
    code, out, err = _run(capsys, "search", str(EXAMPLE), "--gpus", CARDS, "--max-gpus", "2", "--top", "4", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["results"]) == 4
    for entry in (data["baseline"], *data["results"]):
        plan = check_combination(plan_from_dict(entry["plan"]))   # TRL would accept it
        assert {f: getattr(plan, f) for f in KEPT} == {f: getattr(base, f) for f in KEPT}
        assert (plan.batch_size * plan.grad_accum * plan.n_gpus) % plan.num_generations == 0
    code, out, err = _run(capsys, "search", str(EXAMPLE), "--gpus", CARDS, "--max-gpus", "2", "--top", "2")
    assert code == 0, err
    head = out.splitlines()[0]
    assert "grpo (reference adapter-off, 8 generations of 1024, transformers)" in head
    assert "global batch 16 × (256 + 1024)" in head


def test_report_carries_the_grpo_fields(qapp, tmp_path, capsys):
    """(qapp: the report paints in the tests' QApplication, not a QGuiApplication of its own that
    would stop a later Qt test in this process from making one)"""
    pypdf = __import__("pytest").importorskip("pypdf")
    out = tmp_path / "grpo.pdf"
    code, _, err = _run(capsys, "report", str(EXAMPLE), "-o", str(out))
    assert code == 0, err
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(out).pages)
    words = text.split()
    for field in KEPT:
        assert field in words, field
    assert "GRPO" in words and "generate" in words
    assert "(256 + 1024)" in " ".join(words)   # the subtitle's tokens per sequence: prompt + completion
    # what fits the card: GRPO's own lengths (core.frontier), not a seq_len it never reads
    from napkin_gui.report.extras import best_plans
    _, _, note = best_plans(load_plan(EXAMPLE))
    assert note.endswith("micro-batch up to 48, completions up to 7,752 tokens at micro-batch 8, "
                         "up to 50 completions per prompt."), note


def test_advise_header_prints_the_tokens_grpo_reads():
    """`napkin advise`'s header: GRPO's prompt + completion per sequence, not the seq_len it never reads."""
    from napkin_gui.cli_hardware import format_advice
    plan = load_plan(EXAMPLE)
    header = format_advice((), plan, True, "summary").splitlines()[0]
    assert f"× ({plan.prompt_len} + {plan.completion_len}) on" in header
    assert f"× {plan.seq_len} on" not in header


def test_nothing_fits_names_the_smallest_micro_batch_trl_accepts_and_grpos_tokens():
    """fit_summary said 'not even micro-batch 1 of 1280 tokens' for a GRPO plan: GRPO reads
    prompt + completion, and with 8 generations on one GPU without accumulation TRL's smallest
    micro-batch is 8 (the generation batch divides by num_generations)."""
    import dataclasses
    from napkin_gui.core.advise import fit_summary
    plan = dataclasses.replace(load_plan(EXAMPLE), model="llama-3.1-70b", grad_accum=1, completion_len=8192)
    line = fit_summary(check_combination(plan))
    assert line.startswith("nothing fits") and f"micro-batch 8 of ({plan.prompt_len} + 8192) tokens" in line
    assert "micro-batch 1 of" not in line and f"{plan.seq_len} tokens" not in line
