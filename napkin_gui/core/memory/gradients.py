"""Gradients: one .grad per trainable parameter, in the parameter's dtype."""
from __future__ import annotations

from ..dtypes import tensor_bytes


def gradient_bytes(trainable_params: int, param_dtype: str) -> int:
    """AccumulateGrad allocates .grad like the parameter (torch/csrc/autograd/functions/accumulate_grad.h)."""
    return tensor_bytes(trainable_params, param_dtype)
