"""Hostile and careless input (issue 12 items 6, 7, 8, 12, 13): special files, huge expert
counts, JSON that crashes a reader, paths out of the model folder, echoed escapes.

Each case that hung or grew memory before runs in a subprocess with a timeout and a memory
limit, so a regression fails the test instead of hanging the suite.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.plan import load_plan, plan_from_dict

POSIX = sys.platform != "win32"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
ADDRESS_SPACE_BYTES = 3 * 2**30  # /dev/zero read whole would pass this within seconds


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def napkin(*argv: str, timeout: float = 60, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """`napkin ARGV` in a child with a memory cap; TimeoutExpired is a hang."""
    return subprocess.run([sys.executable, "-m", "napkin_gui.cli", *argv], capture_output=True,
                          timeout=timeout, input=stdin, preexec_fn=_limit_memory if POSIX else None)


def write_plan(tmp_path, name="p.napkin.json", **fields):
    path = tmp_path / name
    path.write_text(json.dumps({"model": "llama-3.2-1b", **fields}))
    return path


# ---------------------------------------------------------------- item 6: special files
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_as_the_model_is_refused_at_once(tmp_path):
    done = napkin("estimate", str(write_plan(tmp_path, model="/dev/zero")), timeout=30)
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert err.startswith("napkin: model:") and "not a regular file" in err and len(err.splitlines()) == 1


@needs_fifo
def test_fifo_as_the_model_or_the_plan_never_hangs(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = napkin("estimate", str(write_plan(tmp_path, model=str(fifo))), timeout=30)
    assert done.returncode == 2 and b"model:" in done.stderr and b"not a regular file" in done.stderr
    done = napkin("estimate", str(fifo), timeout=30)
    assert done.returncode == 2 and done.stderr.startswith(b"napkin: plan:"), done.stderr


@needs_fifo
def test_fifo_config_json_in_a_model_folder(tmp_path):
    os.mkfifo(tmp_path / "config.json")
    done = napkin("estimate", str(write_plan(tmp_path, model=str(tmp_path))), timeout=30)
    assert done.returncode == 2 and b"model:" in done.stderr


@needs_fifo
def test_fifo_or_device_named_as_a_safetensors_shard(tmp_path):
    from napkin_gui.core.safetensors_header import read_header
    os.mkfifo(tmp_path / "model.safetensors")
    started = time.perf_counter()
    with pytest.raises(PlanError, match="not a regular file"):
        read_header(tmp_path / "model.safetensors")
    assert time.perf_counter() - started < 5
    if os.path.exists("/dev/zero"):
        with pytest.raises(PlanError, match="not a regular file"):
            read_header("/dev/zero")


def test_plan_files_over_the_cap_are_refused_without_reading(tmp_path):
    from napkin_gui.core.files import MAX_PLAN_BYTES
    path = tmp_path / "big.napkin.json"
    with open(path, "wb") as fh:
        fh.truncate(MAX_PLAN_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(PlanError, match="larger than"):
        load_plan(path)


@needs_fifo
def test_a_session_holding_a_fifo_or_dev_zero_plan_still_opens_the_app(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    script = f"""
import json, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from napkin_gui.ui.settings import app_settings
from napkin_gui.ui.main_window import MainWindow
for model in ({str(fifo)!r}, "/dev/zero"):
    s = app_settings()
    s.setValue("session/plan", json.dumps({{"model": model}}))
    s.setValue("session/path", {str(fifo)!r})
    s.sync()
    w = MainWindow(background=False)
    w.controller.flush()
    app.processEvents()
    assert w.path is None, w.path
    print("opened", model, w.controller.plan.model)
    w.persist = False
    w.controller.undo_stack.setClean()  # no "save changes?" prompt on close
    w.close()
