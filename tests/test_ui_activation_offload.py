"""The Stack group's "Activation offload" check box is enabled exactly where core lets the
plan's framework offload (core.plan.activation_offload_refusal, the rule check_stack raises)."""
import dataclasses
import itertools

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.plan import Plan, check_combination
from napkin_gui.core.stack_defaults import FRAMEWORKS
from napkin_gui.ui.controller import PlanController
from napkin_gui.ui.plan_editor import PlanEditor

PLAN = Plan(model="llama-3.2-1b", method="lora", batch_size=2, seq_len=1024, gpu="rtx-4090")


def offload_runs(plan: Plan) -> bool:
    """Whether core accepts the plan with activation_offload on."""
    try:
        check_combination(dataclasses.replace(plan, activation_offload=True))
    except PlanError as err:
        assert str(err).startswith("activation_offload:"), str(err)   # nothing else is wrong with the plan
        return False
    return True


@pytest.fixture
def editor(qtbot):
    controller = PlanController(PLAN)
    widget = PlanEditor(controller)
    qtbot.addWidget(widget)
    widget.show()
    return controller, widget


@pytest.mark.parametrize("framework, grad_ckpt", list(itertools.product(FRAMEWORKS, (False, True))))
def test_offload_box_enabled_exactly_where_core_accepts_it(editor, framework, grad_ckpt):
    controller, widget = editor
    plan = dataclasses.replace(PLAN, framework=framework, grad_ckpt=grad_ckpt, loss="standard",
                               activation_offload=False)
    controller.reset_plan(plan)
    expected = {("litgpt", False): False, ("litgpt", True): False, ("unsloth", False): False,
                ("torchtune", False): False}.get((framework, grad_ckpt), True)
    assert offload_runs(plan) is expected
    assert widget.widgets["activation_offload"].isEnabled() is expected


def test_turning_checkpointing_off_greys_torchtune_offload(editor):
    controller, widget = editor
    controller.reset_plan(dataclasses.replace(PLAN, framework="torchtune", grad_ckpt=True, loss="chunked-ce"))
    box = widget.widgets["activation_offload"]
    assert box.isEnabled()
    widget.widgets["grad_ckpt"].setChecked(False)   # a user edit through the check box
    assert controller.plan.grad_ckpt is False and not box.isEnabled()


def test_trl_trainers_without_activation_offloading_grey_it(editor):
    """TRL 1.16: SFT, DPO and KTO configs have activation_offloading; GRPO's does not."""
    from napkin_gui.core.plan import with_algorithm
    controller, widget = editor
    controller.reset_plan(with_algorithm(PLAN, "dpo"))
    assert widget.widgets["activation_offload"].isEnabled() and offload_runs(controller.plan)
    controller.reset_plan(with_algorithm(PLAN, "grpo"))
    assert not widget.widgets["activation_offload"].isEnabled() and not offload_runs(controller.plan)
