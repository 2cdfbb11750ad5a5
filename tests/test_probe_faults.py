"""Issue 12 item 14: the probe's fault paths, faked on the CPU (torch monkeypatched).

Before: a CUDA out-of-memory mid-trial sent the handler into torch.cuda.max_memory_allocated /
get_device_properties, which fail on a CPU build (and after a CUDA error), so the status line
read "trial failed: ... Torch not compiled with CUDA enabled"; a CUDA error's cleanup raised
again from run_trial's finally, so run_trial (documented "never raises") raised.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from napkin_gui.probe import runner, trial as trial_module  # noqa: E402
from napkin_gui.probe.fake_nvml import FakeNvml  # noqa: E402
from napkin_gui.probe.nvml import NvmlBackend  # noqa: E402

from test_probe_runner import TINY  # noqa: E402
from test_probe_trial import LAYERS, SPEC, plan, trial  # noqa: E402

ILLEGAL = "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be asynchronously reported"


def fail_at(monkeypatch, error, depth=2, step=1):
    """Make the training step at `depth` layers, step `step` (0 = warm-up) raise `error`."""
    real = trial_module._train_step
    seen = {"steps": 0}

    def step_or_fail(torch_, plan_, model, *args, **kwargs):
        here = model.config.num_hidden_layers == depth
        if here:
            if seen["steps"] == step:
                raise error
            seen["steps"] += 1
        return real(torch_, plan_, model, *args, **kwargs)
    monkeypatch.setattr(trial_module, "_train_step", step_or_fail)


def cuda_statistics_fail(monkeypatch):
    def no_cuda(*_a, **_k):
        raise AssertionError("Torch not compiled with CUDA enabled")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", no_cuda)
    monkeypatch.setattr(torch.cuda, "get_device_properties", no_cuda)


def test_out_of_memory_mid_trial_when_the_statistics_fail_too(monkeypatch):
    fail_at(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    cuda_statistics_fail(monkeypatch)
    out = trial(plan())
    assert out.record is None
    assert out.status == (f"trial ran out of GPU memory with 2 of {LAYERS} decoder layers: "
                          "the plan does not fit this GPU even at reduced depth")
    assert "not compiled" not in out.status


def test_out_of_memory_reports_the_peak_when_torch_can(monkeypatch):
    fail_at(monkeypatch, torch.OutOfMemoryError("CUDA out of memory."), depth=1, step=0)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev=None: 23 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda dev=None: SimpleNamespace(total_memory=24 * 2**30))
    out = trial(plan())
    assert out.status.startswith(f"trial ran out of GPU memory with 1 of {LAYERS} decoder layers "
                                 "(peak 23.0 of 24.0 GiB)")


def sticky_cuda(monkeypatch):
    """After a CUDA error every CUDA call fails: cleanup included."""
    def broken(*_a, **_k):
        raise torch.AcceleratorError(ILLEGAL)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", broken)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", broken)


def test_cuda_error_mid_trial_is_one_status_line_and_never_raises(monkeypatch):
    fail_at(monkeypatch, torch.AcceleratorError(ILLEGAL), depth=2, step=2)
    sticky_cuda(monkeypatch)
    out = trial(plan())  # before: empty_cache in run_trial's finally raised out of it
    assert out.record is None
    assert out.status == (f"trial hit a CUDA error with 2 of {LAYERS} decoder layers: CUDA error: an illegal "
                          "memory access was encountered; restart napkin before probing again")


def test_cuda_error_as_a_plain_runtime_error(monkeypatch):
    """torch before 2.8 raised CUDA errors as RuntimeError("CUDA error: ...")."""
    fail_at(monkeypatch, RuntimeError(ILLEGAL), depth=1, step=0)
    out = trial(plan())
    assert out.status.startswith(f"trial hit a CUDA error with 1 of {LAYERS} decoder layers: CUDA error: ")


def test_other_failures_keep_their_type(monkeypatch):
    fail_at(monkeypatch, ValueError("shapes do not match"), depth=1, step=0)
    assert trial(plan()).status == "trial failed: ValueError: shapes do not match"


def test_the_probe_status_line_says_what_happened(monkeypatch):
    fail_at(monkeypatch, torch.OutOfMemoryError("CUDA out of memory."), depth=2, step=1)
    cuda_statistics_fail(monkeypatch)
    result = runner.run_probe(plan(), device="cpu", nvml_backend=NvmlBackend(FakeNvml(init_error="LibraryNotFound")),
                              bench_sizes=TINY, trial_layers=(1, 2), model_spec=SPEC)
    assert result.status == ("CPU self-test done (not a GPU calibration); trial ran out of GPU memory with "
                             f"2 of {LAYERS} decoder layers: the plan does not fit this GPU even at reduced depth")
    assert result.trial is not None and not result.trial.ok
    assert result.trial.status in result.profile.notes


def test_napkin_probe_prints_the_fault(monkeypatch, tmp_path, capsys):
    import json
    from napkin_gui.cli import main
    fail_at(monkeypatch, torch.AcceleratorError(ILLEGAL), depth=1, step=0)
    sticky_cuda(monkeypatch)
    monkeypatch.setattr(runner, "NvmlBackend", lambda: NvmlBackend(FakeNvml(init_error="LibraryNotFound")))
    monkeypatch.setattr("napkin_gui.probe.command._model_spec", lambda _plan: SPEC)
    monkeypatch.setattr(runner, "run_benchmarks", _tiny_benchmarks(runner.run_benchmarks))
    path = tmp_path / "p.napkin.json"
    path.write_text(json.dumps({"model": "tiny-llama", "batch_size": 2, "seq_len": 16, "precision": "fp32"}))
    code = main(["probe", "--trial", str(path), "--cpu", "--layers", "1,2", "--json"])
    out = capsys.readouterr().out
    data = json.loads(out)
    assert code == 0 and data["trial"]["status"].startswith("trial hit a CUDA error with 1 of ")


def _tiny_benchmarks(real):
    def run(device, sizes=None, *args, **kwargs):
        return real(device, TINY, *args, **kwargs)
    return run
