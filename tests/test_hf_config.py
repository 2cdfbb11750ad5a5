"""ModelSpec from config.json: hand counts, per-family details, transformers cross-check, fuzz."""
from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from napkin_gui.core.errors import PlanError
from napkin_gui.core.hf_config import model_spec_from_config
from napkin_gui.core.model_spec import LinearShape

GROUNDTRUTH = Path("/work/shared/groundtruth/configs")

TINY_LLAMA = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}

# Small configs of every family, for exact counts against transformers on the meta device.
TINY_FAMILIES: dict[str, dict] = {
    "llama": TINY_LLAMA,
    "llama-3.2-style": {**TINY_LLAMA, "head_dim": 32, "tie_word_embeddings": True,
                        "attention_bias": True, "mlp_bias": True},
    "mistral": {**TINY_LLAMA, "model_type": "mistral", "head_dim": 24, "sliding_window": 16},
    "mixtral": {**TINY_LLAMA, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2": {**TINY_LLAMA, "model_type": "qwen2", "tie_word_embeddings": True},
    "qwen3": {**TINY_LLAMA, "model_type": "qwen3", "head_dim": 32},
    "qwen2_moe": {**TINY_LLAMA, "model_type": "qwen2_moe", "num_hidden_layers": 4, "num_experts": 6,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                  "shared_expert_intermediate_size": 48, "decoder_sparse_step": 2, "mlp_only_layers": [3]},
    "qwen3_moe": {**TINY_LLAMA, "model_type": "qwen3_moe", "head_dim": 16, "num_experts": 8,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 32, "mlp_only_layers": [0]},
    "gemma": {**TINY_LLAMA, "model_type": "gemma", "head_dim": 32, "tie_word_embeddings": None},
    "gemma2": {**TINY_LLAMA, "model_type": "gemma2", "head_dim": 16, "num_hidden_layers": 3,
               "sliding_window": 8},
    "gemma3_text": {**TINY_LLAMA, "model_type": "gemma3_text", "head_dim": 16, "num_hidden_layers": 7,
                    "sliding_window": 8, "sliding_window_pattern": 3},
    "phi3": {**TINY_LLAMA, "model_type": "phi3", "pad_token_id": 0, "eos_token_id": 1},
    "phi": {**TINY_LLAMA, "model_type": "phi", "num_key_value_heads": 4, "qk_layernorm": True},
    "gpt2": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32,
             "vocab_size": 100},
    "gpt_neox": {"model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100},
    "falcon": {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "vocab_size": 100, "multi_query": True},
    "falcon-new": {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 8, "num_kv_heads": 2, "vocab_size": 100,
                   "new_decoder_architecture": True, "bias": True},
    "olmo": {**TINY_LLAMA, "model_type": "olmo"},
    "olmo2": {**TINY_LLAMA, "model_type": "olmo2"},
    "deepseek_v2": {**TINY_LLAMA, "model_type": "deepseek_v2", "num_hidden_layers": 3,
                    "first_k_dense_replace": 1, "n_routed_experts": 4, "n_shared_experts": 2,
                    "num_experts_per_tok": 2, "moe_intermediate_size": 24, "q_lora_rank": None,
                    "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8},
    "deepseek_v3": {**TINY_LLAMA, "model_type": "deepseek_v3", "num_hidden_layers": 3,
                    "first_k_dense_replace": 2, "n_routed_experts": 8, "n_shared_experts": 1,
                    "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
                    "moe_intermediate_size": 24, "q_lora_rank": 24, "kv_lora_rank": 16,
                    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8},
    "starcoder2": {**TINY_LLAMA, "model_type": "starcoder2", "sliding_window": 16},
    "cohere": {**TINY_LLAMA, "model_type": "cohere", "use_qk_norm": True},
}


def names(layer) -> list[str]:
    return [lin.name for lin in layer.linears]


# --- hand counts -----------------------------------------------------------------------------

def test_tiny_llama_hand_count():
    spec = model_spec_from_config(TINY_LLAMA, "tiny")
    # q 64x64, k/v 64x32, o 64x64, gate/up 64x160, down 160x64, 2 RMSNorm(64)
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 160 + 2 * 64
    assert spec.block_params == 2 * per_layer
    assert spec.counted_params == 2 * per_layer + 2 * 100 * 64 + 64
    assert spec.head_dim == 16 and spec.num_kv_heads == 2
    assert spec.stored_dtype == "bf16" and spec.source == "config" and spec.exact_params is None
    assert json.loads(spec.config_json) == TINY_LLAMA


@pytest.mark.parametrize("name, published", [
    ("llama-3.1-8b", 8_030_261_248), ("llama-3.2-1b", 1_235_814_400),
    ("qwen2.5-0.5b", 494_032_768), ("tinyllama-1.1b", 1_100_048_384),
])
def test_groundtruth_configs_match_published_counts(name, published):
    path = GROUNDTRUTH / name / "config.json"
    if not path.is_file():
        pytest.skip("shared groundtruth configs not present")
    assert model_spec_from_config(json.loads(path.read_text()), name).total_params == published


# --- family details --------------------------------------------------------------------------

def test_gpt2_names_both_projections_c_proj_and_counts_wpe():
    spec = model_spec_from_config(TINY_FAMILIES["gpt2"], "g")
    layer = spec.layer_groups[0][1]
    assert names(layer) == ["c_attn", "c_proj", "c_fc", "c_proj"]
    assert layer.mlp_width == 256 and not layer.gated_mlp and spec.norm_kind == "layer"
    assert spec.tie_word_embeddings and spec.extra_params == 32 * 64 + 2 * 64
    assert spec.max_position_embeddings == 32


def test_phi3_fused_linears():
    spec = model_spec_from_config(TINY_FAMILIES["phi3"], "p")
    by_name = {lin.name: lin for lin in spec.layer_groups[0][1].linears}
    assert by_name["qkv_proj"].d_out == 64 + 2 * 32
    assert by_name["gate_up_proj"].d_out == 2 * 160 and by_name["down_proj"].d_in == 160


def test_mixtral_experts_count_and_active():
    spec = model_spec_from_config(TINY_FAMILIES["mixtral"], "m")
    layer = spec.layer_groups[0][1]
    by_name = {lin.name: lin for lin in layer.linears}
    assert by_name["gate"] == LinearShape("gate", 64, 4)
    assert by_name["w1"].count == 4 and by_name["w1"].active == 2 and by_name["w2"].d_in == 160
    assert layer.num_experts == 4 and layer.mlp_width == 2 * 160


def test_qwen2_has_qkv_bias_and_no_o_bias():
    layer = model_spec_from_config(TINY_FAMILIES["qwen2"], "q").layer_groups[0][1]
    assert [lin.bias for lin in layer.linears[:4]] == [True, True, True, False]


def test_tie_word_embeddings_defaults_per_family():
    assert model_spec_from_config(TINY_FAMILIES["gemma"], "g").tie_word_embeddings  # null -> gemma's True
    no_tie = {k: v for k, v in TINY_LLAMA.items() if k != "tie_word_embeddings"}
    assert not model_spec_from_config(no_tie, "l").tie_word_embeddings


def test_qwen_moe_sparse_step_mlp_only_layers_and_shared_expert():
    spec = model_spec_from_config(TINY_FAMILIES["qwen2_moe"], "q")
    layers = spec.layers()
    # decoder_sparse_step 2: layers 1 and 3 sparse, but 3 is in mlp_only_layers
    assert [layer.num_experts for layer in layers] == [0, 6, 0, 0]
    assert layers[1].mlp_width == 2 * 32 + 48
    assert "shared_expert_gate" in names(layers[1]) and "gate" in names(layers[1])


def test_deepseek_dense_then_moe_groups_with_mla():
    spec = model_spec_from_config(TINY_FAMILIES["deepseek_v3"], "d")
    (n_dense, dense), (n_moe, moe) = spec.layer_groups
    assert (n_dense, n_moe) == (2, 1)
    assert names(dense)[:5] == ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
    assert dense.mlp_width == 160 and moe.mlp_width == 2 * 24 + 24 and moe.num_experts == 8
    lite = model_spec_from_config(TINY_FAMILIES["deepseek_v2"], "d2")
    assert names(lite.layer_groups[0][1])[0] == "q_proj"


def test_sliding_windows_per_layer():
    g2 = model_spec_from_config(TINY_FAMILIES["gemma2"], "g2")
    assert [layer.sliding_window for layer in g2.layers()] == [8, None, 8]
    assert g2.attn_logit_softcapping == 50.0 and g2.final_logit_softcapping == 30.0
    g3 = model_spec_from_config(TINY_FAMILIES["gemma3_text"], "g3")
    assert [layer.sliding_window for layer in g3.layers()] == [8, 8, None, 8, 8, None, 8]
    assert g3.layer_groups[0][1].norms == 4
    mistral = model_spec_from_config(TINY_FAMILIES["mistral"], "m")
    assert {layer.sliding_window for layer in mistral.layers()} == {16}
    qwen = dict(TINY_FAMILIES["qwen2"], use_sliding_window=True, sliding_window=32, max_window_layers=1)
    assert [layer.sliding_window for layer in model_spec_from_config(qwen, "q").layers()] == [None, 32]
    typed = dict(TINY_FAMILIES["gemma2"], layer_types=["full_attention"] * 3)
    assert {layer.sliding_window for layer in model_spec_from_config(typed, "t").layers()} == {None}


def test_gemma3_multimodal_uses_text_config_with_defaults():
    config = {"model_type": "gemma3", "torch_dtype": "float16",
              "text_config": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 6,
                              "model_type": "gemma3_text"},
              "vision_config": {"hidden_size": 1152}}
    spec = model_spec_from_config(config, "g3")
    assert spec.model_type == "gemma3_text" and spec.head_dim == 256 and spec.num_heads == 8
    assert spec.vocab_size == 262208 and spec.tie_word_embeddings and spec.stored_dtype == "fp16"
    assert any("text_config" in w for w in spec.warnings)


def test_unknown_model_type_counts_as_llama_with_warning():
    spec = model_spec_from_config(dict(TINY_LLAMA, model_type="brand_new"), "x")
    assert spec.counted_params == model_spec_from_config(TINY_LLAMA, "l").counted_params
    assert len(spec.warnings) == 1 and "brand_new" in spec.warnings[0]


@pytest.mark.parametrize("value, expected", [("float32", "fp32"), ("torch.float16", "fp16"),
                                             ("auto", "bf16"), (None, "bf16")])
def test_stored_dtype(value, expected):
    config = dict(TINY_LLAMA, torch_dtype=value)
    assert model_spec_from_config(config, "x").stored_dtype == expected
    del config["torch_dtype"]
    config["dtype"] = value  # transformers 5 writes "dtype"
    assert model_spec_from_config(config, "x").stored_dtype == expected


# --- transformers cross-check ----------------------------------------------------------------

def hf_counts(config: dict) -> tuple[int, list[Counter]]:
    """Parameter total and per-block linear shapes of the transformers model (meta device)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    cfg = transformers.AutoConfig.for_model(config["model_type"], **kwargs)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    blocks = next(module for name, module in model.named_modules()
                  if isinstance(module, torch.nn.ModuleList) and name.endswith(("layers", ".h")))
    shapes = []
    for block in blocks:
        found = Counter()
        for name, module in block.named_modules():
            if isinstance(module, torch.nn.Linear):
                found[(name.split(".")[-1], module.in_features, module.out_features, module.bias is not None)] += 1
            elif isinstance(module, Conv1D):
                found[(name.split(".")[-1], *module.weight.shape, module.bias is not None)] += 1
        shapes.append(found)
    return sum(p.numel() for p in model.parameters()), shapes


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_counts_equal_transformers(family):
    config = copy.deepcopy(TINY_FAMILIES[family])
    spec = model_spec_from_config(config, family)
    # null means "family default" to napkin; transformers wants the key left out
    total, shapes = hf_counts({k: v for k, v in config.items() if v is not None or k == "q_lora_rank"})
    assert spec.counted_params == total
    for layer, found in zip(spec.layers(), shapes, strict=True):
        # transformers 5 fuses MoE experts into 3-D parameters; compare the plain linears
        want = Counter((lin.name, lin.d_in, lin.d_out, lin.bias) for lin in layer.linears
                       if lin.count == 1 and not (layer.num_experts and lin.name == "gate"))
        assert want == found


# --- bad input --------------------------------------------------------------------------------

BAD_VALUES = ["abc", -1, 0, 1.5, True, None, [], {}, float("nan"), float("inf"), 10 ** 12]
CORE_FIELDS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
               "intermediate_size", "num_key_value_heads", "head_dim"]


def assert_one_line_plan_error(config) -> str:
    try:
        model_spec_from_config(config, "bad")
    except PlanError as err:
        message = str(err)
        assert "\n" not in message and message.startswith(("config.json", "model"))
        return message
    except Exception as err:  # noqa: BLE001 - the point is that nothing else escapes
        pytest.fail(f"{type(err).__name__} instead of PlanError for {config!r}: {err}")
    return ""


@pytest.mark.parametrize("field", CORE_FIELDS)
@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_core_field_is_one_line_plan_error(field, value):
    config = dict(TINY_LLAMA, **{field: value})
    if value is None and field in ("num_key_value_heads", "head_dim"):
        model_spec_from_config(config, "ok")  # null means "use the default" for these
        return
    if value == 10 ** 12 and field not in ("num_hidden_layers",):
        return  # huge sizes are arithmetic, not errors
    message = assert_one_line_plan_error(config)
    assert field in message or (field == "num_key_value_heads" and "num_attention_heads" in message)


def test_specific_messages():
    assert assert_one_line_plan_error(dict(TINY_LLAMA, hidden_size="abc")) == \
        "config.json hidden_size: must be a positive integer, got 'abc'"
    assert "must divide hidden_size" in assert_one_line_plan_error(dict(TINY_LLAMA, num_attention_heads=5))
    assert "num_key_value_heads: must divide" in assert_one_line_plan_error(dict(TINY_LLAMA, num_key_value_heads=3))
    assert "required" in assert_one_line_plan_error({k: v for k, v in TINY_LLAMA.items() if k != "vocab_size"})
    assert "num_experts_per_tok" in assert_one_line_plan_error(dict(TINY_FAMILIES["mixtral"], num_experts_per_tok=9))
    assert "torch_dtype" in assert_one_line_plan_error(dict(TINY_LLAMA, torch_dtype="float7"))
    assert "must be a JSON object" in assert_one_line_plan_error(["not", "a", "dict"])


@pytest.mark.parametrize("config", [
    None, 42, "llama", [], {}, {"model_type": 7}, {"model_type": "gemma3"},
    {"model_type": "gemma3", "text_config": "x"}, {"text_config": {"hidden_size": 8}},
    dict(TINY_LLAMA, attention_bias="yes"), dict(TINY_LLAMA, tie_word_embeddings=1),
    dict(TINY_FAMILIES["gemma2"], layer_types=["x"]), dict(TINY_FAMILIES["gemma2"], layer_types="x"),
    dict(TINY_FAMILIES["gemma2"], final_logit_softcapping="big"),
    dict(TINY_FAMILIES["qwen2_moe"], mlp_only_layers="all"),
    dict(TINY_FAMILIES["deepseek_v3"], first_k_dense_replace=-1),
    dict(TINY_FAMILIES["deepseek_v3"], kv_lora_rank=0),
    dict(TINY_FAMILIES["gpt2"], n_embd=None), dict(TINY_FAMILIES["falcon"], num_attention_heads=3),
    dict(TINY_LLAMA, torch_dtype=["bfloat16"]), dict(TINY_LLAMA, extra={1, 2}),
])
def test_malformed_configs_give_plan_error(config):
    assert_one_line_plan_error(config)


def test_random_fuzz_never_escapes_plan_error():
    rng = random.Random(1234)
    junk = BAD_VALUES + [3, 64, "64", [1, 2], {"a": 1}, 2 ** 63]
    for _ in range(600):
        base = copy.deepcopy(rng.choice(list(TINY_FAMILIES.values())))
        for key in rng.sample(sorted(base), k=rng.randint(1, 3)):
            if rng.random() < 0.3:
                del base[key]
            else:
                base[key] = rng.choice(junk)
        try:
            spec = model_spec_from_config(base, "fuzz")
        except PlanError as err:
            assert "\n" not in str(err)
        else:
            assert spec.counted_params > 0 and math.isfinite(spec.counted_params)
