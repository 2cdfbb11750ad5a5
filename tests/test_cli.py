"""The `napkin` CLI: the estimate contract, jsonl streaming, and bad input -> one line, exit 2."""
import json
import random
import subprocess
import sys

import pytest

from napkin_gui.cli import main

CONTRACT_MEMORY = {"components", "peak_allocated_bytes", "peak_reserved_bytes", "device_used_bytes", "timeline",
                   "peak_phase", "fits"}
CONTRACT_TIME = {"step_seconds", "tokens_per_second", "bound"}


def write_plan(tmp_path, **fields):
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps({"model": "llama-3.2-1b", **fields}))
    return path


def run_main(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_estimate_json_has_the_contract_fields(tmp_path, capsys):
    code, out, _ = run_main(capsys, "estimate", str(write_plan(tmp_path, batch_size=2, dataset_tokens=1e7)), "--json")
    assert code == 0
    data = json.loads(out)
    assert CONTRACT_MEMORY <= set(data["memory"]) and CONTRACT_TIME <= set(data["time"])
    mem = data["memory"]
    assert max(p["allocated_bytes"] for p in mem["timeline"]) == mem["peak_allocated_bytes"]
    assert mem["peak_phase"] in [p["phase"] for p in mem["timeline"]]
    assert mem["peak_reserved_bytes"] >= mem["peak_allocated_bytes"]
    assert mem["device_used_bytes"] > mem["peak_reserved_bytes"]
    assert {"weights", "adapters", "gradients", "optimizer_states", "activations", "logits_loss"} <= set(mem["components"])
    assert data["total"]["hours"] > 0 and data["total"]["cost_usd"] > 0
    assert data["calibration"] is None


def test_estimate_human_table(tmp_path, capsys):
    code, out, _ = run_main(capsys, "estimate", str(write_plan(tmp_path)))
    assert code == 0
    assert "peak at:" in out and "activations" in out and "tokens/s" in out


def test_jsonl_keeps_order_and_reports_bad_lines(tmp_path, capsys):
    path = tmp_path / "plans.jsonl"
    path.write_text("\n".join([json.dumps({"model": "llama-3.2-1b", "batch_size": 1}), "{broken",
                               json.dumps({"model": "no-such-model"}),
                               json.dumps({"model": "llama-3.2-1b", "batch_size": 4})]) + "\n")
    code, out, _ = run_main(capsys, "estimate", "--jsonl", str(path))
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 4
    assert "error" in lines[1] and "error" in lines[2] and "model" in lines[2]["error"]
    assert lines[0]["plan"]["batch_size"] == 1 and lines[3]["plan"]["batch_size"] == 4


@pytest.mark.parametrize("fields, field", [
    ({"model": "no-such-model-xyz"}, "model"),
    ({"model": "llama-3.2-1b", "gpu": "rtx-9999"}, "gpu"),
    ({"model": "llama-3.2-1b", "batch_size": -1}, "batch_size"),
    ({"model": "llama-3.2-1b", "method": "qlora", "precision": "fp32"}, "precision"),
])
def test_bad_plans_exit_2_with_one_line(tmp_path, capsys, fields, field):
    path = tmp_path / "bad.napkin.json"
    path.write_text(json.dumps(fields))
    code, out, err = run_main(capsys, "estimate", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and field in err


def mutate(rng: random.Random) -> object:
    good = {"model": "llama-3.2-1b", "method": "lora", "batch_size": 2, "seq_len": 512, "gpu": "h100-80gb-sxm",
            "lora_targets": ["q_proj"], "optimizer": "adamw"}
    junk = [None, -1, 0, 1e308, "", "x" * 300, [], {}, True, 2.5, "../../etc/passwd", float("inf"), "\u2603"]
    plan = dict(good)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(good) + ["unknown_field", "epochs", "n_gpus", "sharding", "offload"])
        plan[key] = rng.choice(junk)
    return plan if rng.random() > 0.05 else rng.choice(junk)


def test_fuzzed_plans_never_traceback(tmp_path, capsys):
    rng = random.Random(1234)
    path = tmp_path / "fuzz.napkin.json"
    for _ in range(300):
        data = mutate(rng)
        try:
            path.write_text(json.dumps(data))
        except ValueError:
            continue
        code, out, err = run_main(capsys, "estimate", str(path), "--json")
        assert code in (0, 2), (data, err)
        if code == 2:
            assert err.count("\n") == 1 and "Traceback" not in err, (data, err)


def test_garbage_files_exit_2(tmp_path, capsys):
    for content in (b"", b"\xff\xfe\x00", b"{" * 5000, b"[]", b"null"):
        path = tmp_path / "g.json"
        path.write_bytes(content)
        code, _, err = run_main(capsys, "estimate", str(path))
        assert code == 2 and err.count("\n") == 1


def test_usage_errors_are_one_line(capsys):
    code, _, err = run_main(capsys, "estimate", "--nope")
    assert code == 2 and err.count("\n") == 1
    code, _, err = run_main(capsys, "frobnicate")
    assert code == 2 and err.count("\n") == 1


def test_console_script_runs_without_traceback(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{\"model\": 5}")
    proc = subprocess.run([sys.executable, "-m", "napkin_gui.cli", "estimate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
