"""The editor's Algorithm group and the timeline's preference / RL phases (issue 15)."""
import dataclasses

import pytest

from napkin_gui.core.plan import ALGORITHMS, Plan, check_combination, with_algorithm
from napkin_gui.ui.help_text import CHOICE_TIPS

from test_ui_window import assert_rows_have_one_sentence_tips

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="rtx-4090")
RL_FIELDS = ("algorithm", "reference", "prompt_len", "completion_len", "num_generations", "generation",
             "vllm_gpu_memory_utilization")


@pytest.fixture
def window(open_window):
    return open_window(PLAN, persist=True)


def test_choosing_grpo_is_one_valid_undoable_edit_and_the_timeline_shows_its_phases(window):
    e, c = window.editor, window.controller
    commands = c.undo_stack.count()
    combo = e.combos["algorithm"]
    combo.setCurrentIndex(combo.findData("grpo"))
    c.flush()
    assert c.plan == with_algorithm(PLAN, "grpo") and c.plan.batch_size == c.plan.num_generations
    assert c.undo_stack.count() == commands + 1
    assert all(e.widgets[f].isEnabled() for f in ("completion_len", "num_generations", "generation"))
    assert not e.widgets["vllm_gpu_memory_utilization"].isEnabled()   # only with vllm-colocate
    assert window.timeline_view.estimate.memory.phases[1] == "generate"
    window.undo_action.trigger()
    assert c.plan == PLAN and not e.widgets["completion_len"].isEnabled()


def test_every_algorithm_choice_runs_from_an_sft_plan():
    for algorithm in ALGORITHMS:
        for method in ("lora", "full"):
            check_combination(with_algorithm(dataclasses.replace(PLAN, method=method), algorithm))
    # and back: leaving GRPO puts its fields back to their defaults
    grpo = dataclasses.replace(with_algorithm(PLAN, "grpo"), num_generations=4, completion_len=64)
    assert check_combination(with_algorithm(grpo, "dpo")).num_generations == 8


def test_algorithm_rows_have_one_sentence_tips(window):
    assert_rows_have_one_sentence_tips(window, "Algorithm", RL_FIELDS)
    assert set(CHOICE_TIPS["algorithm"]) == set(ALGORITHMS)
