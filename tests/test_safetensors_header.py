"""safetensors headers: exact counts and dtypes, read without touching tensor data."""
from __future__ import annotations

import json
import math
import struct

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.hf_config import model_spec_from_config
from napkin_gui.core.safetensors_header import (
    folder_tensors,
    header_param_count,
    header_stored_dtype,
    read_header,
)

BYTES = {"BF16": 2, "F16": 2, "F32": 4, "U8": 1, "I64": 8}
TINY_LLAMA = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


def llama_state_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of LlamaForCausalLM's state dict (modeling_llama.py)."""
    h, ff, hd = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], h), "model.norm.weight": (h,),
              "lm_head.weight": (c["vocab_size"], h)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                       p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                       p + "mlp.gate_proj.weight": (ff, h), p + "mlp.up_proj.weight": (ff, h),
                       p + "mlp.down_proj.weight": (h, ff), p + "input_layernorm.weight": (h,),
                       p + "post_attention_layernorm.weight": (h,)})
    return shapes


def write_safetensors(path, tensors: dict[str, tuple[str, tuple[int, ...]]], data: bool = True) -> None:
    """A real safetensors file: 8-byte header length, JSON header, zeroed data (or none)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + (b"\0" * offset if data else b""))


def test_header_count_equals_config_count(tmp_path):
    shapes = llama_state_shapes(TINY_LLAMA)
    write_safetensors(tmp_path / "model.safetensors", {n: ("BF16", s) for n, s in shapes.items()})
    tensors = read_header(tmp_path / "model.safetensors")
    assert set(tensors) == set(shapes)  # __metadata__ dropped
    assert header_param_count(tensors) == model_spec_from_config(TINY_LLAMA, "t").counted_params
    assert header_stored_dtype(tensors) == "bf16"


def test_written_by_the_safetensors_library(tmp_path):
    np = pytest.importorskip("numpy")
    st = pytest.importorskip("safetensors.numpy")
    arrays = {n: np.zeros(s, dtype=np.float16) for n, s in llama_state_shapes(TINY_LLAMA).items()}
    arrays["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.zeros((8,), dtype=np.float32)
    st.save_file(arrays, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    tensors = folder_tensors(tmp_path)
    assert tensors["lm_head.weight"] == ("F16", (100, 64))
    assert header_param_count(tensors) == model_spec_from_config(TINY_LLAMA, "t").counted_params
    assert header_stored_dtype(tensors) == "fp16"


def test_reads_only_the_header(tmp_path):
    # the data section is missing entirely: a reader that touched it would fail
    write_safetensors(tmp_path / "a.safetensors", {"w": ("F32", (1000, 1000))}, data=False)
    assert header_param_count(read_header(tmp_path / "a.safetensors")) == 1_000_000


def test_sharded_index(tmp_path):
    shapes = llama_state_shapes(TINY_LLAMA)
    names = sorted(shapes)
    shards = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
    weight_map = {}
    for shard, members in shards.items():
        write_safetensors(tmp_path / shard, {n: ("BF16", shapes[n]) for n in members})
        weight_map.update({n: shard for n in members})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    # a consolidated copy next to the shards (Mistral repos ship one) must not be counted twice
    write_safetensors(tmp_path / "consolidated.safetensors", {n: ("BF16", s) for n, s in shapes.items()})
    assert header_param_count(folder_tensors(tmp_path)) == sum(math.prod(s) for s in shapes.values())


def test_buffers_and_skipped_names_are_not_parameters(tmp_path):
    tensors = {"h.0.attn.bias": ("F32", (1, 1, 8, 8)), "h.0.attn.masked_bias": ("F32", ()),
               "h.0.attn.c_attn.bias": ("F32", (12,)), "lm_head.weight": ("F32", (10, 4)),
               "wte.weight": ("F32", (10, 4))}
    assert header_param_count(tensors) == 12 + 40 + 40
    assert header_param_count(tensors, skip=("lm_head.weight",)) == 12 + 40


def test_stored_dtype_is_the_most_common_float():
    tensors = {"a": ("F32", (10,)), "b": ("BF16", (100,)), "q": ("U8", (1000,)), "i": ("I64", (5000,))}
    assert header_stored_dtype(tensors) == "bf16"
    assert header_stored_dtype({"q": ("U8", (4,))}) is None


@pytest.mark.parametrize("content", [
    b"",                                                    # empty
    b"\x01\x02",                                            # shorter than the length field
    struct.pack("<Q", 2 ** 62) + b"{}",                     # absurd header length
    struct.pack("<Q", 200_000_000) + b"{}",                 # over the 100 MB guard
    struct.pack("<Q", 50) + b"{}",                          # longer than the file
    struct.pack("<Q", 5) + b"{oops",                        # not JSON
    struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc",             # not UTF-8
    struct.pack("<Q", 2) + b"[]",                           # not an object
    struct.pack("<Q", 11) + b'{"w": "x"}\n',                # entry not an object
    struct.pack("<Q", 28) + b'{"w": {"dtype": "F32"}}     ',  # no shape
    struct.pack("<Q", 40) + b'{"w": {"dtype": "F32", "shape": [-1]}}  ',  # negative dim
])
def test_bad_files_give_one_line_plan_error(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(PlanError) as err:
        read_header(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("index", ["{not json", "[]", '{"weight_map": 3}', '{"weight_map": {"w": "missing.safetensors"}}'])
def test_bad_index_gives_plan_error(tmp_path, index):
    (tmp_path / "model.safetensors.index.json").write_text(index)
    with pytest.raises(PlanError) as err:
        folder_tensors(tmp_path)
    assert "\n" not in str(err.value)


def test_missing_file_is_plan_error(tmp_path):
    with pytest.raises(PlanError):
        read_header(tmp_path / "nope.safetensors")
