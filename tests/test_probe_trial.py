"""The trial runner end to end on CPU: a tiny real llama with torch + transformers + peft."""
import dataclasses
import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from napkin_gui.core.plan import Plan, plan_from_dict  # noqa: E402
from napkin_gui.probe.trial import run_trial  # noqa: E402

H, INTER, HEADS, KV, VOCAB, LAYERS = 64, 128, 4, 2, 256, 6
CONFIG = dict(model_type="llama", hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS,
              num_attention_heads=HEADS, num_key_value_heads=KV, vocab_size=VOCAB,
              tie_word_embeddings=False, max_position_embeddings=256, rms_norm_eps=1e-5)
KV_DIM = KV * H // HEADS
# (name, d_in, d_out) of every linear in a decoder block, as the HF module tree names them
LINEARS = [("q_proj", H, H), ("k_proj", H, KV_DIM), ("v_proj", H, KV_DIM), ("o_proj", H, H),
           ("gate_proj", H, INTER), ("up_proj", H, INTER), ("down_proj", INTER, H)]
# embeddings + lm_head (untied) + final norm + per block (linears + 2 RMSNorm weights)
TOTAL = 2 * VOCAB * H + H + LAYERS * (sum(i * o for _, i, o in LINEARS) + 2 * H)
SPEC = SimpleNamespace(config_json=json.dumps(CONFIG))


def plan(**kw) -> Plan:
    return plan_from_dict({"model": "tiny-llama", "batch_size": 2, "seq_len": 16, "precision": "fp32", **kw})


def trial(p: Plan, spec=SPEC, **kw):
    """run_trial on the CPU with one timed step per depth (the protocol, kept short)."""
    kw.setdefault("layers", (1, 2))
    return run_trial(p, spec, device=kw.pop("device", "cpu"), measured_steps=1, **kw)


def lora_params(r: int, names) -> int:
    return LAYERS * sum(r * (i + o) for n, i, o in LINEARS if n in names)


def test_lora_all_linear_counts_and_path():
    out = trial(plan(method="lora", lora_r=4), layers=None)
    assert out.ok, out.status
    r = out.record
    assert r.layers_run == (2, 4) and r.full_layers == LAYERS and r.device == "cpu"
    assert r.trainable_params == lora_params(4, {n for n, _, _ in LINEARS}) == 24576
    assert r.total_params == TOTAL + r.trainable_params
    assert [p.layers for p in r.points] == [2, 4]
    assert not r.memory_measured and r.peak_allocated_bytes is None and r.timeline == ()
    assert r.step_seconds > 0 and r.tokens_per_second == pytest.approx(32 / r.step_seconds)
    assert r.points[-1].phases == (
        "weights loaded", "forward L1", "forward L2", "forward L3", "forward L4", "logits & loss",
        "backward head", "backward L4", "backward L3", "backward L2", "backward L1",
        "optimizer step", "after zero_grad")
    assert json.loads(r.plan_json)["lora_r"] == 4
    assert out.status.startswith("trial ran (2x4 of 6 layers on cpu)")


def test_counts_match_the_model_spec_core_builds():
    hf_config = pytest.importorskip("napkin_gui.core.hf_config")
    spec = hf_config.model_spec_from_config(CONFIG, "tiny-llama")
    out = trial(plan(method="full", precision="fp32", optimizer="sgd"), spec)
    assert out.ok, out.status
    assert out.record.total_params == spec.total_params == TOTAL
    assert out.record.trainable_params == TOTAL


def test_lora_targets_and_whole_model_depth():
    p = plan(method="lora", lora_r=8, lora_targets=["q_proj", "v_proj"], optimizer="adafactor")
    out = trial(p, layers=(LAYERS,))
    assert out.ok, out.status
    assert out.record.layers_run == (LAYERS,) and out.record.notes == out.record.notes[:1]  # CPU note only
    assert out.record.trainable_params == lora_params(8, {"q_proj", "v_proj"})
    assert out.record.total_params == TOTAL + out.record.trainable_params


