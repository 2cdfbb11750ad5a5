"""PlanEditor: the left panel. Every widget edits one plan-v1 field through the controller.

Widget -> controller.set_plan(replace(plan, field=value)); controller.plan_changed ->
_show_plan writes every widget under QSignalBlocker, so nothing echoes back. Choices
that core.plan.check_combination rejects for the current plan are disabled, with the
core's one-line reason as their tooltip.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMenu, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from ..core.errors import PlanError
from ..core.plan import (ATTENTIONS, METHODS, OFFLOADS, OPTIMIZERS, PLAN_FIELDS, PRECISIONS, SHARDINGS,
                         Plan, check_combination)
from . import palette
from .controller import PlanController
from .help_text import CHOICE_TIPS, FIELD_TIPS
from .plot_style import fixed_label
from .widgets import SearchCombo, SpinSlider

GIB = 2**30
CHOICES: dict[str, tuple[str, ...]] = {
    "method": METHODS, "precision": PRECISIONS, "optimizer": OPTIMIZERS,
    "attention": ATTENTIONS, "sharding": SHARDINGS, "offload": OFFLOADS,
}


def model_items() -> list[tuple[str, str]]:
    """(label, model id) of every preset core.model_source offers."""
    try:
        from ..core.model_source import list_presets
    except ImportError:
        return []
    items = []
    for info in list_presets():
        ident = getattr(info, "id", None) or str(info)
        name = getattr(info, "name", "") or ident
        label = ident if name == ident else f"{ident}  ·  {name}"
        items.append((label, ident))
    return items


def gpu_items() -> list[tuple[str, str]]:
    """(label with memory and price, catalog id) of every catalog GPU."""
    from ..core.gpu_catalog import gpu_catalog
    return [(f"{g.name}  ·  {g.memory_bytes / GIB:.0f} GiB  ·  ${g.price_usd_per_hour:.2f}/h", g.id)
            for g in gpu_catalog()]


def gpu_id_for(name: str) -> str:
    """The catalog id of a plan's gpu (an id or an NVML name), or the name when unknown."""
    from ..core.gpu_catalog import lookup_gpu
    try:
        spec = lookup_gpu(name)
    except PlanError:
        spec = None
    return spec.id if spec is not None else name