"""
    env = {**os.environ, "NAPKIN_CONFIG_DIR": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=90, env=env,
                          preexec_fn=_limit_memory if POSIX else None)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().count("opened") == 2


# ---------------------------------------------------------------- item 7: huge expert counts
MANY_EXPERTS = 5_000_000


def tiny_moe(experts: int) -> dict:
    return {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
            "num_local_experts": experts, "num_experts_per_tok": 2}


@pytest.mark.parametrize("method,optimizer", [("full", "adamw-8bit"), ("full", "adafactor"),
                                              ("lora", "paged-adamw-8bit"), ("full", "adamw")])
def test_experts_are_counted_not_listed(tmp_path, method, optimizer):
    from napkin_gui.core.estimate import estimate
    from napkin_gui.core.hf_config import model_spec_from_config
    from napkin_gui.core.memory import model_state as ms
    plan = plan_from_dict({"model": "x", "method": method, "optimizer": optimizer})
    few, many = (model_spec_from_config(tiny_moe(n), "moe") for n in (8, MANY_EXPERTS))
    # the tensor list does not grow with the expert count ...
    assert len(ms._trainable_tensor_shapes(many, plan)) == len(ms._trainable_tensor_shapes(few, plan)) < 64
    # ... the whole estimate stays fast and small ...
    (tmp_path / "config.json").write_text(json.dumps(tiny_moe(MANY_EXPERTS)))
    tracemalloc.start()
    started = time.perf_counter()
    est = estimate(plan_from_dict({"model": str(tmp_path), "method": method, "optimizer": optimizer}))
    seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 5 and peak < 50 * 2**20, (seconds, peak)
    # ... and the optimizer states still scale with the experts (counted, not dropped)
    states = {n: ms.model_state(model_spec_from_config(tiny_moe(n), "moe"), plan).optimizer_state_bytes
              for n in (8, 16)}
    assert est.memory.peak_allocated_bytes > 0
    if optimizer != "adamw" or method == "full":
        assert states[16] > states[8]


def test_counted_shapes_give_the_listed_bytes():
    """adam8bit / Adafactor over (shape, count) equal the same shapes listed one by one."""
    from napkin_gui.core.memory import optimizer
    shapes, counts = [(64, 128), (7,), (4096, 2)], [3, 5, 2]
    listed = [s for s, c in zip(shapes, counts) for _ in range(c)]
    numels = [a * (b[0] if b else 1) for a, *b in shapes]
    assert optimizer.adam8bit_state_bytes(numels, counts) == optimizer.adam8bit_state_bytes(
        [n for n, c in zip(numels, counts) for _ in range(c)])
    assert optimizer.adafactor_state_bytes(shapes, "fp32", counts) == optimizer.adafactor_state_bytes(listed, "fp32")


# ---------------------------------------------------------------- item 8: JSON that crashes readers
BAD_LINES = {
    "bad utf-8": b'{"model": "llama-3.2-1b", "gpu": "\xff\xfe"}',
    "deep nesting": b'{"model": "llama-3.2-1b", "lora_targets": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "5000-digit integer": b'{"model": "llama-3.2-1b", "batch_size": ' + b"9" * 5000 + b"}",
}


def test_jsonl_bad_lines_get_their_own_error_and_the_stream_goes_on(tmp_path):
    good = json.dumps({"model": "llama-3.2-1b"}).encode()
    path = tmp_path / "plans.jsonl"
    path.write_bytes(b"\n".join([good, *BAD_LINES.values(), good]) + b"\n")
    done = napkin("estimate", "--jsonl", str(path))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(rows) == 2 + len(BAD_LINES)
    assert "memory" in rows[0] and "memory" in rows[-1]
    for n, row in enumerate(rows[1:-1], start=2):
        assert set(row) == {"error"} and row["error"].startswith(f"line {n}:"), row


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_those_lines_as_single_files_are_bad_input(tmp_path, case):
    path = tmp_path / "p.napkin.json"
    path.write_bytes(BAD_LINES[case])
    done = napkin("estimate", str(path))
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert err.startswith("napkin: plan:") and "internal error" not in err and len(err.splitlines()) == 1
    with pytest.raises(PlanError):
        load_plan(path)


def test_jsonl_line_over_the_cap_is_one_error(tmp_path):
    from napkin_gui.cli import MAX_JSONL_LINE_BYTES
    path = tmp_path / "plans.jsonl"
    good = json.dumps({"model": "llama-3.2-1b"}).encode()
    path.write_bytes(b'{"model": "' + b"x" * (MAX_JSONL_LINE_BYTES + 10) + b'"}\n' + good + b"\n")
    done = napkin("estimate", "--jsonl", str(path))
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert "longer than" in rows[0]["error"] and "memory" in rows[1]


# ---------------------------------------------------------------- item 12: index paths
@pytest.mark.parametrize("shard", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.safetensors",
                                   "..\\..\\outside.safetensors"])
def test_index_weight_map_stays_inside_the_model_folder(tmp_path, shard):
    from napkin_gui.core.safetensors_header import folder_tensors
    from tests.test_safetensors_header import write_safetensors
    folder = tmp_path / "a" / "b" / "model"
    folder.mkdir(parents=True)
    # a real safetensors file out there: a reader that follows the name would count it
    write_safetensors(tmp_path / "outside.safetensors", {"w": ("F32", (10, 10))})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": shard}}))
    with pytest.raises(PlanError, match="outside the model folder"):
        folder_tensors(folder)


def test_hf_cache_symlinks_into_blobs_still_work(tmp_path):
    """Hub snapshots link each file to ../../blobs/<hash>: the names stay inside, the links may not."""
    from napkin_gui.core.safetensors_header import folder_tensors
    from tests.test_safetensors_header import write_safetensors
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
    blobs.mkdir()
    snap.mkdir(parents=True)
    write_safetensors(blobs / "1234", {"w": ("F32", (10, 10))})
    (snap / "model-00001-of-00001.safetensors").symlink_to("../../blobs/1234")
    (snap / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    assert folder_tensors(snap) == {"w": ("F32", (10, 10))}


# ---------------------------------------------------------------- item 13: echoed names and values
def test_unknown_keys_are_escaped_cut_and_all_reported():
    evil = "\x1b[2J\x1b[Hnapkin: everything fits"
    with pytest.raises(PlanError) as err:
        plan_from_dict({"model": "llama-3.2-1b", evil: 1, "batchsize": 2, "lr": 1, "x" * 1_000_000: 0})
    message = str(err.value)
    assert "\x1b" not in message and "\\x1b" in message
    assert "batchsize: unknown field (did you mean batch_size?)" in message
    assert "lr: unknown field" in message
    assert len(message) < 2000 and "\n" not in message


def test_a_one_megabyte_value_gives_a_short_line_fast():
    started = time.perf_counter()
    for field in ("method", "gpu", "model", "precision"):
        with pytest.raises(PlanError) as err:
            from napkin_gui.core.estimate import estimate
            estimate(plan_from_dict({"model": "llama-3.2-1b", field: "\x1b[31m" + "y" * 1_000_000}))
        message = str(err.value)
        assert len(message) < 1000 and "\x1b" not in message, message[:200]
    assert time.perf_counter() - started < 2


def test_duplicate_keys_are_an_error(tmp_path):
    path = tmp_path / "p.napkin.json"
    path.write_text('{"model": "llama-3.2-1b", "batch_size": 1, "batch_size": 8}')
    with pytest.raises(PlanError, match="batch_size: given twice"):
        load_plan(path)
    done = napkin("estimate", "--jsonl", "-", stdin=b'{"model": "llama-3.2-1b", "model": "llama-3.1-8b"}\n')
    assert "given twice" in json.loads(done.stdout)["error"]
