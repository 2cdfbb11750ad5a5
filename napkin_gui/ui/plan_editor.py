"""PlanEditor: the left panel, a table of bindings. Each plan field is one `Row`: its caption,
a widget constructor, and the two conversions the constructor returns in a `Bound`
(signal arguments -> plan value, plan value -> widget); `GROUPS` lists titled boxes of rows.

Adding a plan field to the editor is one row in `GROUPS` (and its tips in help_text.py);
adding a group is one `Group(title, rows)`. The constructors below (`choice`, `check`,
`int_spin`, `float_spin`, `power_slider`, `targets_text`, `model_input`, `gpu_input`) cover the
field kinds the plan has.

This is the pair napari keeps in napari/napari src/napari/_qt/utils.py: `connect_setattr`
(a widget signal, through a converter, sets the model's attribute) and `attr_to_settr` (the
model's value is written into the widget under a QSignalBlocker, so nothing echoes back).
Here the model is the controller's frozen plan: a widget edit becomes
controller.set_plan(replace(plan, field=value)); controller.plan_changed writes only the
fields that changed into their widgets. Values are checked by core.plan (a PlanError from a
converter is shown as the core's line); choices that core.plan.check_combination rejects for
the current plan are disabled, with the core's reason as their tooltip.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMenu, QPushButton, QSizePolicy,
                               QSpinBox, QVBoxLayout, QWidget)

from ..core.errors import PlanError
from ..core.gpu_catalog import gpu_catalog
from ..core.model_source import list_presets
from ..core.plan import (ALGORITHMS, ATTENTIONS, GENERATIONS, METHODS, OFFLOADS, OPTIMIZERS, PLAN_FIELDS,
                         PRECISIONS, REFERENCES, SHARDINGS, Plan, activation_offload_refusal, check_combination,
                         parse_lora_targets, with_algorithm)
from ..core.memory.precision import NO_KBIT_PREP_FRAMEWORKS
from ..core.stack_defaults import FRAMEWORKS, LOSSES, with_framework
from .. import palette
from ..core.names import gpu_id_for, short_gpu_name, value_name
from ..units import gib, params, usd_per_hour
from .controller import PlanController
from .help_text import CHOICE_TIPS, FIELD_TIPS
from .plot_style import fixed_label
from .widgets import SearchCombo, SpinSlider


# ------------------------------------------------------------------ the binding table
@dataclass(frozen=True)
class Bound:
    """A built editor widget and how its value moves (what a widget constructor returns).

    `edited` is the Qt signal a user edit emits; `read(*signal_args)` turns its arguments into
    the plan value (None: nothing to set; PlanError: the core's line is shown); `show(value)`
    puts a plan value into the widget (the editor blocks `widget`'s signals around it).
    `choices`: the values of a choice combo, whose items core may disable.
    """

    widget: QWidget
    edited: Any
    read: Callable[..., Any]
    show: Callable[[Any], None]
    choices: tuple[str, ...] = ()
    captioned: bool = True  # False: the widget shows the caption itself (a check box)
    gates: bool = False     # a discrete value (choice, check box): its edits re-check the choices


Constructor = Callable[[str, str, QWidget], Bound]  # (plan field, caption, parent) -> Bound


def _always(_plan: Plan) -> bool:
    return True


@dataclass(frozen=True)
class Row:
    """One plan field in the editor: caption, widget constructor, when it applies."""

    field: str
    label: str
    make: Constructor
    enabled: Callable[[Plan], bool] = _always  # greyed out when the plan ignores the field
    # an edit of this field re-checks which choices core.plan.check_combination lets run (and
    # which rows apply): always for choice and check rows (Bound.gates); set it on a number row that
    # check_combination reads. Re-checking costs ~20 dataclasses.replace (bench/README.md),
    # too much for every step of a slider drag.
    gates: bool = False
    # how an edit of this field makes the next plan (None: replace the field): choosing a
    # framework also fills the fields it sets with its defaults, as one undoable edit
    apply: Callable[[Plan, Any], Plan] | None = None


@dataclass(frozen=True)
class Group:
    """A titled box of rows."""

    title: str
    rows: tuple[Row, ...]


# ---------------------------------------------------------------- widget constructors
def choice(values: tuple[str, ...]) -> Constructor:
    """A combo box over a plan field's allowed strings, each with its CHOICE_TIPS line."""
    def make(field: str, _label: str, parent: QWidget) -> Bound:
        combo = QComboBox(parent)
        _compact(combo)
        for i, value in enumerate(values):
            combo.addItem(value_name(field, value), value)
            combo.setItemData(i, CHOICE_TIPS[field][value], Qt.ItemDataRole.ToolTipRole)
        return Bound(combo, combo.currentIndexChanged, combo.itemData,
                     lambda value: combo.setCurrentIndex(combo.findData(value)), choices=values, gates=True)
    return make


def check(field: str, label: str, parent: QWidget) -> Bound:
    """A check box for a bool field; it carries its caption."""
    box = QCheckBox(label, parent)
    return Bound(box, box.toggled, bool, box.setChecked, captioned=False, gates=True)


def int_spin(minimum: int, maximum: int) -> Constructor:
    def make(_field: str, _label: str, parent: QWidget) -> Bound:
        spin = QSpinBox(parent)
        spin.setRange(minimum, maximum)
        return Bound(spin, spin.valueChanged, int, spin.setValue)
    return make


def float_spin(minimum: float, maximum: float, decimals: int, step: float = 1.0, scale: float = 1.0,
               suffix: str = "") -> Constructor:
    """A number field shown in units of `scale` (dataset tokens in millions)."""
    def make(_field: str, _label: str, parent: QWidget) -> Bound:
        spin = QDoubleSpinBox(parent)
        spin.setRange(minimum, maximum)
        spin.setDecimals(decimals)
        spin.setSingleStep(step)
        spin.setSuffix(suffix)
        return Bound(spin, spin.valueChanged, lambda v: _num(v * scale), lambda value: spin.setValue(value / scale))
    return make


def power_slider(minimum: int, maximum: int) -> Constructor:
    """A spin box with a slider over powers of two (widgets.SpinSlider)."""
    def make(_field: str, _label: str, parent: QWidget) -> Bound:
        widget = SpinSlider(minimum, maximum, parent)
        return Bound(widget, widget.value_changed, int, widget.set_value)
    return make


def targets_text(_field: str, _label: str, parent: QWidget) -> Bound:
    """lora_targets as text: all-linear, or names separated by commas; core.plan checks them."""
    line = QLineEdit(parent)
    line.setPlaceholderText("all-linear or q_proj, v_proj")
    return Bound(line, line.editingFinished, lambda: parse_lora_targets(line.text().strip() or "all-linear"),
                 lambda value: line.setText(value if isinstance(value, str) else ", ".join(value)))


def model_input(_field: str, _label: str, parent: QWidget) -> Bound:
    """The model: a type-to-search combo of the presets and an Open… menu (config.json, folder);
    both end in the combo's `chosen` signal."""
    combo = SearchCombo(parent, show_data=True)  # the field reads the id, the popup 'id · name'
    _compact(combo)
    for label, ident in model_items():
        combo.addItem(label, ident)
    combo.lineEdit().setPlaceholderText("type to search presets, or a path")
    combo.setToolTip(FIELD_TIPS["model"])
    # a push button with a menu keeps room for its arrow (a QToolButton's InstantPopup arrow
    # was drawn over the end of 'Open…') and is never narrower than its text
    button = QPushButton("Open…", parent)
    button.setToolTip("Open a Hugging Face config.json or a local model folder.")
    button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    menu = QMenu(button)

    def choose(path: str) -> None:
        if path:
            combo.chosen.emit(path)
    menu.addAction("config.json…", lambda: choose(
        QFileDialog.getOpenFileName(parent, "Open config.json", "", "Model config (*.json)")[0]))
    menu.addAction("Model folder…", lambda: choose(QFileDialog.getExistingDirectory(parent, "Open model folder")))
    button.setMenu(menu)
    row = QWidget(parent)
    h = QHBoxLayout(row)
    h.setContentsMargins(0, 0, 0, 0)
    h.addWidget(combo, 1)
    h.addWidget(button)
    return Bound(row, combo.chosen, str, combo.show_value)


def gpu_input(_field: str, _label: str, parent: QWidget) -> Bound:
    """The GPU: a type-to-search combo of the catalog (memory and price in each label)."""
    combo = SearchCombo(parent)
    _compact(combo)
    for i, (label, ident, name) in enumerate(gpu_items()):
        combo.addItem(label, ident)
        combo.setItemData(i, name, Qt.ItemDataRole.ToolTipRole)
    combo.lineEdit().setPlaceholderText("type to search GPUs")
    return Bound(combo, combo.chosen, str, lambda value: combo.show_value(gpu_id_for(value)))


def _is_lora(plan: Plan) -> bool:
    return plan.is_lora


def _is_qlora(plan: Plan) -> bool:
    return plan.method == "qlora"


def _runs_kbit_prep(plan: Plan) -> bool:
    """peft's prepare_model_for_kbit_training runs only where transformers' QLoRA path does
    (core.memory.precision.kbit_upcast: torchtune, litgpt and unsloth keep 16-bit norms)."""
    return plan.method == "qlora" and plan.framework not in NO_KBIT_PREP_FRAMEWORKS


def _patches_transformers(plan: Plan) -> bool:
    """Liger patches Hugging Face transformers models only (core.plan.check_stack)."""
    return plan.framework == "transformers"


def _offloads_activations(plan: Plan) -> bool:
    """Where the framework can offload activations as set up: core.plan.activation_offload_refusal
    (litgpt never, unsloth and torchtune with gradient checkpointing only) is the one rule."""
    return activation_offload_refusal(plan) is None


def _steps_in_backward(plan: Plan) -> bool:
    """Only torchtune's full fine-tuning recipes step the optimizer inside backward."""
    return plan.framework == "torchtune" and plan.method == "full"


# The training stack (plan-v1 "Additions: the training stack"): a framework choice brings its
# release defaults for the other fields (core.stack_defaults.with_framework).
STACK_GROUP = Group("Stack", (Row("framework", "Framework", choice(FRAMEWORKS), apply=with_framework),
                              Row("loss", "Loss", choice(LOSSES)),
                              Row("liger", "Liger kernels", check, _patches_transformers),
                              Row("compile", "torch.compile", check),
                              Row("activation_offload", "Activation offload", check, _offloads_activations),
                              Row("optimizer_in_backward", "Optimizer in backward", check, _steps_in_backward)))


def _has_objective(plan: Plan) -> bool:
    """Preference / RL fine-tuning: the fields SFT never reads."""
    return plan.algorithm != "sft"


def _is_grpo(plan: Plan) -> bool:
    return plan.algorithm == "grpo"


def _vllm_colocated(plan: Plan) -> bool:
    return plan.algorithm == "grpo" and plan.generation == "vllm-colocate"


# Preference and RL fine-tuning (plan-v1 "Additions: preference and RL fine-tuning"), as TRL
# runs them: choosing an algorithm brings its reference default (core.plan.with_algorithm).
ALGORITHM_GROUP = Group("Algorithm", (
    Row("algorithm", "Algorithm", choice(ALGORITHMS), apply=with_algorithm),
    Row("reference", "Reference", choice(REFERENCES), _has_objective),
    Row("prompt_len", "Prompt tokens", power_slider(1, 1 << 20), _has_objective, gates=True),
    Row("completion_len", "Completion tokens", power_slider(1, 1 << 20), _is_grpo),
    Row("num_generations", "Generations per prompt", int_spin(2, 4096), _is_grpo, gates=True),
    Row("generation", "Generation", choice(GENERATIONS), _is_grpo),
    Row("vllm_gpu_memory_utilization", "vLLM share of the GPU", float_spin(0.01, 0.99, 2, step=0.05),
        _vllm_colocated)))


GROUPS: tuple[Group, ...] = (
    Group("Model", (Row("model", "Model", model_input, gates=True),)),
    # second: the card decides what fits, and stays above the fold of a 1280 x 720 window
    Group("Hardware", (Row("gpu", "GPU", gpu_input, gates=True),
                       Row("n_gpus", "GPU count", int_spin(1, 1024), gates=True))),
    Group("Method", (Row("method", "Method", choice(METHODS)),
                     Row("precision", "Precision", choice(PRECISIONS)))),
    Group("LoRA / QLoRA", (Row("lora_r", "Rank r", int_spin(1, 4096), _is_lora),
                           Row("lora_alpha", "Alpha", float_spin(0.01, 1e5, 2), _is_lora),
                           Row("lora_dropout", "Dropout", float_spin(0.0, 0.99, 2, step=0.05), _is_lora),
                           Row("lora_targets", "Targets", targets_text, _is_lora),
                           Row("quant_double", "QLoRA double quantization", check, _is_qlora),
                           Row("kbit_prep", "QLoRA kbit preparation (fp32 upcast)", check, _runs_kbit_prep))),
    Group("Training", (Row("optimizer", "Optimizer", choice(OPTIMIZERS)),
                       Row("attention", "Attention", choice(ATTENTIONS)),
                       Row("offload", "Offload", choice(OFFLOADS)),
                       Row("sharding", "Sharding", choice(SHARDINGS)),
                       Row("grad_ckpt", "Gradient checkpointing", check))),
    STACK_GROUP,
    ALGORITHM_GROUP,
    Group("Batch", (Row("batch_size", "Batch size", power_slider(1, 4096)),
                    Row("seq_len", "Sequence length", power_slider(16, 1 << 20)),
                    Row("grad_accum", "Grad accumulation", power_slider(1, 1024)))),
    Group("Data", (Row("dataset_tokens", "Dataset tokens", float_spin(0.0, 1e8, 1, step=10, scale=1e6, suffix=" M")),
                   Row("epochs", "Epochs", float_spin(0.01, 1000, 2)))),
)


# ------------------------------------------------------------------------ the panel
class PlanEditor(QWidget):
    """Form over every plan field in GROUPS; disables what cannot run and says why."""

    def __init__(self, controller: PlanController, parent: QWidget | None = None,
                 groups: tuple[Group, ...] = GROUPS) -> None:
        super().__init__(parent)
        self.controller = controller
        self._shown: Plan | None = None
        self._enabled_shown: dict[QWidget, bool] = {}
        self._choices_shown: dict[str, tuple[str | None, ...]] = {}
        self.rows: dict[str, Row] = {}
        self._gating: set[str] = set()            # fields whose edits re-check the choices
        self.bound: dict[str, Bound] = {}
        self.widgets: dict[str, QWidget] = {}     # plan field -> its widget (tests, focus)
        self.combos: dict[str, QComboBox] = {}    # the choice fields' combos
        self.forms: dict[str, QFormLayout] = {}   # group title -> its form
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        for group in groups:
            layout.addWidget(self._group_box(group))
        self.model_combo: SearchCombo = self.widgets["model"].findChild(SearchCombo)  # Find model (Ctrl+F)
        self.gpu_combo: SearchCombo = self.widgets["gpu"]                              # Find GPU (Ctrl+G)
        self.model_info = fixed_label(QLabel(self), lines=1)
        self.model_info.setStyleSheet("color: #555;")
        self.forms["Model"].addRow(self.model_info)
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {palette.ERROR_FG}; font-weight: bold;")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        layout.addStretch(1)
        controller.plan_changed.connect(self._on_controller_plan_changed)
        controller.error_changed.connect(self._on_controller_error_changed)
        controller.estimate_changed.connect(self._on_controller_estimate_changed)
        self._show_plan(controller.plan)

    # ---------------------------------------------------------------- building
    def _group_box(self, group: Group) -> QGroupBox:
        box = QGroupBox(group.title, self)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(6, 4, 6, 4)
        form.setVerticalSpacing(4)
        self.forms[group.title] = form
        for row in group.rows:
            self._add_row(form, row)
        return box

    def _add_row(self, form: QFormLayout, row: Row) -> None:
        """Build the row's widget, lay it out with its tip, connect widget -> plan."""
        bound = row.make(row.field, row.label, self)
        tip = FIELD_TIPS[row.field]
        bound.widget.setToolTip(tip)
        if bound.captioned:
            caption = QLabel(row.label)
            caption.setToolTip(tip)
            form.addRow(caption, bound.widget)
        else:
            form.addRow(bound.widget)
        bound.edited.connect(lambda *args, f=row.field, read=bound.read: self._on_widget_edited(f, read, args))
        self.rows[row.field], self.bound[row.field], self.widgets[row.field] = row, bound, bound.widget
        if bound.choices:
            self.combos[row.field] = bound.widget
        if row.gates or bound.gates:
            self._gating.add(row.field)

    # ------------------------------------------------------------ widget -> plan
    def _on_widget_edited(self, field: str, read: Callable[..., Any], args: tuple) -> None:
        try:
            value = read(*args)
        except PlanError as err:
            self._on_controller_error_changed(str(err))
            return
        self._edit(field, value)

    def _edit(self, field: str, value: Any) -> None:
        plan = self.controller.plan
        if value is None or getattr(plan, field) == value:
            return
        self.controller.set_plan(next_plan(plan, field, value, self.rows[field].apply if field in self.rows else None))

    def open_model_path(self, path: str) -> None:
        """Use a config.json or model folder path as the plan's model."""
        if path:
            self._edit("model", path)

    # ------------------------------------------------------------ plan -> widgets
    def _on_controller_plan_changed(self, plan: Plan) -> None:
        self._show_plan(plan)

    def _on_controller_error_changed(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))
        if message:
            self.model_info.setText("")  # the next valid estimate writes it again

    def _on_controller_estimate_changed(self, est: Any) -> None:
        if not self.error_label.isHidden():  # a refused edit's line (bad targets) ends with the next estimate
            self.error_label.hide()
        self.model_info.setText(f"{params(est.total_params)} params · {est.model.num_layers} layers · "
                                f"trainable {params(est.trainable_params)}")

    def _show_plan(self, plan: Plan) -> None:
        """Write the fields that changed since the last shown plan into their widgets, silently
        (napari's attr_to_settr); untouched widgets are not set again, so an edit repaints only
        what it changed."""
        old = self._shown
        self._shown = plan
        changed = [f for f in PLAN_FIELDS if old is None or getattr(old, f) != getattr(plan, f)]
        for field in changed:
            bound = self.bound.get(field)
            if bound is not None:
                with QSignalBlocker(bound.widget):
                    bound.show(getattr(plan, field))
        if old is None or self._gating.intersection(changed):
            self._show_enabled(plan)

    def _show_enabled(self, plan: Plan) -> None:
        """Grey out rows the plan ignores and choices core rejects (with the reason); only what
        differs from what is shown is written."""
        for field, row in self.rows.items():
            on = row.enabled(plan)
            widget = self.widgets[field]
            if self._enabled_shown.get(widget) != on:
                widget.setEnabled(on)
                self._enabled_shown[widget] = on
        valid = choice_problem(plan, "method", "") is None
        for field, combo in self.combos.items():
            values = self.bound[field].choices
            apply = self.rows[field].apply
            reasons = tuple(choice_problem(plan, field, value, apply) if valid else None for value in values)
            if self._choices_shown.get(field) == reasons:
                continue
            self._choices_shown[field] = reasons
            model = combo.model()
            if not isinstance(model, QStandardItemModel):
                continue
            for i, (value, reason) in enumerate(zip(values, reasons)):
                model.item(i).setEnabled(reason is None)
                combo.setItemData(i, reason or CHOICE_TIPS[field][value], Qt.ItemDataRole.ToolTipRole)


# ---------------------------------------------------------------------------- helpers
def model_items() -> list[tuple[str, str]]:
    """(label, model id) of every preset core.model_source offers."""
    items = []
    for info in list_presets():
        ident = getattr(info, "id", None) or str(info)
        name = getattr(info, "name", "") or ident
        label = ident if name == ident else f"{ident}  ·  {name}"
        items.append((label, ident))
    return items


def gpu_items() -> list[tuple[str, str, str]]:
    """(label, catalog id, full name) of every catalog GPU. The label leads with what tells
    cards apart (names.short_gpu_name: 'MI300X', not 'AMD Instinct …' once elided), then
    memory and price, short enough for the panel's width."""
    return [(f"{short_gpu_name(g.name)} · {gib(g.memory_bytes, 0)} · {usd_per_hour(g.price_usd_per_hour)}", g.id,
             g.name) for g in gpu_catalog()]


def next_plan(plan: Plan, field: str, value: Any, apply: Callable[[Plan, Any], Plan] | None = None) -> Plan:
    """The plan after an edit of `field` to `value` (through the row's `apply` when it has one)."""
    return apply(plan, value) if apply is not None else dataclasses.replace(plan, **{field: value})


def choice_problem(plan: Plan, field: str, value: str,
                   apply: Callable[[Plan, Any], Plan] | None = None) -> str | None:
    """core's reason why plan with field=value cannot run, None when it can ("" value: plan itself)."""
    if value and getattr(plan, field) == value:
        return None
    try:
        check_combination(next_plan(plan, field, value, apply) if value else plan)
    except PlanError as err:
        return str(err)
    return None


def _compact(combo: QComboBox) -> None:
    """Let a combo shrink to the panel's width (long GPU labels are elided, full in the popup)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)


def _num(value: float) -> float | int:
    """Whole numbers as int, so saved plans read 32 rather than 32.0."""
    return int(value) if float(value).is_integer() else float(value)
