"""`napkin search`: the plan-v1 contract's fields, figures equal to `napkin estimate` of each
returned plan, the same training, and bad arguments -> one line, exit 2."""
import json

import pytest

from napkin_gui.cli import main
from napkin_gui.core.plan import plan_from_dict
from napkin_gui.core.search import same_training
from napkin_gui.core.search_space import global_batch

ENTRY = {"plan", "fits", "step_seconds", "tokens_per_second", "hours", "cost_usd", "device_used_bytes",
         "capacity_bytes", "changes"}
PLAN = {"model": "llama-3.2-1b", "method": "lora", "batch_size": 2, "grad_accum": 2, "seq_len": 1024,
        "grad_ckpt": True, "gpu": "rtx-3080-10gb", "dataset_tokens": 1e7}
CARDS = "rtx-3080-10gb,rtx-4090,a100-80gb-sxm"


def _plan_file(tmp_path, **fields):
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps({**PLAN, **fields}))
    return str(path)


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("objective", ["fastest", "cheapest"])
def test_every_figure_equals_napkin_estimate_of_the_returned_plan(tmp_path, capsys, objective):
    code, out, err = _run(capsys, "search", _plan_file(tmp_path), "--objective", objective, "--gpus", CARDS,
                          "--max-gpus", "2", "--top", "4", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"objective", "baseline", "results"} and data["objective"] == objective
    assert len(data["results"]) == 4
    base = plan_from_dict(PLAN)
    for i, entry in enumerate([data["baseline"], *data["results"]]):
        assert ENTRY <= set(entry)
        plan_path = tmp_path / f"r{i}.napkin.json"
        plan_path.write_text(json.dumps(entry["plan"]))
        code, out, _ = _run(capsys, "estimate", str(plan_path), "--json")
        assert code == 0
        est = json.loads(out)
        assert entry["fits"] == est["memory"]["fits"]
        assert entry["step_seconds"] == est["time"]["step_seconds"]
        assert entry["tokens_per_second"] == est["time"]["tokens_per_second_total"]
        assert entry["device_used_bytes"] == est["memory"]["device_used_bytes"]
        assert entry["capacity_bytes"] == est["memory"]["capacity_bytes"]
        assert entry["hours"] == est["total"]["hours"] and entry["cost_usd"] == est["total"]["cost_usd"]
        plan = plan_from_dict(entry["plan"])
        assert same_training(base, plan) and global_batch(plan) == global_batch(base)
        assert plan.gpu in CARDS.split(",") and plan.n_gpus <= 2
    results = data["results"]
    assert all(r["fits"] for r in results)
    key = "tokens_per_second" if objective == "fastest" else "cost_usd"
    values = [r[key] for r in results]
    assert values == sorted(values, reverse=objective == "fastest")
    if objective == "fastest":
        assert values[0] >= data["baseline"]["tokens_per_second"]
    else:
        assert values[0] <= data["baseline"]["cost_usd"]
    # no two results alike: each differs from the one before in speed or cost
    assert len({(round(r["tokens_per_second"], 6), round(r["cost_usd"], 9)) for r in results}) == len(results)


def test_readable_table_shows_the_plan_the_best_and_what_changes(tmp_path, capsys):
    code, out, _ = _run(capsys, "search", _plan_file(tmp_path), "--gpus", CARDS, "--max-gpus", "2", "--top", "3")
    assert code == 0
    lines = out.splitlines()
    assert "(your plan)" in out and "objective fastest" in lines[0]
    assert any(line.lstrip().startswith("1 ") for line in lines)
    assert "->" in out   # each result's changes, field by field


def test_gpus_and_max_gpus_limit_the_space(tmp_path, capsys):
    code, out, _ = _run(capsys, "search", _plan_file(tmp_path), "--gpus", "rtx-4090", "--max-gpus", "1",
                        "--top", "20", "--json")
    assert code == 0
    results = json.loads(out)["results"]
    assert results and all(r["plan"]["gpu"] == "rtx-4090" and r["plan"]["n_gpus"] == 1 for r in results)


def test_allow_seq_len_keeps_the_tokens_per_step(tmp_path, capsys):
    code, out, _ = _run(capsys, "search", _plan_file(tmp_path), "--gpus", "rtx-4090", "--max-gpus", "1",
                        "--allow", "seq_len", "--top", "50", "--json")
    assert code == 0
    for r in json.loads(out)["results"]:
        p = r["plan"]
        assert p["seq_len"] * p["batch_size"] * p["grad_accum"] * p["n_gpus"] == 1024 * 4
        assert p["method"] == "lora"


@pytest.mark.parametrize("args, field", [
    (["--objective", "slowest"], "objective"), (["--gpus", "no-such-card"], "gpus"), (["--gpus", ","], "gpus"),
    (["--max-gpus", "0"], "max-gpus"), (["--max-gpus", "two"], "max-gpus"), (["--top", "0"], "top"),
    (["--top", "1.5"], "top"), (["--allow", "precision"], "allow"), (["--frobnicate"], "unrecognized")])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, args, field):
    code, out, err = _run(capsys, "search", _plan_file(tmp_path), *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and field in err and "Traceback" not in err


def test_bad_plan_one_line_exit_2(tmp_path, capsys):
    code, _, err = _run(capsys, "search", _plan_file(tmp_path, batch_size=0))
    assert code == 2 and "batch_size" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "search", str(tmp_path / "missing.napkin.json"))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_nothing_fits_says_so(tmp_path, capsys):
    """8B full fine-tuning of 64k-token sequences on one 10 GB card: no plan of the space fits
    (even ZeRO-3 with parameters on the CPU and the block inputs in host RAM keeps one block's
    recompute on the card; at 32k that plan fits since activation offloading is modelled)."""
    path = _plan_file(tmp_path, model="llama-3.1-8b", method="full", batch_size=1, grad_accum=1, seq_len=65536)
    code, out, _ = _run(capsys, "search", path, "--gpus", "rtx-3080-10gb", "--max-gpus", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["results"] == [] and data["baseline"]["fits"] is False
    code, out, _ = _run(capsys, "search", path, "--gpus", "rtx-3080-10gb", "--max-gpus", "1")
    assert code == 0 and "nothing in the space fits" in out
