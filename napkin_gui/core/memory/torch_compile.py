"""`compile: true`: what torch.compile (inductor) changes in a decoder block's saved tensors and
memory traffic.

torch 2.13: inductor's training graphs are split into forward and backward by AOTAutograd's
min-cut partitioner (torch/_functorch/partitioners.py min_cut_rematerialization_partition,
the partition_fn of torch/_inductor/compile_fx.py): it saves the cheapest set of tensors from
which the backward can recompute every fusible (pointwise / reduction) op, and common
subexpressions of the traced graph are merged first (torch/_functorch/compile_utils.py
fx_graph_cse). For a transformers / torchtune decoder block that means:
- RMSNorm: the input x in its own dtype and the fp32 rstd per row are saved; the fp32 upcast
  and the normalized x (eager autograd saves both) are recomputed in backward;
- the gated MLP: gate and up are saved, act(gate) is recomputed (eager: 3 x intermediate);
- peft LoRA without dropout: every adapter's `x.to(lora_A.weight.dtype)` of the same input is
  one expression after CSE, so linears fed by one tensor share one fp32 copy (eager: a copy
  each); with dropout each adapter draws its own mask and keeps its own copy;
- rotary cos / sin are recomputed from inv_freq (napkin counts neither).
Memory traffic: inductor fuses each such chain into one kernel (torch/_inductor/scheduler.py
fusion of pointwise and reduction nodes): RMSNorm with its casts reads x and writes y, RoPE
reads and writes q and k once, act(gate) * up reads gate and up and writes the product.
Dynamo runs the block as one compiled graph: the Python module calls of the eager block go.

Verified on CPU (tests/test_torch_compile_real.py): a tiny transformers Llama compiled with the
partitioner inductor uses (backend aot_eager_decomp_partition; the same saved bytes as
inductor itself: 261,920 B both for the toy's full fine-tuning) against napkin, LoRA and full.
"""
from __future__ import annotations

from ..model_spec import DecoderLayer
from .activations import ActivationDtypes, linear_roles, norm_saved_bytes, role_input_bytes
from .liger import eager_glu_saved_bytes, glu_saved_bytes, rms_norm_saved_bytes

VERSION = "torch 2.13 inductor"
# Frameworks whose eager block modules the rules below are written against (transformers +
# peft: core/memory/activations.py; torchtune: core/frameworks/torchtune.py).
COMPILED_FRAMEWORKS = frozenset({"transformers", "torchtune"})


def compiles(plan) -> bool:
    return plan.compile and plan.framework in COMPILED_FRAMEWORKS


def _lora_cast_copies_saved(layer: DecoderLayer, dt: ActivationDtypes, lora_targets: frozenset[int]) -> int:
    """Bytes per token of peft's fp32 input copies that CSE merges: all but one per input tensor
    (no dropout, 16-bit input; routed experts keep their own gathered inputs)."""
    if dt.lora_rank == 0 or dt.lora_dropout:
        return 0
    inputs = role_input_bytes(dt)
    roles = linear_roles(layer)
    seen: set[str] = set()
    merged = 0
    for i in sorted(lora_targets):
        lin, role = layer.linears[i], roles[i]
        if lin.count > 1 or inputs[role] == 4:
            continue
        if role in seen:
            merged += lin.active * lin.d_in * 4
        seen.add(role)
    return merged


def transformers_block_change_per_token(layer: DecoderLayer, hidden: int, qk_width: int, qk_rows: int,
                                        dt: ActivationDtypes, lora_targets: frozenset[int], rms: bool,
                                        qk_norm: bool, norms_done: bool = False, glu_done: bool = False) -> int:
    """Bytes per token the compiled transformers block saves minus the eager one (negative:
    less). norms_done / glu_done: Liger's kernels already replaced them (opaque autograd
    Functions to the partitioner: their saves stand)."""
    change = -_lora_cast_copies_saved(layer, dt, lora_targets)
    if rms and not norms_done:
        change += layer.norms * (rms_norm_saved_bytes(hidden, dt) - norm_saved_bytes(hidden, dt, rms=True))
        if qk_norm:
            change += qk_width * dt.attn + qk_rows * 4 - norm_saved_bytes(qk_width, dt, rms=True)
    if layer.gated_mlp and layer.num_experts == 0 and not glu_done:
        change += glu_saved_bytes(layer.mlp_width, dt) - eager_glu_saved_bytes(layer.mlp_width, dt)
    return change


def torchtune_block_change_per_token(layer: DecoderLayer, hidden: int, head_dim: int, qk_heads: int,
                                     dt: ActivationDtypes, qk_norm: bool) -> int:
    """torchtune's RMSNorm (fp32 x + fp32 rstd, + fp32 normalized x when trained:
    frameworks/torchtune.norm_saved_bytes) compiled saves x + rstd; its FeedForward gate + up."""
    from ..frameworks.torchtune import norm_saved_bytes as tt_norm
    change = layer.norms * (rms_norm_saved_bytes(hidden, dt) - tt_norm(hidden, dt.base_trainable))
    if qk_norm:
        change += qk_heads * (rms_norm_saved_bytes(head_dim, dt) - tt_norm(head_dim, dt.base_trainable))
    if layer.gated_mlp and layer.num_experts == 0:
        change += glu_saved_bytes(layer.mlp_width, dt) - eager_glu_saved_bytes(layer.mlp_width, dt)
    return change


def final_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes, lm_head_saves_input: bool) -> int:
    """The compiled final norm (x + rstd) and lm_head's input when lm_head trains."""
    return rms_norm_saved_bytes(hidden, dt) + (hidden * dt.stream if lm_head_saves_input else 0)


# Fused kernels' traffic per element and launches (same shapes as Liger's: one read of the
# inputs, one write of the outputs): core/memory/liger.py rms_norm_bytes / rope_bytes / glu_bytes.
MODULE_CALLS_PER_BLOCK = 0   # the compiled graph replaces the block's nn.Module calls
