"""Calibration profiles: JSON round trip, the store, corrupt files, apply_calibration."""
import dataclasses
import json

import pytest

from napkin_gui.core import calibration as cal
from napkin_gui.core.calibration import CalibrationProfile, TrialPoint, TrialRecord
from napkin_gui.core.errors import PlanError
from napkin_gui.core.gpu_spec import MIB, GpuSpec


def trial() -> TrialRecord:
    points = (TrialPoint(2, 1000, 100, 5 * 2**30, 6 * 2**30, 2**30, 0.1, ("weights loaded", "forward L1")),
              TrialPoint(4, 1800, 180, 7 * 2**30, 8 * 2**30, 2**30 + 5, 0.15))
    return TrialRecord(
        plan_json=json.dumps({"model": "llama-3.1-8b", "method": "lora"}), device="cuda:0", full_layers=32,
        layers_run=(2, 4), total_params=13800, trainable_params=1380, peak_allocated_bytes=35 * 2**30,
        peak_reserved_bytes=36 * 2**30, device_used_bytes=37 * 2**30, step_seconds=0.85,
        optimizer_step_seconds=0.85, tokens_per_second=9600.0, memory_measured=True, points=points,
        timeline=(("weights loaded", 2**30), ("forward L1", 2 * 2**30)),
        raw_timeline=(("weights loaded", 2**30),), notes=("a note",))


def profile(created: str = "2026-11-25T03:45:01Z", name: str = "NVIDIA H100 80GB HBM3", **kw) -> CalibrationProfile:
    fields = dict(
        id=cal.new_profile_id(name, created), gpu_name=name, gpu_id="h100-80gb-sxm", created=created,
        driver_version="580.95.05", cuda_version="13.0", torch_version="2.11.0", transformers_version="5.17.0",
        peft_version="0.21.0", bitsandbytes_version=None,
        matmul_tflops=(("bf16", 800.4), ("fp16", 765.9), ("fp32", 51.5), ("tf32", 370.0)),
        memory_bandwidth_gbps=2970.5, h2d_gbps=48.1, d2h_gbps=51.1, kernel_launch_us=4.2,
        cuda_context_bytes=1099 * MIB, cublas_workspace_bytes=64 * MIB, total_memory_bytes=81079 * MIB,
        nvml_memory_bytes=81559 * MIB, compute_capability="9.0", sms=132, trials=(trial(),))
    fields.update(kw)
    return CalibrationProfile(**fields)


def gpu() -> GpuSpec:
    return GpuSpec(id="h100-80gb-sxm", name="H100 SXM", vendor="NVIDIA", architecture="hopper",
                   memory_bytes=81079 * MIB, bf16_tflops=989.4, fp16_tflops=989.4, fp32_tflops=66.9,
                   tf32_tflops=494.7, int8_tops=1979, memory_bandwidth_gbps=3350, host_link="pcie5x16",
                   host_bandwidth_gbps=63, interconnect="nvlink4", interconnect_gbps=900,
                   price_usd_per_hour=3.0)


def test_id_and_label():
    p = profile()
    assert p.id == "nvidia-h100-80gb-hbm3-20261125t034501"
    assert cal.profile_label(p) == "NVIDIA H100 80GB HBM3, 2026-11-25"
    assert cal.profile_label(dataclasses.replace(p, device="cpu")).endswith("(CPU self-test)")


def test_json_round_trip_is_exact():
    p = profile()
    text = json.dumps(cal.profile_to_dict(p))
    assert cal.profile_from_dict(json.loads(text)) == p


def test_apply_calibration_replaces_measured_figures_only():
    g = cal.apply_calibration(gpu(), profile())
    assert g.calibrated
    assert (g.bf16_tflops, g.fp16_tflops, g.fp32_tflops, g.tf32_tflops) == (800.4, 765.9, 51.5, 370.0)
    assert g.memory_bandwidth_gbps == 2970.5
    assert g.host_bandwidth_gbps == 48.1  # the slower pinned direction
    assert g.cuda_context_bytes == 1099 * MIB and g.cublas_workspace_bytes == 64 * MIB
    assert (g.id, g.memory_bytes, g.price_usd_per_hour, g.int8_tops) == ("h100-80gb-sxm", 81079 * MIB, 3.0, 1979)

    partial = profile(matmul_tflops=(("bf16", 700.0),), memory_bandwidth_gbps=None, h2d_gbps=None,
                      d2h_gbps=None, cuda_context_bytes=None, cublas_workspace_bytes=None)
    g = cal.apply_calibration(gpu(), partial)
    assert g.bf16_tflops == 700.0 and g.fp16_tflops == 989.4 and g.memory_bandwidth_gbps == 3350
    assert g.host_bandwidth_gbps == 63 and g.cuda_context_bytes == gpu().cuda_context_bytes