def test_full_mixed_precision_with_checkpointing_and_accumulation():
    out = trial(plan(method="full", precision="mixed-bf16", grad_ckpt=True, grad_accum=4, seq_len=8))
    assert out.ok, out.status
    r = out.record
    assert r.total_params == r.trainable_params == TOTAL
    phases = r.points[-1].phases
    # non-reentrant checkpointing recomputes each layer's forward just before its backward
    assert phases[phases.index("backward head") + 1:][:4] == (
        "recompute L2", "backward L2", "recompute L1", "backward L1")
    assert r.optimizer_step_seconds == pytest.approx(
        r.step_seconds * 4 + (r.optimizer_step_seconds - r.step_seconds * 4))
    assert r.optimizer_step_seconds > r.step_seconds


def test_qlora_without_bitsandbytes_is_a_clear_status(monkeypatch):
    from napkin_gui.probe import trial_model
    monkeypatch.setattr(trial_model, "installed", lambda package: False)
    out = trial(plan(method="qlora", precision="bf16"))
    assert not out.ok and out.status == "QLoRA trial needs bitsandbytes (pip install bitsandbytes)"
    out = trial(plan(method="lora", optimizer="paged-adamw-8bit"))
    assert out.status == "optimizer paged-adamw-8bit needs bitsandbytes (pip install bitsandbytes)"
    monkeypatch.setattr(trial_model, "installed", lambda package: True)
    out = trial(plan(method="qlora", precision="bf16"))
    assert out.status == "bitsandbytes 4-bit/8-bit trials need a CUDA GPU"


@pytest.mark.parametrize("plan_kw, spec, status", [
    (dict(sharding="fsdp", n_gpus=2), SPEC, "trial runs one GPU without sharding or offload"),
    (dict(lora_targets=["nonexistent_proj"]), SPEC, "lora_targets: "),
    (dict(), SimpleNamespace(config_json=json.dumps({**CONFIG, "model_type": "no-such-arch"})),
     "trial: transformers "),
    (dict(), SimpleNamespace(config_json="{}"), "trial: the model's config.json has no model_type"),
    (dict(), SimpleNamespace(config_json=json.dumps({**CONFIG, "num_attention_heads": 5})), "trial failed: "),
])
def test_failures_are_one_status_line(plan_kw, spec, status):
    out = trial(plan(**plan_kw), spec)
    assert not out.ok and out.record is None
    assert out.status.startswith(status) and "\n" not in out.status


def test_cuda_device_without_cuda_is_a_status_line():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    out = trial(plan(), device="cuda")
    assert out.status.startswith("trial needs CUDA")


def test_cancel_between_steps_and_progress():
    seen = []
    checks = iter(range(100))
    out = trial(plan(), progress=lambda f, t: seen.append((f, t)), should_stop=lambda: next(checks) >= 4)
    assert out.status == "trial cancelled" and out.record is None
    assert seen and all(0.0 <= f <= 1.0 for f, _ in seen)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)


def test_record_survives_the_profile_json_round_trip():
    from napkin_gui.core import calibration as cal
    out = trial(plan(method="lora", lora_r=2))
    assert out.ok, out.status
    profile = cal.CalibrationProfile(id="cpu-x", gpu_name="CPU", gpu_id=None, created="2026-11-25T00:00:00Z",
                                     device="cpu", trials=(out.record,))
    again = cal.profile_from_dict(json.loads(json.dumps(cal.profile_to_dict(profile))))
    assert again == profile
    assert dataclasses.asdict(again.trials[0])["layers_run"] == (1, 2)


class FakeCuda:
    """torch.cuda's allocator statistics, scripted: `allocated` is set by the test."""

    def __init__(self):
        self.allocated = 0
        self.peak = 0

    def max_memory_allocated(self, dev=None):
        return max(self.peak, self.allocated)

    def reset_peak_memory_stats(self, dev=None):
        self.peak = self.allocated


