"""Plan fields for preference and RL fine-tuning (plan-v1 "Additions: preference and RL
fine-tuning"): defaults, the method-dependent reference default, and the combinations TRL 1.16
refuses, each one line naming the field."""
import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.estimate import estimate
from napkin_gui.core.plan import PLAN_FIELDS, Plan, default_reference, plan_from_dict, plan_to_dict

RL_FIELDS = ("algorithm", "reference", "prompt_len", "completion_len", "num_generations", "generation",
             "vllm_gpu_memory_utilization")


def test_rl_fields_are_plan_fields_with_contract_defaults():
    assert set(RL_FIELDS) <= set(PLAN_FIELDS)
    plan = plan_from_dict({"model": "llama-3.1-8b"})
    assert [getattr(plan, f) for f in RL_FIELDS] == ["sft", "none", 512, 256, 8, "transformers", 0.3]


@pytest.mark.parametrize("algorithm, method, reference", [
    ("dpo", "lora", "adapter-off"), ("dpo", "qlora", "adapter-off"), ("dpo", "full", "copy"),
    ("kto", "lora", "adapter-off"), ("kto", "full", "copy"),
    ("orpo", "lora", "none"), ("simpo", "full", "none"), ("grpo", "lora", "none"), ("sft", "full", "none"),
])
def test_reference_default_depends_on_method_and_algorithm(algorithm, method, reference):
    extra = {"batch_size": 8} if algorithm in ("grpo", "kto") else {}
    plan = plan_from_dict({"model": "x", "algorithm": algorithm, "method": method, **extra})
    assert plan.reference == reference == default_reference(algorithm, method)


def test_a_saved_plan_loads_back_unchanged():
    plan = plan_from_dict({"model": "x", "algorithm": "grpo", "batch_size": 8, "num_generations": 4,
                           "generation": "vllm-colocate", "vllm_gpu_memory_utilization": 0.5, "reference": "copy",
                           "method": "full"})
    assert plan_from_dict(plan_to_dict(plan)) == plan
    sft = plan_from_dict({"model": "x"})
    assert plan_from_dict(plan_to_dict(sft)) == sft


@pytest.mark.parametrize("data, field", [
    ({"algorithm": "ppo"}, "algorithm"),
    ({"algorithm": "dpo", "reference": "frozen"}, "reference"),
    ({"algorithm": "dpo", "method": "full", "reference": "adapter-off"}, "reference"),
    ({"algorithm": "dpo", "reference": "none"}, "reference"),
    ({"algorithm": "orpo", "reference": "copy"}, "reference"),
    ({"algorithm": "sft", "reference": "copy"}, "reference"),
    ({"algorithm": "grpo", "batch_size": 8, "reference": "precomputed"}, "reference"),
    ({"algorithm": "dpo", "prompt_len": 2048}, "prompt_len"),
    ({"algorithm": "simpo", "seq_len": 256, "prompt_len": 300}, "prompt_len"),
    ({"prompt_len": 100}, "prompt_len"),
    ({"num_generations": 4}, "num_generations"),
    ({"algorithm": "dpo", "completion_len": 64}, "completion_len"),
    ({"algorithm": "dpo", "generation": "vllm-server"}, "generation"),
    ({"algorithm": "grpo", "batch_size": 8, "vllm_gpu_memory_utilization": 0.5}, "vllm_gpu_memory_utilization"),
    ({"algorithm": "grpo", "batch_size": 8, "generation": "vllm-colocate", "vllm_gpu_memory_utilization": 1.0},
     "vllm_gpu_memory_utilization"),
    ({"algorithm": "grpo", "batch_size": 8, "generation": "vllm-colocate", "vllm_gpu_memory_utilization": 0},
     "vllm_gpu_memory_utilization"),
    ({"algorithm": "grpo", "batch_size": 6}, "num_generations"),
    ({"algorithm": "grpo", "batch_size": 8, "num_generations": 1}, "num_generations"),
    ({"algorithm": "grpo", "batch_size": 8, "generation": "vllm"}, "generation"),
    ({"algorithm": "grpo", "batch_size": 8, "completion_len": 0}, "completion_len"),
    ({"algorithm": "kto", "batch_size": 1}, "batch_size"),
])
def test_bad_rl_settings_are_one_line_errors(data, field):
    with pytest.raises(PlanError) as err:
        plan_from_dict({"model": "x", **data})
    msg = str(err.value)
    assert msg.startswith(f"{field}:") and "\n" not in msg


def test_grpo_divisibility_counts_every_gpu_and_accumulation_step():
    # GRPOConfig: generation_batch_size = per_device_train_batch_size x processes x steps_per_generation
    plan_from_dict({"model": "x", "algorithm": "grpo", "batch_size": 2, "n_gpus": 2, "grad_accum": 2})
    with pytest.raises(PlanError):
        plan_from_dict({"model": "x", "algorithm": "grpo", "batch_size": 2, "n_gpus": 1, "grad_accum": 2})


def test_sft_estimate_ignores_the_new_fields():
    base = estimate(Plan(model="llama-3.1-8b", batch_size=2, seq_len=1024))
    again = estimate(plan_from_dict({"model": "llama-3.1-8b", "batch_size": 2, "seq_len": 1024, "algorithm": "sft",
                                     "reference": "none"}))
    assert again.memory.phase_values == base.memory.phase_values
    assert again.time.step_seconds == base.time.step_seconds
