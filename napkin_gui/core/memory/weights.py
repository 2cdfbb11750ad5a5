"""Bytes of the model's own weights: dense, NF4-quantized, and fp32 master copies."""
from __future__ import annotations

import math

from ..dtypes import tensor_bytes

# bitsandbytes 4-bit: one absmax per 64 weights (bnb_4bit blocksize 64, the transformers
# BitsAndBytesConfig default); double quantization stores those absmax as uint8 with one
# fp32 absmax per 256 of them (bitsandbytes/functional.py quantize_4bit, compress_statistics).
NF4_BLOCKSIZE = 64
NF4_NESTED_BLOCKSIZE = 256
# 16 fp32 code values per quantized tensor + the nested 256-entry uint8 code map
NF4_CODE_BYTES_PER_TENSOR = 16 * 4 + 256 * 4


def dense_weight_bytes(params: int, dtype: str) -> int:
    """Unquantized weights: params x bytes of their dtype."""
    return tensor_bytes(params, dtype)


def nf4_weight_bytes(params: int, tensors: int, double_quant: bool) -> int:
    """NF4 codes (two per byte) + absmax per 64-weight block (+ nested fp32 absmax).

    bitsandbytes Linear4bit / Params4bit, quant_type="nf4". `tensors` is how many
    quantized matrices hold the params (each carries its own code tables).
    """
    codes = tensor_bytes(params, "nf4")
    blocks = math.ceil(params / NF4_BLOCKSIZE)
    if double_quant:
        absmax = tensor_bytes(blocks, "uint8") + tensor_bytes(math.ceil(blocks / NF4_NESTED_BLOCKSIZE), "fp32")
    else:
        absmax = tensor_bytes(blocks, "fp32")
    return codes + absmax + tensors * NF4_CODE_BYTES_PER_TENSOR
