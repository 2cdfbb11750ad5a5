"""torchtune's and litgpt's own model code against napkin's framework modules, on CPU.

Builds tiny models with each framework's builders (random weights, nothing downloaded),
records every tensor autograd saves during the forward with saved_tensors_hooks (parameters,
buffers such as the shared RoPE caches, and NF4 weights left out), and compares the bytes with
napkin's blocks + final norm for the same plan. Dropout is 0: on CPU torch's dropout saves an
fp32 noise tensor where CUDA's fused kernel saves a bool mask. Also checks trainable adapter
counts, adapter dtypes and the weights' bytes (torchao NF4Tensor) against the real modules.
"""
import contextlib
import dataclasses
import warnings

import pytest

torch = pytest.importorskip("torch")

from napkin_gui.core.memory.model_state import model_state  # noqa: E402
from napkin_gui.core.model_spec import DecoderLayer, LinearShape, ModelSpec  # noqa: E402
from napkin_gui.core.plan import Plan  # noqa: E402

import saved_tensors  # noqa: E402

H, FF, HEADS, KV, LAYERS, VOCAB = 128, 352, 4, 2, 3, 512
# NF4 needs every weight's numel divisible by 64 x 256
QH, QFF = 256, 384
BATCH, SEQ = 2, 64


def llama_spec(hidden: int = H, ff: int = FF, kv: int = KV, gated: bool = True, layer_norm: bool = False) -> ModelSpec:
    hd = hidden // HEADS
    if gated:
        mlp = (LinearShape("gate_proj", hidden, ff), LinearShape("up_proj", hidden, ff), LinearShape("down_proj", ff, hidden))
    else:
        mlp = (LinearShape("fc1", hidden, ff), LinearShape("fc2", ff, hidden))
    lins = (LinearShape("q_proj", hidden, hidden), LinearShape("k_proj", hidden, kv * hd),
            LinearShape("v_proj", hidden, kv * hd), LinearShape("o_proj", hidden, hidden), *mlp)
    norm_params = (4 if layer_norm else 2) * hidden
    return ModelSpec("toy", "llama", hidden, HEADS, kv, hd, VOCAB, False,
                     ((LAYERS, DecoderLayer(lins, ff, gated, norm_params, 2)),),
                     extra_params=norm_params // 2, norm_kind="layer" if layer_norm else "rms")


napkin_saved = saved_tensors.napkin_body_bytes


def measured_saved(model, ids) -> int:
    """Bytes of distinct storages autograd saves in one forward, except parameters and buffers
    (a torchao NF4Tensor weight is counted with the weights)."""
    return saved_tensors.saved_storage_bytes(model, lambda: model(ids), buffers=True,
                                             counted=lambda t: not hasattr(t, "quantized_data"))


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# ---------------------------------------------------------------- torchtune 0.6.1

TT_ATTN = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "o_proj": "output_proj"}


