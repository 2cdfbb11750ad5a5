"""Bits per element of every dtype napkin reasons about, in one table."""
from __future__ import annotations

import math

# Storage width of one element. nf4/fp4 are bitsandbytes' 4-bit codes, two per byte
# (bitsandbytes/functional.py quantize_4bit packs into uint8).
DTYPE_BITS: dict[str, int] = {
    "fp64": 64,
    "fp32": 32,
    "tf32": 32,
    "bf16": 16,
    "fp16": 16,
    "fp8": 8,
    "int8": 8,
    "uint8": 8,
    "bool": 8,
    "nf4": 4,
    "fp4": 4,
    "int64": 64,
    "int32": 32,
}

# safetensors header dtype names -> ours (safetensors docs, "Format").
SAFETENSORS_DTYPES: dict[str, str] = {
    "F64": "fp64", "F32": "fp32", "BF16": "bf16", "F16": "fp16",
    "F8_E4M3": "fp8", "F8_E5M2": "fp8", "I8": "int8", "U8": "uint8",
    "BOOL": "bool", "I64": "int64", "I32": "int32", "I16": "fp16", "U16": "fp16",
}

# config.json "torch_dtype"/"dtype" strings -> ours.
TORCH_DTYPE_NAMES: dict[str, str] = {
    "float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16",
    "bfloat16": "bf16", "float64": "fp64",
}


def tensor_bytes(n_elements: int | float, dtype: str) -> int:
    """Bytes of a tensor of n elements: ceil(n * bits / 8)."""
    return int(math.ceil(n_elements * DTYPE_BITS[dtype] / 8))
