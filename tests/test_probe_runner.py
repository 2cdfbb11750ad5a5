"""run_probe and `napkin probe` without a GPU: fake NVML, CPU self-test, profile commands."""
import json
from types import SimpleNamespace

import pytest

from napkin_gui.core import calibration as cal
from napkin_gui.probe import runner
from napkin_gui.probe.benchmarks import BenchSizes
from napkin_gui.probe.fake_nvml import FakeGpu, FakeNvml
from napkin_gui.probe.nvml import NvmlBackend
from napkin_gui.probe.command import probe_command
from napkin_gui.probe.runner import run_probe

NO_DRIVER = "No NVIDIA driver found (NVML Shared Library Not Found) — estimates use the catalog"
TINY = BenchSizes(matmul_shapes=((32, 32, 32),), dtypes=("fp32",), copy_bytes=2**16, host_bytes=0,
                  launch_kernels=10, budget_seconds=0.005)
CONFIG = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=2, num_key_value_heads=1, vocab_size=128, max_position_embeddings=64)


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPKIN_CONFIG_DIR", str(tmp_path / "cfg"))


@pytest.fixture
def no_driver(monkeypatch):
    monkeypatch.setattr(runner, "NvmlBackend", lambda: NvmlBackend(FakeNvml(init_error="LibraryNotFound")))


def test_no_driver_is_one_status_line():
    seen = []
    result = run_probe(nvml_backend=NvmlBackend(FakeNvml(init_error="LibraryNotFound")), nvml_snapshot=seen.append)
    assert not result.ok and result.status == NO_DRIVER
    assert result.benchmarks is None and result.profile is None
    assert seen == [result.nvml]


def test_gpu_seen_by_nvml_but_torch_without_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    result = run_probe(nvml_backend=NvmlBackend(FakeNvml([FakeGpu()])))
    assert result.nvml.ok and not result.ok
    assert result.status == f"torch {torch.__version__} sees no CUDA GPU — estimates use the catalog"


def test_cpu_self_test_builds_a_labelled_profile():
    pytest.importorskip("torch")
    steps = []
    result = run_probe(device="cpu", nvml_backend=NvmlBackend(FakeNvml(init_error="LibraryNotFound")),
                       bench_sizes=TINY, progress=lambda f, t: steps.append(f))
    assert result.ok and result.status == "CPU self-test done (not a GPU calibration)"
    p = result.profile
    assert p.device == "cpu" and p.gpu_name == "CPU" and p.gpu_id is None
    assert dict(p.matmul_tflops)["fp32"] > 0 and p.memory_bandwidth_gbps > 0
    assert p.cuda_context_bytes is None and p.torch_version
    assert cal.profile_label(p).endswith("(CPU self-test)")
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)


def test_cpu_probe_with_a_trial():
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from napkin_gui.core.plan import plan_from_dict
    plan = plan_from_dict({"model": "tiny", "method": "lora", "lora_r": 2, "precision": "fp32",
                           "batch_size": 1, "seq_len": 8})
    result = run_probe(plan, device="cpu", nvml_backend=NvmlBackend(FakeNvml(init_error="LibraryNotFound")),
                       bench_sizes=TINY, model_spec=SimpleNamespace(config_json=json.dumps(CONFIG)))
    assert result.ok and result.trial.ok, result.status
    assert result.profile.trials == (result.trial.record,)
    assert result.trial.record.layers_run == (3,)


def test_cancel_before_benchmarks():
    pytest.importorskip("torch")
    result = run_probe(device="cpu", should_stop=lambda: True,
                       nvml_backend=NvmlBackend(FakeNvml(init_error="LibraryNotFound")))
    assert result.cancelled and not result.ok and result.status == "probe cancelled"


def test_command_without_gpu_prints_the_nvml_line_and_exits_0(no_driver, capsys):
    assert probe_command([]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"NVML: {NO_DRIVER}" and out.err == ""
    assert probe_command(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == NO_DRIVER and data["profile"] is None and data["nvml"]["ok"] is False


def test_command_cpu_self_test_is_not_saved(no_driver, capsys):
    pytest.importorskip("torch")
    assert probe_command(["--cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profile"]["device"] == "cpu" and data["saved"] is None
    assert cal.load_profiles() == ((), ())


def test_command_cpu_trial_of_a_plan_file(no_driver, tmp_path, capsys):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    pytest.importorskip("napkin_gui.core.model_source")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    plan = tmp_path / "plan.napkin.json"
    plan.write_text(json.dumps({"model": str(tmp_path / "config.json"), "method": "full", "precision": "fp32",
                                "optimizer": "sgd", "batch_size": 1, "seq_len": 8}))
    assert probe_command(["--cpu", "--trial", str(plan), "--layers", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "trial ran (1x2 of 3 layers on cpu)" in out
    assert "step time" in out and "memory not measured" in out


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "napkin probe: unrecognized arguments: --bogus"),
    (["--layers", "two"], "--layers: must be comma-separated integers"),
    (["--trial", "/no/such/plan.json"], "plan: file not found: /no/such/plan.json"),
    (["--device", "tpu"], "--device: use cuda or cuda:N"),
    (["--delete", "nope"], "calibration: no profile with id 'nope'"),
    (["--export", "nope", "x.json"], "calibration: no profile with id 'nope'"),
    (["--list", "--delete", "x"], "napkin probe: argument --delete: not allowed with argument --list"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, no_driver, capsys):
    assert probe_command(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_profile_management_commands(tmp_path, capsys):
    p = cal.CalibrationProfile(id="nvidia-h100-80gb-hbm3-20261125t000000z", gpu_name="NVIDIA H100 80GB HBM3",
                               gpu_id="h100-80gb-sxm", created="2026-11-25T00:00:00Z",
                               matmul_tflops=(("bf16", 790.0),))
    cal.save_profile(p)
    assert probe_command(["--list"]) == 0
    assert "nvidia-h100-80gb-hbm3-20261125t000000z  NVIDIA H100 80GB HBM3, 2026-11-25" in capsys.readouterr().out
    shared = tmp_path / "shared.json"
    assert probe_command(["--export", p.id, str(shared)]) == 0
    assert probe_command(["--delete", p.id]) == 0
    assert cal.load_profiles()[0] == ()
    assert probe_command(["--import", str(shared)]) == 0
    assert cal.load_profiles()[0] == (p,)
    capsys.readouterr()
    assert probe_command(["--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profiles"][0]["id"] == p.id
    shared.write_text("{not json")
    assert probe_command(["--import", str(shared)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
