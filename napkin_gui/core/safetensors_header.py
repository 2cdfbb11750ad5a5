"""Tensor names, dtypes and shapes from *.safetensors headers, without reading tensor data.

A safetensors file starts with an 8-byte little-endian header length N, then N bytes of
JSON: {name: {"dtype": "BF16", "shape": [...], "data_offsets": [a, b]}, "__metadata__": {...}}
(huggingface/safetensors, "Format" in README.md). Sharded checkpoints list their files in
model.safetensors.index.json under "weight_map" (transformers modeling_utils.py).
"""
from __future__ import annotations

import math
import os
import struct
from collections import Counter
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath

from napkin_gui.core.dtypes import SAFETENSORS_DTYPES
from napkin_gui.core.errors import PlanError
from napkin_gui.core.files import loads_json, open_regular, read_regular_bytes
from napkin_gui.core.text import shown

# safetensors itself refuses headers over 100 MB (safetensors/src/tensor.rs MAX_HEADER_SIZE).
MAX_HEADER_BYTES = 100_000_000
INDEX_NAME = "model.safetensors.index.json"
# An index lists one entry per tensor: a few hundred KB for the largest released checkpoints.
MAX_INDEX_BYTES = 64_000_000

TensorInfo = tuple[str, tuple[int, ...]]  # (safetensors dtype name, shape)


def read_header(path: str | Path) -> dict[str, TensorInfo]:
    """{tensor name: (dtype, shape)} from one .safetensors file; reads only the header."""
    path = Path(path)
    try:
        with open_regular(path) as f:  # a FIFO or device named *.safetensors is refused, never read
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise PlanError(f"model: {path.name} is not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or n > size - 8:
                raise PlanError(f"model: {path.name} has a bad safetensors header length ({n} bytes)")
            text = f.read(n)
    except OSError as err:
        raise PlanError(f"model: cannot read {path.name} ({err.strerror or err})") from None
    try:
        header = loads_json(text, path.name, strict_keys=False)  # bad UTF-8, deep nesting, huge ints
    except PlanError:
        raise PlanError(f"model: {path.name} has a safetensors header that is not valid JSON") from None
    return _tensors(header, path.name)


def _tensors(header: object, where: str) -> dict[str, TensorInfo]:
    """Checks each entry's dtype and shape; drops __metadata__."""
    if not isinstance(header, dict):
        raise PlanError(f"model: {where} header must be a JSON object")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(dtype, str) or not isinstance(shape, list) or not all(
                type(d) is int and d >= 0 for d in shape):
            raise PlanError(f"model: {where} tensor {name[:60]!r} needs a dtype string and a shape of integers >= 0")
        tensors[name] = (dtype, tuple(shape))
    return tensors


def _index_files(index: Path) -> list[Path]:
    """Shard files named by model.safetensors.index.json's weight_map."""
    try:
        raw = read_regular_bytes(index, MAX_INDEX_BYTES)
    except OSError as err:
        raise PlanError(f"model: cannot read {index.name} ({err.strerror or err})") from None
    data = loads_json(raw, f"model: {index.name}", strict_keys=False)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise PlanError(f"model: {index.name} weight_map must map tensor names to file names")
    names = sorted(set(weight_map.values()))
    outside = [n for n in names if not _inside_folder(n)]
    if outside:
        raise PlanError(f"model: {index.name} weight_map names a file outside the model folder: "
                        f"{shown(outside[0], 120)} (shards are file names in the folder)")
    files = [index.parent / name for name in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise PlanError(f"model: {index.name} names missing shard files: {', '.join(shown(m, 80) for m in missing[:3])}")
    return files


def _inside_folder(name: str) -> bool:
    """A shard name is a relative path with no '..' part (checked on the text, so the
    symlinks of a Hugging Face cache snapshot, which point into ../../blobs, still work)."""
    if not name or "\0" in name or os.path.isabs(name) or PureWindowsPath(name).anchor:
        return False
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and ".." not in parts


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The weight files of a model folder: the index's shards, else model*.safetensors, else all."""
    folder = Path(folder)
    index = folder / INDEX_NAME
    if index.is_file():
        return _index_files(index)
    files = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    return [f for f in files if f.is_file()]


def folder_tensors(folder: str | Path) -> dict[str, TensorInfo]:
    """{tensor name: (dtype, shape)} over every weight file of a folder ({} when none)."""
    tensors: dict[str, TensorInfo] = {}
    for path in checkpoint_files(folder):
        tensors.update(read_header(path))
    return tensors


def _is_buffer(name: str, info: TensorInfo) -> bool:
    """Saved non-parameters: GPT-2's causal-mask buffers attn.bias/attn.masked_bias
    ([1, 1, n, n], modeling_gpt2.py in transformers < 4.35) and rotary inv_freq."""
    leaf = name.rsplit(".", 1)[-1]
    return (leaf == "masked_bias" or leaf == "inv_freq" or
            (name.endswith("attn.bias") and len(info[1]) == 4))


def header_param_count(tensors: Mapping[str, TensorInfo], skip: tuple[str, ...] = ()) -> int:
    """Elements of every tensor but buffers and the names in `skip` (e.g. a tied lm_head)."""
    return sum(math.prod(shape) for name, (dtype, shape) in tensors.items()
               if name not in skip and not _is_buffer(name, (dtype, shape)))


def header_stored_dtype(tensors: Mapping[str, TensorInfo]) -> str | None:
    """Our dtype name of the most common floating dtype by element count (None: no floats)."""
    floats: Counter[str] = Counter()
    for dtype, shape in tensors.values():
        if dtype.startswith(("F", "BF")):
            floats[dtype] += math.prod(shape)
    if not floats:
        return None
    name = floats.most_common(1)[0][0]
    return SAFETENSORS_DTYPES.get(name, "fp8" if name.startswith("F8") else "bf16")
