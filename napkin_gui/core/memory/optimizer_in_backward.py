"""Optimizer in backward: each parameter is stepped the moment its gradient is accumulated,
so no full gradient buffer is ever alive.

torchtune 0.6.1 training/memory.py register_optim_in_bwd_hooks: one optimizer per parameter
(recipes/full_finetune_single_device.py, `optim_dict = {p: config.instantiate(cfg_optimizer, [p])}`)
stepped and zeroed in torch's Tensor.register_post_accumulate_grad_hook. At any moment one
parameter's gradient exists (plus the one autograd is producing), and the optimizer's
temporaries are those of a single parameter (a foreach step over one tensor).
"""
from __future__ import annotations

from ..model_spec import ModelSpec


def largest_parameter_params(spec: ModelSpec) -> int:
    """The largest trainable tensor of full fine-tuning: the embedding / lm_head [V, h] or the
    largest block linear (MoE experts are one fused tensor per projection in transformers 5)."""
    linears = (lin.weight_params for _, layer in spec.layer_groups for lin in layer.linears)
    return max(spec.vocab_size * spec.hidden_size, *linears)


def in_backward_gradient_bytes(spec: ModelSpec, gradient_bytes: int, trainable_params: int, shards: int) -> int:
    """Peak gradient bytes: two of the largest parameter's gradient (the one being stepped and
    the next being produced), in the gradients' dtype, per shard under FSDP."""
    per_param = gradient_bytes / max(trainable_params, 1)
    return min(gradient_bytes, int(2 * largest_parameter_params(spec) * per_param / shards))