def torchtune_model(method: str, dtype, targets: tuple[str, ...], hidden: int = H, ff: int = FF,
                    dropout: float = 0.0):
    """torchtune.models.llama3 builders, as the recipes build them (model dtype = recipe dtype)."""
    pytest.importorskip("torchtune")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchtune.models.llama3 import llama3, lora_llama3
        from torchtune.modules.peft import get_adapter_params, set_trainable_params
    torch.manual_seed(0)
    kw = dict(vocab_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, num_kv_heads=KV, embed_dim=hidden,
              max_seq_len=256, intermediate_dim=ff)
    with default_dtype(dtype):
        if method == "full":
            return llama3(**kw).train()
        mlp = any(t in targets for t in ("gate_proj", "up_proj", "down_proj"))
        model = lora_llama3(lora_attn_modules=[TT_ATTN[t] for t in targets if t in TT_ATTN], apply_lora_to_mlp=mlp,
                            apply_lora_to_output="lm_head" in targets, lora_rank=8, lora_alpha=16, lora_dropout=dropout,
                            quantize_base=method == "qlora", **kw)
    set_trainable_params(model, get_adapter_params(model))
    return model.train()


ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TT_DEFAULT = ("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # the recipes' lora_attn_modules + mlp


@pytest.mark.parametrize("method, precision, targets", [
    ("lora", "bf16", ALL), ("lora", "bf16", TT_DEFAULT), ("lora", "bf16", ("q_proj", "v_proj")),
    ("full", "bf16", ALL), ("lora", "fp32", ALL), ("full", "fp32", ALL), ("qlora", "bf16", TT_DEFAULT),
])
def test_torchtune_block_saved_tensors(method, precision, targets):
    hidden, ff = (QH, QFF) if method == "qlora" else (H, FF)
    model = torchtune_model(method, getattr(torch, {"bf16": "bfloat16", "fp32": "float32"}[precision]),
                            targets, hidden, ff)
    if targets == ("q_proj", "v_proj"):  # apply_lora_to_mlp is all-or-nothing in torchtune
        targets = ("q_proj", "v_proj")
    plan = Plan(model="toy", method=method, precision=precision, lora_r=8, lora_dropout=0.0, batch_size=BATCH,
                seq_len=SEQ, lora_targets=targets if targets != ALL else "all-linear", framework="torchtune")
    spec = llama_spec(hidden, ff)
    measured = measured_saved(model, torch.randint(0, VOCAB, (BATCH, SEQ)))
    assert napkin_saved(spec, plan) == pytest.approx(measured, rel=0.03)


def test_torchtune_saved_tensors_differ_from_transformers():
    """The check can fail: the same plan under transformers + peft (fp32 adapters casting x)
    is more than 3 % away from what torchtune saves."""
    model = torchtune_model("lora", torch.bfloat16, ALL)
    plan = Plan(model="toy", lora_r=8, lora_dropout=0.0, batch_size=BATCH, seq_len=SEQ, framework="torchtune")
    measured = measured_saved(model, torch.randint(0, VOCAB, (BATCH, SEQ)))
    hf = dataclasses.replace(plan, framework="transformers")
    assert abs(napkin_saved(llama_spec(), hf) / measured - 1) > 0.03


@pytest.mark.parametrize("method, precision", [("lora", "bf16"), ("qlora", "bf16"), ("lora", "fp32")])
def test_torchtune_adapters_and_weights(method, precision):
    """Trainable adapter params, their dtype (the recipe dtype) and the bytes the weights hold
    (torchao NF4Tensor: quantized_data, quantized_scalers, quantization_factor, scaler_mean, nf4)."""
    dtype = getattr(torch, {"bf16": "bfloat16", "fp32": "float32"}[precision])
    model = torchtune_model(method, dtype, TT_DEFAULT, QH, QFF)
    trainable = [p for p in model.parameters() if p.requires_grad]
    plan = Plan(model="toy", method=method, precision=precision, lora_r=8, lora_targets=TT_DEFAULT,
                framework="torchtune")
    state = model_state(llama_spec(QH, QFF), plan)
    assert state.trainable_params == sum(p.numel() for p in trainable)
    assert state.adapter_bytes == sum(p.numel() * p.element_size() for p in trainable)
    held = 0
    for p in model.parameters():
        if hasattr(p, "quantized_data"):
            held += sum(getattr(p, a).untyped_storage().nbytes()
                        for a in ("quantized_data", "quantized_scalers", "quantization_factor", "scaler_mean", "nf4"))
        elif not p.requires_grad:
            held += p.numel() * p.element_size()
    assert state.weights_bytes == pytest.approx(held, rel=0.03)


# ---------------------------------------------------------------- litgpt 0.5.13

LG_FLAGS = {"q_proj": "lora_query", "k_proj": "lora_key", "v_proj": "lora_value", "o_proj": "lora_projection",
            "lm_head": "lora_head"}


def litgpt_model(method: str, dtype, targets: tuple[str, ...], kv: int = KV, mlp: str = "LLaMAMLP",
                 norm: str = "RMSNorm"):
    """litgpt.model.GPT / litgpt.lora.GPT from a small litgpt.Config (as finetune/lora.py builds it)."""
    litgpt = pytest.importorskip("litgpt")
    from litgpt.lora import GPT as LoRAGPT, Config as LoRAConfig, mark_only_lora_as_trainable
    from litgpt.model import GPT
    torch.manual_seed(0)
    kw = dict(name="toy", block_size=256, vocab_size=VOCAB, padded_vocab_size=VOCAB, n_layer=LAYERS, n_head=HEADS,
              n_query_groups=kv, n_embd=H, intermediate_size=FF, mlp_class_name=mlp, norm_class_name=norm,
              bias=False, parallel_residual=False, rotary_percentage=1.0, gelu_approximate="tanh")
    with default_dtype(dtype):
        if method == "full":
            return GPT(litgpt.Config(**kw)).train()
        flags = {flag: name in targets for name, flag in LG_FLAGS.items()}
        flags["lora_mlp"] = any(t in targets for t in ("gate_proj", "up_proj", "down_proj", "fc1", "fc2"))
        model = LoRAGPT(LoRAConfig(**kw, lora_r=8, lora_alpha=16, lora_dropout=0.0, **flags))
    mark_only_lora_as_trainable(model)
    return model.train()


LG_DEFAULT = ("q_proj", "v_proj")  # finetune/lora.py: lora_query and lora_value


@pytest.mark.parametrize("method, precision, targets, kv, mlp, norm", [
    ("lora", "bf16", ALL, KV, "LLaMAMLP", "RMSNorm"),
    ("lora", "bf16", LG_DEFAULT, KV, "LLaMAMLP", "RMSNorm"),
    ("full", "bf16", ALL, KV, "LLaMAMLP", "RMSNorm"),
    ("lora", "bf16", ALL, HEADS, "LLaMAMLP", "RMSNorm"),      # no grouped queries: v views the qkv output
    ("full", "bf16", ALL, HEADS, "LLaMAMLP", "RMSNorm"),
    ("lora", "bf16", ("q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"), HEADS, "GptNeoxMLP", "LayerNorm"),
    ("full", "bf16", ALL, HEADS, "GptNeoxMLP", "LayerNorm"),
    ("lora", "fp32", ALL, KV, "LLaMAMLP", "RMSNorm"),
])
def test_litgpt_block_saved_tensors(method, precision, targets, kv, mlp, norm):
    dtype = getattr(torch, {"bf16": "bfloat16", "fp32": "float32"}[precision])
    model = litgpt_model(method, dtype, targets, kv, mlp, norm)
    gated = mlp != "GptNeoxMLP"
    spec = llama_spec(kv=kv, gated=gated, layer_norm=norm == "LayerNorm")
    if not gated and targets != ALL:
        pass
    elif not gated:
        targets = "all-linear"
    plan = Plan(model="toy", method=method, precision=precision, lora_r=8, lora_dropout=0.0, batch_size=BATCH,
                seq_len=SEQ, lora_targets="all-linear" if targets == ALL else targets, framework="litgpt")
    measured = measured_saved(model, torch.randint(0, VOCAB, (BATCH, SEQ)))
    assert napkin_saved(spec, plan) == pytest.approx(measured, rel=0.03)


@pytest.mark.parametrize("targets", [ALL, LG_DEFAULT])
def test_litgpt_adapters(targets):
    """litgpt's fused qkv LoRA (one lora_A of r x n_enabled rows) has as many parameters as
    separate q/k/v adapters; bf16-true keeps them, and so AdamW's states, in bf16."""
    model = litgpt_model("lora", torch.bfloat16, targets)
    trainable = [p for p in model.parameters() if p.requires_grad]
    plan = Plan(model="toy", lora_r=8, lora_targets=targets, framework="litgpt")
    state = model_state(llama_spec(), plan)
    assert state.trainable_params == sum(p.numel() for p in trainable)
    assert state.adapter_bytes == sum(p.numel() * p.element_size() for p in trainable)
    assert state.optimizer_state_bytes == 2 * state.adapter_bytes


# ------------------------------------------------------------- an adapter on lm_head

HEAD = ("q_proj", "v_proj", "lm_head")


@pytest.mark.parametrize("framework", ["torchtune", "litgpt"])
def test_lm_head_adapter_saved_tensors(framework):
    """apply_lora_to_output (torchtune) / lora_head (litgpt): the head's LoRA keeps the final
    norm's output and its [tokens, r] product, in the model dtype."""
    build = torchtune_model if framework == "torchtune" else litgpt_model
    plan = Plan(model="toy", lora_r=8, lora_dropout=0.0, batch_size=BATCH, seq_len=SEQ,
                lora_targets=HEAD, framework=framework)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    measured = measured_saved(build("lora", torch.bfloat16, HEAD), ids)
    without = measured_saved(build("lora", torch.bfloat16, HEAD[:2]), ids)
    spec = llama_spec()
    head = napkin_saved(spec, plan) - napkin_saved(spec, dataclasses.replace(plan, lora_targets=HEAD[:2]))
    assert head == BATCH * SEQ * (H + 8) * 2
    assert head == pytest.approx(measured - without, rel=0.03)
    assert napkin_saved(spec, plan) == pytest.approx(measured, rel=0.03)