def test_apply_calibration_only_to_the_card_it_was_measured_on():
    a100 = dataclasses.replace(gpu(), id="a100-80gb-sxm", name="A100 SXM", nvml_names=("NVIDIA A100-SXM4-80GB",))
    assert cal.apply_calibration(a100, profile()) is a100
    assert not cal.profile_applies(a100, profile())
    # no catalog id (a card the catalog lacks): matched by the NVML name
    unknown = profile(gpu_id=None, name="NVIDIA A100-SXM4-80GB")
    assert cal.apply_calibration(a100, unknown).bf16_tflops == 800.4
    h100 = gpu()
    assert cal.apply_calibration(h100, profile()) is not h100


def test_apply_calibration_ignores_cpu_and_empty_profiles():
    assert cal.apply_calibration(gpu(), None) == gpu()
    assert cal.apply_calibration(gpu(), profile(device="cpu")) == gpu()
    empty = profile(matmul_tflops=(), memory_bandwidth_gbps=None, h2d_gbps=None, d2h_gbps=None,
                    cuda_context_bytes=None, cublas_workspace_bytes=None)
    assert cal.apply_calibration(gpu(), empty) == gpu()


def test_store_round_trip(config_dir):
    old = profile("2026-10-01T00:00:00Z")
    new = profile("2026-11-25T03:45:01Z")
    path = cal.save_profile(new)
    cal.save_profile(old)
    assert path == config_dir / "calibration" / f"{new.id}.json"
    profiles, warnings = cal.load_profiles()
    assert profiles == (old, new) and warnings == ()
    assert cal.profile_for_gpu("nvidia h100 80gb hbm3") == new
    assert cal.profile_for_gpu("h100-80gb-sxm") == new
    assert cal.profile_for_gpu("NVIDIA A100-SXM4-80GB") is None
    cal.delete_profile(new.id)
    assert cal.load_profiles()[0] == (old,)
    with pytest.raises(PlanError, match="no profile with id"):
        cal.delete_profile(new.id)


def test_cpu_profiles_never_calibrate_a_gpu():
    cal.save_profile(profile(device="cpu", name="CPU", gpu_id=None))
    assert cal.profile_for_gpu("CPU") is None


def test_export_import(tmp_path, config_dir):
    p = profile()
    shared = tmp_path / "team" / "h100.json"
    cal.export_profile(p, shared)
    assert cal.load_profiles()[0] == ()
    assert cal.import_profile(shared) == p
    assert cal.find_profile(p.id) == p


def test_corrupt_file_is_skipped_reported_and_never_overwritten(config_dir):
    p = profile()
    folder = config_dir / "calibration"
    folder.mkdir(parents=True)
    bad = folder / f"{p.id}.json"
    bad.write_text('{"schema": "napkin-calibration-v1", "id": ', encoding="utf-8")
    (folder / "other.json").write_text('{"schema": "something else"}', encoding="utf-8")
    profiles, warnings = cal.load_profiles()
    assert profiles == ()
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert any("is not valid JSON" in w and p.id in w for w in warnings)
    with pytest.raises(PlanError, match="not valid JSON"):
        cal.save_profile(p)
    assert bad.read_text(encoding="utf-8") == '{"schema": "napkin-calibration-v1", "id": '
    with pytest.raises(PlanError, match="not a napkin-calibration-v1 profile"):
        cal.import_profile(folder / "other.json")


def test_malformed_fields_are_one_line_errors():
    data = cal.profile_to_dict(profile())
    data["cuda_context_bytes"] = "lots"
    with pytest.raises(PlanError, match="cuda_context_bytes must be an integer"):
        cal.profile_from_dict(data)
    data = cal.profile_to_dict(profile())
    data["id"] = "../../etc"
    with pytest.raises(PlanError, match="bad profile id"):
        cal.profile_from_dict(data)


def test_gpu_from_profile_uses_the_catalog_or_builds_a_card():
    pytest.importorskip("napkin_gui.core.gpu_catalog")
    g = cal.gpu_from_profile(profile())
    assert g.id == "h100-80gb-sxm" and g.calibrated and g.bf16_tflops == 800.4
    unknown = cal.gpu_from_profile(profile(name="NVIDIA Mystery 9000", gpu_id=None))
    assert unknown.id.startswith("measured-") and unknown.memory_bytes == 81079 * MIB


def test_calibration_module_imports_only_the_standard_library():
    import subprocess
    import sys
    code = ("import sys, napkin_gui.core.calibration\n"
            "print(','.join(m for m in ('torch', 'pynvml', 'PySide6', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
