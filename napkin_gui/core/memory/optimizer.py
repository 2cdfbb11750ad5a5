"""Optimizer states and the temporaries of optimizer.step().

Sizes per optimizer, for the trainable tensors given as (numel, rows, cols) shapes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..dtypes import tensor_bytes

# bitsandbytes 8-bit optimizers (bitsandbytes/optim/optimizer.py Optimizer8bit): tensors with
# fewer than min_8bit_size=4096 elements keep 32-bit states; larger ones keep uint8 states
# with one fp32 absmax per 256-element block (functional.optimizer_update_8bit_blockwise,
# blocksize 256 since bitsandbytes 0.45) and a 256-entry fp32 quantization map per state.
BNB_MIN_8BIT_SIZE = 4096
BNB_BLOCKSIZE = 256
BNB_QMAP_BYTES = 256 * 4


def adamw_state_bytes(trainable_params: int, state_dtype: str) -> int:
    """exp_avg + exp_avg_sq, each like the parameter (torch.optim.AdamW, state_dtype = param dtype)."""
    return 2 * tensor_bytes(trainable_params, state_dtype)


def adamw_foreach_temp_bytes(trainable_params: int, state_dtype: str) -> int:
    """torch._foreach_sqrt(exp_avg_sqs) allocates one full copy of the second moments.

    torch/optim/adam.py _multi_tensor_adam (foreach is the CUDA default): exp_avg_sq_sqrt
    lives until _foreach_addcdiv_ has updated every parameter of the group.
    """
    return tensor_bytes(trainable_params, state_dtype)


def paged_adamw32_state_bytes(trainable_params: int) -> int:
    """bitsandbytes PagedAdamW (optim_bits=32): state1 and state2 in fp32 whatever the parameter
    dtype (bitsandbytes 0.50 optim/optimizer.py Optimizer2State.init_state, get_state_buffer(p,
    dtype=torch.float32)); they live in CUDA managed memory (tensors under 1e5 elements stay in
    device memory, get_state_buffer)."""
    return 2 * tensor_bytes(trainable_params, "fp32")


def paged_tensor_state_bytes(optimizer_name: str, largest_numel: int) -> int:
    """Paged states that must be on the card at once: those of one tensor. bitsandbytes 0.50
    optim/optimizer.py Optimizer8bit.step runs, per parameter, prefetch_state(p) (state1 and
    state2 to the device, functional.prefetch_tensor: cudaMemPrefetchAsync), update_step, then
    sync_gpu(p); so the largest trainable tensor's states must fit beside torch's reserve."""
    if optimizer_name == "paged-adamw":
        return paged_adamw32_state_bytes(largest_numel)
    return adam8bit_state_bytes([largest_numel])


def adam8bit_state_bytes(tensor_numels: Sequence[int], counts: Sequence[int] | None = None) -> int:
    """Two uint8 states + fp32 absmax per 256-block; small tensors keep two fp32 states.

    counts[i]: how many tensors have tensor_numels[i] elements (MoE experts share a shape;
    counting them keeps a 5,000,000-expert config as cheap as an 8-expert one)."""
    total = 0
    for numel, count in zip(tensor_numels, counts if counts is not None else [1] * len(tensor_numels)):
        if numel < BNB_MIN_8BIT_SIZE:
            one = 2 * tensor_bytes(numel, "fp32")
        else:
            blocks = math.ceil(numel / BNB_BLOCKSIZE)
            one = 2 * (tensor_bytes(numel, "uint8") + tensor_bytes(blocks, "fp32") + BNB_QMAP_BYTES)
        total += count * one
    return total


def sgd_state_bytes(trainable_params: int, state_dtype: str, momentum: bool = False) -> int:
    """torch.optim.SGD keeps a momentum buffer only when momentum != 0 (default 0)."""
    return tensor_bytes(trainable_params, state_dtype) if momentum else 0


def adafactor_state_bytes(shapes: Sequence[tuple[int, ...]], state_dtype: str,
                          counts: Sequence[int] | None = None) -> int:
    """torch.optim.Adafactor: row and column second-moment factors for matrices, full for vectors.

    torch/optim/_adafactor.py: row_var [.., rows, 1], col_var [.., 1, cols]; 1-D params keep
    a full variance; no first moment (beta1 is not used). counts[i]: tensors of shapes[i].
    """
    elements = 0
    for shape, count in zip(shapes, counts if counts is not None else [1] * len(shapes)):
        if len(shape) >= 2:
            lead = math.prod(shape[:-2])
            elements += count * lead * (shape[-2] + shape[-1])
        else:
            elements += count * math.prod(shape)
    return tensor_bytes(elements, state_dtype)


def adafactor_temp_bytes(largest_param_numel: int, state_dtype: str) -> int:
    """Single-tensor Adafactor (its foreach default is off) builds var_estimate = row_var @ col_var,
    one full-size temporary of the parameter being updated (torch/optim/_adafactor.py)."""
    return tensor_bytes(largest_param_numel, state_dtype)
