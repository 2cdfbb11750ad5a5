"""The activation model against what torch really saves for backward, on CPU.

Builds small real transformers models (random weights, nothing downloaded), records every
tensor autograd saves during the forward with saved_tensors_hooks, and compares the bytes
with the model's per-token count. Dropout is 0 here: on CPU torch's dropout saves an fp32
noise tensor where CUDA's fused kernel saves a bool mask.
"""
import dataclasses

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from napkin_gui.core.memory.model_state import model_state  # noqa: E402
from napkin_gui.core.memory.precision import activation_dtypes  # noqa: E402
from napkin_gui.core.memory.timeline import block_memories  # noqa: E402
from napkin_gui.core.model_spec import DecoderLayer, LinearShape, ModelSpec  # noqa: E402
from napkin_gui.core.plan import Plan  # noqa: E402

import saved_tensors  # noqa: E402

H, FF, HEADS, KV, LAYERS, VOCAB = 128, 352, 4, 2, 3, 512
DIMS = dict(hidden=H, ff=FF, heads=HEADS, kv=KV, layers=LAYERS, vocab=VOCAB)


def toy_spec() -> ModelSpec:
    return saved_tensors.toy_spec(**DIMS)


def toy_model(dtype, attn: str, lora_r: int | None, targets: list[str] | None = None):
    return saved_tensors.toy_model(dtype, attn, lora_r, targets=targets, **DIMS)


def saved_bytes(model, batch: int, seq: int) -> int:
    """Bytes of distinct non-parameter storages autograd saves during one forward."""
    ids = torch.randint(0, VOCAB, (batch, seq))
    return saved_tensors.saved_storage_bytes(model, lambda: model(input_ids=ids))


def expected_bytes(plan: Plan) -> int:
    spec = toy_spec()
    blocks = block_memories(spec, plan)
    dt = activation_dtypes(plan, spec)
    tokens = plan.batch_size * plan.seq_len
    final_norm = tokens * H * (4 + (2 * dt.stream if dt.base_trainable else 0))
    return sum(b.saved_bytes for b in blocks) + final_norm


@pytest.mark.parametrize("method, precision, attn, dtype", [
    ("lora", "bf16", "eager", "bfloat16"),
    ("lora", "fp32", "eager", "float32"),
    ("full", "bf16", "eager", "bfloat16"),
    ("full", "fp32", "eager", "float32"),
])
def test_saved_tensors_match_the_model(method, precision, attn, dtype):
    batch, seq = 2, 64
    plan = Plan(model="toy", method=method, precision=precision, attention=attn, lora_r=8, lora_dropout=0.0,
                batch_size=batch, seq_len=seq)
    model = toy_model(getattr(torch, dtype), attn, 8 if method == "lora" else None)
    measured = saved_bytes(model, batch, seq)
    # rotary cos/sin ([1, s, head_dim] each, shared by all blocks) are left out of the model
    rope = 2 * seq * (H // HEADS) * (2 if dtype == "bfloat16" else 4)
    assert expected_bytes(plan) == pytest.approx(measured - rope, rel=0.03)


def test_lora_trainable_count_matches_peft():
    model = toy_model(torch.float32, "eager", 8)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state = model_state(toy_spec(), Plan(model="toy", lora_r=8))
    assert state.trainable_params == trainable
    total = sum(p.numel() for p in model.parameters())
    assert state.total_params == total


def phi3_spec() -> ModelSpec:
    hd = H // HEADS
    lins = (LinearShape("qkv_proj", H, (HEADS + 2 * HEADS) * hd), LinearShape("o_proj", H, H),
            LinearShape("gate_up_proj", H, 2 * FF), LinearShape("down_proj", FF, H))
    return ModelSpec("toy-phi3", "phi3", H, HEADS, HEADS, hd, VOCAB, False,
                     ((LAYERS, DecoderLayer(lins, FF, True, 2 * H, 2)),), extra_params=H)


@pytest.mark.parametrize("method, attn, dtype", [("lora", "eager", "bfloat16"), ("full", "eager", "bfloat16"),
                                                 ("lora", "sdpa", "bfloat16")])
def test_fused_qkv_and_gate_up_blocks(method, attn, dtype):
    """phi3: fused qkv_proj (v does not keep the fused output alive: attention gets its own
    copy) and fused gate_up_proj (the activation's saved gate view keeps all 2 x ff alive)."""
    cfg = transformers.AutoConfig.for_model(
        "phi3", hidden_size=H, intermediate_size=FF, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=HEADS, vocab_size=VOCAB, max_position_embeddings=256, pad_token_id=0,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    if method == "lora":
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                           target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]))
        model.enable_input_require_grads()
    model.train()
    batch, seq = 2, 64
    plan = Plan(model="toy", method=method, attention=attn, lora_r=8, lora_dropout=0.0, batch_size=batch, seq_len=seq)
    spec = phi3_spec()
    dt = activation_dtypes(plan, spec)
    expected = sum(b.saved_bytes for b in block_memories(spec, plan))
    expected += batch * seq * H * (4 + (2 * dt.stream if dt.base_trainable else 0))
    rope = 2 * seq * (H // HEADS) * 2
    assert expected == pytest.approx(saved_bytes(model, batch, seq) - rope, rel=0.03)


def test_moe_lora_trainable_count_matches_peft():
    """transformers 5 fuses Mixtral's experts into 3-D parameters; peft wraps them."""
    import warnings
    from napkin_gui.core.hf_config import model_spec_from_config
    kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=100, num_local_experts=4, num_experts_per_tok=2)
    cfg = transformers.AutoConfig.for_model("mixtral", **kw)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    spec = model_spec_from_config({"model_type": "mixtral", **kw}, "toy-moe")
    assert model_state(spec, Plan(model="toy", lora_r=4)).trainable_params == trainable


def test_lm_head_adapter_saved_tensors_match_peft():
    """peft's lora.Linear on lm_head: x.to(fp32) (the fp32 adapter's dtype) saved by lora_A and the
    [tokens, r] fp32 product saved by lora_B; the frozen head itself saves nothing."""
    from napkin_gui.core.memory.timeline import final_norm_saved_bytes
    batch, seq = 2, 64
    spec = toy_spec()

    def measured(targets):
        return saved_bytes(toy_model(torch.bfloat16, "eager", 8, targets), batch, seq)

    plan = Plan(model="toy", lora_r=8, lora_dropout=0.0, batch_size=batch, seq_len=seq, attention="eager",
                lora_targets=("q_proj", "v_proj", "lm_head"))
    dt = activation_dtypes(plan, spec)
    without = dataclasses.replace(plan, lora_targets=("q_proj", "v_proj"))
    head = final_norm_saved_bytes(plan, spec, dt) - final_norm_saved_bytes(without, spec, dt)
    assert head == batch * seq * (H * 4 + 8 * 4)
    extra = measured(["q_proj", "v_proj", "lm_head"]) - measured(["q_proj", "v_proj"])
    assert head == pytest.approx(extra, rel=0.03)