class PlanEditor(QWidget):
    """Form over every plan field; disables what cannot run and says why."""

    model_file_requested = Signal()

    def __init__(self, controller: PlanController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._shown: Plan | None = None
        self.combos: dict[str, QComboBox] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._model_group())
        layout.addWidget(self._method_group())
        layout.addWidget(self._lora_group())
        layout.addWidget(self._training_group())
        layout.addWidget(self._batch_group())
        layout.addWidget(self._hardware_group())
        layout.addWidget(self._data_group())
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {palette.ERROR_FG}; font-weight: bold;")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        layout.addStretch(1)
        controller.plan_changed.connect(self._on_controller_plan_changed)
        controller.error_changed.connect(self._on_controller_error_changed)
        self._show_plan(controller.plan)

    # ---------------------------------------------------------------- building
    def _form_group(self, title: str) -> tuple[QGroupBox, QFormLayout]:
        box = QGroupBox(title, self)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(6, 4, 6, 4)
        form.setVerticalSpacing(4)
        return box, form

    def _row(self, form: QFormLayout, label: str, field: str, widget: QWidget) -> None:
        widget.setToolTip(FIELD_TIPS[field])
        caption = QLabel(label)
        caption.setToolTip(FIELD_TIPS[field])
        form.addRow(caption, widget)

    def _choice(self, form: QFormLayout, label: str, field: str) -> QComboBox:
        combo = QComboBox(self)
        _compact(combo)
        for i, value in enumerate(CHOICES[field]):
            combo.addItem(value, value)
            combo.setItemData(i, CHOICE_TIPS[field][value], Qt.ItemDataRole.ToolTipRole)
        combo.currentIndexChanged.connect(lambda _i, f=field, c=combo: self._edit(f, c.currentData()))
        self.combos[field] = combo
        self._row(form, label, field, combo)
        return combo

    def _check(self, form: QFormLayout, label: str, field: str) -> QCheckBox:
        box = QCheckBox(label, self)
        box.toggled.connect(lambda on, f=field: self._edit(f, bool(on)))
        box.setToolTip(FIELD_TIPS[field])
        form.addRow(box)
        return box

    def _model_group(self) -> QGroupBox:
        box, form = self._form_group("Model")
        self.model_combo = SearchCombo(self)
        _compact(self.model_combo)
        for label, ident in model_items():
            self.model_combo.addItem(label, ident)
        self.model_combo.chosen.connect(lambda text: self._edit("model", text))
        self.model_combo.lineEdit().setPlaceholderText("type to search presets, or a path")
        self.open_model_button = QToolButton(self)
        self.open_model_button.setText("Open…")
        self.open_model_button.setToolTip("Open a Hugging Face config.json or a local model folder.")
        self.open_model_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.open_model_button)
        menu.addAction("config.json…", self._on_open_config_triggered)
        menu.addAction("Model folder…", self._on_open_folder_triggered)
        self.open_model_button.setMenu(menu)
        row = QWidget(self)
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.model_combo, 1)
        h.addWidget(self.open_model_button)
        self._row(form, "Model", "model", row)
        self.model_combo.setToolTip(FIELD_TIPS["model"])
        self.model_info = fixed_label(QLabel(self), lines=1)
        self.model_info.setStyleSheet("color: #555;")
        form.addRow(self.model_info)
        controller_est = self.controller.estimate_changed
        controller_est.connect(self._on_controller_estimate_changed)
        return box

    def _method_group(self) -> QGroupBox:
        box, form = self._form_group("Method")
        self._choice(form, "Method", "method")
        self._choice(form, "Precision", "precision")
        return box

    def _lora_group(self) -> QGroupBox:
        box, form = self._form_group("LoRA / QLoRA")
        self.lora_box = box
        self.lora_r = QSpinBox(self)
        self.lora_r.setRange(1, 4096)
        self.lora_r.valueChanged.connect(lambda v: self._edit("lora_r", int(v)))
        self._row(form, "Rank r", "lora_r", self.lora_r)
        self.lora_alpha = QDoubleSpinBox(self)
        self.lora_alpha.setRange(0.01, 1e5)
        self.lora_alpha.setDecimals(2)
        self.lora_alpha.valueChanged.connect(lambda v: self._edit("lora_alpha", _num(v)))
        self._row(form, "Alpha", "lora_alpha", self.lora_alpha)
        self.lora_dropout = QDoubleSpinBox(self)
        self.lora_dropout.setRange(0.0, 0.99)
        self.lora_dropout.setSingleStep(0.05)
        self.lora_dropout.valueChanged.connect(lambda v: self._edit("lora_dropout", _num(v)))
        self._row(form, "Dropout", "lora_dropout", self.lora_dropout)
        self.lora_targets = QLineEdit(self)
        self.lora_targets.setPlaceholderText("all-linear or q_proj, v_proj")
        self.lora_targets.editingFinished.connect(self._on_targets_editing_finished)
        self._row(form, "Targets", "lora_targets", self.lora_targets)
        self.quant_double = self._check(form, "QLoRA double quantization", "quant_double")
        self.kbit_prep = self._check(form, "QLoRA kbit preparation (fp32 upcast)", "kbit_prep")
        return box

    def _training_group(self) -> QGroupBox:
        box, form = self._form_group("Training")
        self._choice(form, "Optimizer", "optimizer")
        self._choice(form, "Attention", "attention")
        self._choice(form, "Offload", "offload")
        self._choice(form, "Sharding", "sharding")
        self.grad_ckpt = self._check(form, "Gradient checkpointing", "grad_ckpt")
        return box

    def _batch_group(self) -> QGroupBox:
        box, form = self._form_group("Batch")
        self.batch_size = SpinSlider(1, 4096, self)
        self.seq_len = SpinSlider(16, 1 << 20, self)
        self.grad_accum = SpinSlider(1, 1024, self)
        for field, widget, label in (("batch_size", self.batch_size, "Batch size"),
                                     ("seq_len", self.seq_len, "Sequence length"),
                                     ("grad_accum", self.grad_accum, "Grad accumulation")):
            widget.value_changed.connect(lambda v, f=field: self._edit(f, int(v)))
            self._row(form, label, field, widget)
        return box

    def _hardware_group(self) -> QGroupBox:
        box, form = self._form_group("Hardware")
        self.gpu_combo = SearchCombo(self)
        _compact(self.gpu_combo)
        for label, ident in gpu_items():
            self.gpu_combo.addItem(label, ident)
        self.gpu_combo.lineEdit().setPlaceholderText("type to search GPUs")
        self.gpu_combo.chosen.connect(lambda text: self._edit("gpu", text))
        self._row(form, "GPU", "gpu", self.gpu_combo)
        self.n_gpus = QSpinBox(self)
        self.n_gpus.setRange(1, 1024)
        self.n_gpus.valueChanged.connect(lambda v: self._edit("n_gpus", int(v)))
        self._row(form, "GPU count", "n_gpus", self.n_gpus)
        return box

    def _data_group(self) -> QGroupBox:
        box, form = self._form_group("Data")
        self.dataset_tokens = QDoubleSpinBox(self)
        self.dataset_tokens.setRange(0.0, 1e8)
        self.dataset_tokens.setDecimals(1)
        self.dataset_tokens.setSuffix(" M")
        self.dataset_tokens.setSingleStep(10)
        self.dataset_tokens.valueChanged.connect(lambda v: self._edit("dataset_tokens", _num(v * 1e6)))
        self._row(form, "Dataset tokens", "dataset_tokens", self.dataset_tokens)
        self.epochs = QDoubleSpinBox(self)
        self.epochs.setRange(0.01, 1000)
        self.epochs.setDecimals(2)
        self.epochs.valueChanged.connect(lambda v: self._edit("epochs", _num(v)))
        self._row(form, "Epochs", "epochs", self.epochs)
        return box

    # ------------------------------------------------------------ widget -> plan
    def _edit(self, field: str, value: Any) -> None:
        plan = self.controller.plan
        if getattr(plan, field) == value or value is None:
            return
        self.controller.set_plan(dataclasses.replace(plan, **{field: value}))

    def _on_targets_editing_finished(self) -> None:
        text = self.lora_targets.text().strip() or "all-linear"
        if text == "all-linear":
            self._edit("lora_targets", text)
            return
        names = tuple(t.strip() for t in text.split(",") if t.strip())
        if names and all(n.isidentifier() for n in names):
            self._edit("lora_targets", names)
        else:
            self._on_controller_error_changed(
                "lora_targets: use all-linear or module names separated by commas, such as q_proj, v_proj")

    def open_model_path(self, path: str) -> None:
        """Use a config.json or model folder path as the plan's model."""
        if path:
            self._edit("model", path)

    def _on_open_config_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open config.json", "", "Model config (*.json)")
        self.open_model_path(path)

    def _on_open_folder_triggered(self) -> None:
        self.open_model_path(QFileDialog.getExistingDirectory(self, "Open model folder"))

    # ------------------------------------------------------------ plan -> widgets
    def _on_controller_plan_changed(self, plan: Plan) -> None:
        self._show_plan(plan)

    def _on_controller_error_changed(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _on_controller_estimate_changed(self, est: Any) -> None:
        self.model_info.setText(f"{est.total_params / 1e9:.2f} B params · {est.model.num_layers} layers · "
                                f"trainable {est.trainable_params / 1e6:,.1f} M")

    def _show_plan(self, plan: Plan) -> None:
        """Write the fields that changed since the last shown plan into their widgets, silently.

        Untouched widgets are not set again, so an edit repaints only what it changed.
        """
        old = self._shown
        changed = {f for f in PLAN_FIELDS if old is None or getattr(old, f) != getattr(plan, f)}
        self._shown = plan
        if "model" in changed:
            self.model_combo.show_value(plan.model)
        if "gpu" in changed:
            self.gpu_combo.show_value(gpu_id_for(plan.gpu))
        for field, combo in self.combos.items():
            if field in changed:
                with QSignalBlocker(combo):
                    combo.setCurrentIndex(combo.findData(getattr(plan, field)))
        targets = plan.lora_targets if isinstance(plan.lora_targets, str) else ", ".join(plan.lora_targets)
        values = {"lora_r": plan.lora_r, "lora_alpha": plan.lora_alpha, "lora_dropout": plan.lora_dropout,
                  "n_gpus": plan.n_gpus, "dataset_tokens": plan.dataset_tokens / 1e6, "epochs": plan.epochs,
                  "quant_double": plan.quant_double, "kbit_prep": plan.kbit_prep, "grad_ckpt": plan.grad_ckpt,
                  "lora_targets": targets, "batch_size": plan.batch_size, "seq_len": plan.seq_len,
                  "grad_accum": plan.grad_accum}
        for field in changed & values.keys():
            widget, value = getattr(self, field), values[field]
            with QSignalBlocker(widget):
                if isinstance(widget, QCheckBox):
                    widget.setChecked(value)
                elif isinstance(widget, QLineEdit):
                    widget.setText(value)
                elif isinstance(widget, SpinSlider):
                    widget.set_value(value)
                else:
                    widget.setValue(value)
        if changed & (set(CHOICES) | {"n_gpus", "model", "gpu"}):
            self._show_enabled(plan)

    def _show_enabled(self, plan: Plan) -> None:
        """Grey out options the method ignores and choices core rejects (with the reason)."""
        for widget in (self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets):
            widget.setEnabled(plan.is_lora)
        for widget in (self.quant_double, self.kbit_prep):
            widget.setEnabled(plan.method == "qlora")
        valid = choice_problem(plan, "method", "") is None
        for field, combo in self.combos.items():
            model = combo.model()
            if not isinstance(model, QStandardItemModel):
                continue
            for i, value in enumerate(CHOICES[field]):
                reason = choice_problem(plan, field, value) if valid else None
                model.item(i).setEnabled(reason is None)
                combo.setItemData(i, reason or CHOICE_TIPS[field][value], Qt.ItemDataRole.ToolTipRole)


def choice_problem(plan: Plan, field: str, value: str) -> str | None:
    """core's reason why plan with field=value cannot run, None when it can ("" value: plan itself)."""
    if value and getattr(plan, field) == value:
        return None
    try:
        check_combination(dataclasses.replace(plan, **{field: value}) if value else plan)
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