def test_phase_recorder_marks_peak_per_phase_with_cuda_statistics():
    from napkin_gui.probe.trial import _PhaseRecorder
    cuda = FakeCuda()
    fake_torch = SimpleNamespace(Tensor=torch.Tensor, cuda=cuda)

    class Block(torch.nn.Module):
        def __init__(self, grow):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
            self.grow = grow

        def forward(self, x):
            cuda.peak = max(cuda.peak, cuda.allocated + 50)  # a transient inside the layer
            cuda.allocated += self.grow
            return self.lin(x)

    blocks = [Block(100), Block(100)]
    rec = _PhaseRecorder(fake_torch, SimpleNamespace(type="cuda"), blocks)
    cuda.allocated = 1000
    rec.start()
    rec.mark("weights loaded")
    x = torch.ones(1, 4, requires_grad=True)
    y = blocks[1](blocks[0](x)).sum()
    rec.mark("logits & loss")
    rec.in_backward = True
    y.backward()
    rec.in_backward = False
    rec.mark("backward L1")
    rec.stop()
    assert rec.timeline() == (("weights loaded", 1000), ("forward L1", 1100), ("forward L2", 1200),
                              ("logits & loss", 1200), ("backward head", 1200), ("backward L2", 1200),
                              ("backward L1", 1200))
    rec.mark("ignored while stopped")
    assert len(rec.timeline()) == 7


def test_record_extrapolates_cuda_measurements():
    from napkin_gui.core.calibration import TrialPoint
    from napkin_gui.probe.trial import _record, _Run
    g = 2**30

    def run(k):
        timeline = (("weights loaded", k * g),) + tuple((f"forward L{j}", k * g + j * g // 4) for j in range(1, k + 1))
        point = TrialPoint(k, 1000 + 100 * k, 10 * k, 2 * g + k * g, 3 * g + k * g, k * g, 0.1 + 0.05 * k)
        return _Run(point, 0.1 + 0.05 * k, 0.02 * k, timeline, context_bytes=g)

    p = plan(method="lora", grad_accum=2)
    r = _record(p, torch.device("cuda", 0), 32, [run(2), run(4)])  # a device object needs no GPU
    assert r.memory_measured and r.device == "cuda:0" and r.notes == ()
    assert r.timeline[0] == ("weights loaded", 32 * g) and len(r.timeline) == 33
    assert r.timeline[-1] == ("forward L32", 32 * g + 8 * g)
    assert r.raw_timeline == run(4).timeline
    assert r.total_params == 1000 + 3200 and r.trainable_params == 320
    assert r.peak_allocated_bytes == 34 * g and r.peak_reserved_bytes == 35 * g
    assert r.device_used_bytes == 36 * g  # reserved + the CUDA context NVML showed
    assert r.step_seconds == pytest.approx((0.1 + 1.6) + 0.64 / 2)
    assert r.optimizer_step_seconds == pytest.approx((0.1 + 1.6) * 2 + 0.64)


def test_allocator_history_is_recorded_dumped_and_switched_off():
    from napkin_gui.probe.trial import _allocator_history
    calls = []
    memory = SimpleNamespace(_record_memory_history=lambda **kw: calls.append(("record", kw)),
                             _dump_snapshot=lambda path: calls.append(("dump", path)))
    fake = SimpleNamespace(cuda=SimpleNamespace(memory=memory))
    with _allocator_history(fake, "/tmp/step.pickle"):
        calls.append(("step", None))
    assert [c[0] for c in calls] == ["record", "step", "dump", "record"]
    assert calls[-1][1] == {"enabled": None} and calls[2][1] == "/tmp/step.pickle"

    def unsupported(**kw):
        raise RuntimeError("not built with CUDA")
    broken = SimpleNamespace(cuda=SimpleNamespace(memory=SimpleNamespace(_record_memory_history=unsupported)))
    with _allocator_history(broken, "/tmp/x.pickle"):
        pass
    with _allocator_history(None, None):
        pass
