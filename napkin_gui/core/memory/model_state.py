"""Model state: weights, adapters, gradients and optimizer states of one plan, before sharding.

Counts the plan's tensors from the ModelSpec (which are trainable, in which dtype) and asks
the mechanism modules (weights, lora, gradients, optimizer) for their bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..dtypes import tensor_bytes
from ..model_spec import ModelSpec
from ..plan import Plan
from ..spec_cache import SpecCache
from ..frameworks import torchtune
from . import gradients, lora, optimizer, weights
from .precision import kbit_upcast


@dataclass(frozen=True, slots=True)
class ModelState:
    total_params: int
    trainable_params: int
    weights_bytes: int          # base weights as stored on the GPU (NF4 codes + absmax for QLoRA)
    adapter_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    optimizer_temp_bytes: int   # transient inside optimizer.step()
    optimizer_states_paged: bool
    per_layer_weight_bytes: tuple[int, ...]    # for FSDP gathers (stored dtype)
    per_layer_gradient_bytes: tuple[int, ...]  # gradients appear layer by layer in backward
    head_gradient_bytes: int                   # embeddings / lm_head / final norm
    weights_formula: str
    optimizer_formula: str
    lm_head_gradient_bytes: int = 0            # full fine-tuning: lm_head's [V, h] weight gradient
    paged_tensor_bytes: int = 0                # paged optimizers: the largest tensor's states (resident in its update)


def _block_linear_weight_params(spec: ModelSpec) -> int:
    return sum(n * sum(lin.weight_params for lin in layer.linears) for n, layer in spec.layer_groups)


def _adapter_params_per_layer(spec: ModelSpec, plan: Plan) -> tuple[int, ...]:
    if not plan.is_lora:
        return tuple(0 for _ in range(spec.num_layers))
    out = []
    for n, layer in spec.layer_groups:
        targets = lora.lora_target_linears(layer, plan.lora_targets)
        out.extend([lora.lora_adapter_params(targets, plan.lora_r)] * n)
    return tuple(out)


# (shape, how many tensors have it): MoE experts share a shape, so they are counted, not listed.
CountedShapes = tuple[tuple[tuple[int, ...], int], ...]


def _trainable_tensor_shapes(spec: ModelSpec, plan: Plan) -> CountedShapes:
    """Shapes of the trainable tensors with their counts (8-bit optimizers and Adafactor size
    states per tensor); one entry per distinct linear, never one per expert."""
    shapes: list[tuple[tuple[int, ...], int]] = []
    for n, layer in spec.layer_groups:
        if plan.is_lora:
            for lin in lora.lora_target_linears(layer, plan.lora_targets):
                shapes += [((plan.lora_r, lin.d_in), lin.count * n), ((lin.d_out, plan.lora_r), lin.count * n)]
            continue
        for lin in layer.linears:
            shapes.append(((lin.d_out, lin.d_in), lin.count * n))
            if lin.bias:
                shapes.append(((lin.d_out,), lin.count * n))
        if layer.norms:
            shapes.append(((spec.hidden_size,), layer.norms * n))
    if plan.is_lora and lora.lm_head_adapter_params(spec, plan.lora_targets, plan.lora_r):
        shapes += [((plan.lora_r, spec.hidden_size), 1), ((spec.vocab_size, plan.lora_r), 1)]
    if not plan.is_lora:
        shapes.append(((spec.vocab_size, spec.hidden_size), 1 if spec.tie_word_embeddings else 2))
        if spec.extra_params:
            shapes.append(((spec.extra_params,), 1))
    return tuple((shape, count) for shape, count in shapes if count)


def _weights(spec: ModelSpec, plan: Plan) -> tuple[int, str]:
    total = spec.total_params
    if plan.method != "qlora":
        return weights.dense_weight_bytes(total, plan.param_dtype), f"{total:,} params x {plan.param_dtype}"
    if plan.framework == "torchtune":
        return _torchtune_nf4_weights(spec, plan)
    if plan.framework == "litgpt":
        return _litgpt_bnb_weights(spec, plan)
    quantized = _block_linear_weight_params(spec)
    tensors = sum(n * sum(lin.count for lin in layer.linears) for n, layer in spec.layer_groups)
    # prepare_model_for_kbit_training upcasts every non-quantized parameter to fp32
    # (peft/utils/other.py); without it they stay in the compute dtype.
    rest_dtype = "fp32" if kbit_upcast(plan) else plan.compute_dtype
    rest = total - quantized
    nf4 = weights.nf4_weight_bytes(quantized, tensors, plan.quant_double)
    dense = weights.dense_weight_bytes(rest, rest_dtype)
    formula = (f"{quantized:,} linear params x NF4 (4 bit + absmax{' double-quant' if plan.quant_double else ''})"
               f" + {rest:,} other params x {rest_dtype}")
    return nf4 + dense, formula


def _torchtune_nf4_weights(spec: ModelSpec, plan: Plan) -> tuple[int, str]:
    """torchtune QLoRA: every block linear is a torchao NF4Tensor (LoRALinear quantize_base,
    FrozenNF4Linear); the embedding, norms and output projection stay in the recipe dtype
    (torchtune/models/llama3/_component_builders.py: "quantize_base is not applied to final
    output_proj currently")."""
    elem = tensor_bytes(1, plan.compute_dtype)
    nf4 = sum(n * lin.count * torchtune.nf4_weight_bytes(lin.d_in * lin.d_out, elem)
              for n, layer in spec.layer_groups for lin in layer.linears)
    quantized = _block_linear_weight_params(spec)
    rest = spec.total_params - quantized  # biases stay dense too
    formula = (f"{quantized:,} linear params x torchao NF4Tensor (4 bit + int8 scaler per 64 + "
               f"{plan.compute_dtype} factor per 16384) + {rest:,} other params x {plan.compute_dtype}")
    return nf4 + weights.dense_weight_bytes(rest, plan.compute_dtype), formula


def _litgpt_bnb_weights(spec: ModelSpec, plan: Plan) -> tuple[int, str]:
    """litgpt --quantize bnb.nf4[-dq]: lightning's BitsandbytesPrecision replaces every nn.Linear,
    lm_head included, with a bnb Linear4bit; the embedding and norms stay in the `-true` dtype
    (lightning/fabric/plugins/precision/bitsandbytes.py _convert_layers, no ignore_modules)."""
    tensors = sum(n * sum(lin.count for lin in layer.linears) for n, layer in spec.layer_groups)
    quantized = _block_linear_weight_params(spec)
    if spec.lm_head_params:
        quantized += spec.lm_head_params
        tensors += 1
    rest = spec.total_params - quantized
    nf4 = weights.nf4_weight_bytes(quantized, tensors, plan.quant_double)
    formula = (f"{quantized:,} linear params (lm_head too) x NF4 (4 bit + absmax"
               f"{' double-quant' if plan.quant_double else ''}) + {rest:,} other params x {plan.compute_dtype}")
    return nf4 + weights.dense_weight_bytes(rest, plan.compute_dtype), formula


def _optimizer(plan: Plan, trainable: int, state_dtype: str,
               counted: CountedShapes) -> tuple[int, int, str]:
    """(state bytes, step temporary bytes, formula)."""
    name = plan.optimizer
    shapes, counts = [s for s, _ in counted], [c for _, c in counted]
    if name == "adamw":
        return (optimizer.adamw_state_bytes(trainable, state_dtype),
                optimizer.adamw_foreach_temp_bytes(trainable, state_dtype),
                f"2 x {trainable:,} x {state_dtype} (exp_avg, exp_avg_sq) + foreach sqrt temp")
    if name == "paged-adamw":
        return (optimizer.paged_adamw32_state_bytes(trainable), 0,
                f"2 x {trainable:,} x fp32 (bitsandbytes PagedAdamW state1, state2; CUDA managed memory)")
    if name in ("adamw-8bit", "paged-adamw-8bit"):
        numels = [_numel(s) for s in shapes]
        where = "CUDA managed memory" if name.startswith("paged") else "GPU"
        return (optimizer.adam8bit_state_bytes(numels, counts), 0,
                f"2 x {trainable:,} x uint8 + fp32 absmax per 256 ({where})")
    if name == "sgd":
        return optimizer.sgd_state_bytes(trainable, state_dtype), 0, "SGD without momentum: no state"
    largest = max((_numel(s) for s in shapes), default=0)
    return (optimizer.adafactor_state_bytes(shapes, state_dtype, counts),
            optimizer.adafactor_temp_bytes(largest, state_dtype),
            "Adafactor row + column factors; temp = largest parameter")


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


PAGED_OPTIMIZERS = ("paged-adamw-8bit", "paged-adamw")   # bitsandbytes: states in CUDA managed memory

# The plan fields model_state reads (tests/test_model_state_cache.py checks no other matters):
# batch size, sequence length, GPU and sharding leave the model's state unchanged.
# framework: whose modules hold the state (torchtune's LoRALinear keeps adapters in the model dtype).
STATE_FIELDS = ("method", "precision", "lora_r", "lora_targets", "optimizer", "quant_double", "kbit_prep",
                "framework")
_CACHE: SpecCache[ModelState] = SpecCache(256)


def model_state(spec: ModelSpec, plan: Plan) -> ModelState:
    """Weights, adapters, gradients and optimizer states for one GPU before any sharding
    (cached by the plan's STATE_FIELDS)."""
    key = tuple(getattr(plan, name) for name in STATE_FIELDS)
    return _CACHE.get(spec, key, lambda: _model_state(spec, plan))


def _model_state(spec: ModelSpec, plan: Plan) -> ModelState:
    if plan.is_lora:
        lora.check_lora_targets(spec, plan.lora_targets)
    adapter_per_layer = _adapter_params_per_layer(spec, plan)
    head_adapter = lora.lm_head_adapter_params(spec, plan.lora_targets, plan.lora_r) if plan.is_lora else 0
    adapter_params = sum(adapter_per_layer) + head_adapter
    weights_bytes, weights_formula = _weights(spec, plan)
    if plan.is_lora:
        trainable, grad_dtype = adapter_params, lora.adapter_dtype(plan.framework, plan.param_dtype)
        per_layer_trainable = adapter_per_layer
        head_trainable = head_adapter
    else:
        trainable, grad_dtype = spec.total_params, plan.param_dtype
        per_layer_trainable = tuple(p for n, layer in spec.layer_groups for p in [layer.params] * n)
        head_trainable = max(0, spec.total_params - sum(per_layer_trainable))
    shapes = _trainable_tensor_shapes(spec, plan)
    states, temp, opt_formula = _optimizer(plan, trainable, grad_dtype, shapes)
    per_layer_weights = tuple(b for n, layer in spec.layer_groups for b in [
        tensor_bytes(layer.params, plan.param_dtype) if plan.method != "qlora" else layer.params // 2] * n)
    return ModelState(
        total_params=spec.total_params + adapter_params,
        trainable_params=trainable,
        weights_bytes=weights_bytes,
        adapter_bytes=lora.lora_adapter_bytes(adapter_params, lora.adapter_dtype(plan.framework, plan.param_dtype)),
        gradient_bytes=gradients.gradient_bytes(trainable, grad_dtype),
        optimizer_state_bytes=states,
        optimizer_temp_bytes=temp,
        optimizer_states_paged=plan.optimizer in PAGED_OPTIMIZERS,
        per_layer_weight_bytes=per_layer_weights,
        per_layer_gradient_bytes=tuple(gradients.gradient_bytes(p, grad_dtype) for p in per_layer_trainable),
        head_gradient_bytes=gradients.gradient_bytes(head_trainable, grad_dtype),
        weights_formula=weights_formula,
        optimizer_formula=opt_formula,
        lm_head_gradient_bytes=(0 if plan.is_lora else
                                gradients.gradient_bytes(spec.vocab_size * spec.hidden_size, grad_dtype)),
        paged_tensor_bytes=(optimizer.paged_tensor_state_bytes(plan.optimizer, max(_numel(s) for s, _ in shapes))
                            if plan.optimizer in PAGED_OPTIMIZERS and shapes else 0),
    )
