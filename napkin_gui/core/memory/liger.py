"""Liger kernels (`liger: true`): which Hugging Face modules they replace and what each saves.

liger-kernel 0.8.5, liger_kernel/transformers/monkey_patch.py: apply_liger_kernel_to_<model_type>
(MODEL_TYPE_TO_APPLY_LIGER_FN, what TRL's and the HF Trainer's `use_liger_kernel` call) with its
defaults swaps, per model type (LIGER_PATCHES below):
- RMSNorm -> LigerRMSNorm (transformers/rms_norm.py; LigerRMSNormForGemma/Gemma2 for Gemma):
  LigerRMSNormFunction.forward (ops/rms_norm.py, line ~674) `ctx.save_for_backward(X, W, RSTD)`:
  the input X itself in its own dtype and one fp32 rstd per row (rstd_dtype = torch.float32 in
  the llama and gemma casting modes, rms_norm_forward); the normalized output is recomputed in
  backward, so a trained weight saves nothing more. Eager transformers saves the fp32 upcast of x
  (+ the normalized x when the weight trains): core/memory/activations.norm_saved_bytes.
- the gated MLP -> LigerSwiGLUMLP / LigerPhi3SwiGLUMLP (SiLU) or LigerGEGLUMLP (Gemma's tanh
  GELU): LigerSiLUMulFunction.forward (ops/swiglu.py) and LigerGELUMulFunction.forward
  (ops/geglu.py) `ctx.save_for_backward(a, b)`: gate and up only; act(gate) is recomputed in
  backward (eager: act saves gate, the product saves act(gate) and up: 3 x intermediate). Their
  backward writes da and db into a and b in place (swiglu_backward returns a.view(...),
  b.view(...)): the MLP's backward allocates only dc.
- apply_rotary_pos_emb -> liger_rotary_pos_emb (LigerRopeFunction, ops/rope.py): saves cos and
  sin, as eager does (no change in memory); one kernel rotates q and k in place.
- the loss -> LigerForCausalLMLoss / fused linear cross-entropy: `loss: fused-linear-ce`
  (core/memory/loss_kernels.py); with it lm_head saves no input (only grad_input, grad_weight).
Model types without an apply function (gpt2, falcon, phi, starcoder2, cohere...) are left as
they are: `_apply_liger_kernel_to_instance` logs that no kernel exists and patches nothing.
MoE experts (LigerExperts) are left to the eager count here.

Checked on CPU by running Liger's own Triton kernels under Triton's interpreter
(TRITON_INTERPRET=1) on a tiny transformers Llama: tests/test_liger_real_kernels.py.
"""
from __future__ import annotations

from typing import NamedTuple

from ..model_spec import DecoderLayer, ModelSpec
from .activations import ActivationDtypes, norm_saved_bytes

VERSION = "liger-kernel 0.8.5"


class LigerPatch(NamedTuple):
    """What apply_liger_kernel_to_<model_type> replaces with its defaults."""

    rope: bool
    rms_norm: bool
    glu: bool        # swiglu (SiLU) or geglu (Gemma's GELU) gated MLP


_ALL = LigerPatch(rope=True, rms_norm=True, glu=True)
_NO_ROPE = LigerPatch(rope=False, rms_norm=True, glu=True)
# model_type -> the apply function's defaults (liger_kernel 0.8.5 monkey_patch.py signatures)
LIGER_PATCHES: dict[str, LigerPatch] = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "phi3", "olmo2", "olmo3",
                     "granite", "smollm3", "ministral", "gemma", "gemma2", "gemma3", "gemma3_text"), _ALL),
    **dict.fromkeys(("deepseek_v2", "deepseek_v3", "glm4"), _NO_ROPE),
}
# fp32 rstd per normalized row (rms_norm_forward: RSTD = torch.empty(n_rows, dtype=float32))
RSTD_BYTES = 4


def liger_patch(plan, spec: ModelSpec) -> LigerPatch | None:
    """The kernels `liger: true` swaps into this model (None: Liger off, or no patch for its type)."""
    if not plan.liger:
        return None
    return LIGER_PATCHES.get(spec.model_type)


def rms_norm_saved_bytes(width: int, dt: ActivationDtypes) -> int:
    """LigerRMSNormFunction per row: X in the stream dtype + the fp32 rstd (W is a parameter)."""
    return width * dt.stream + RSTD_BYTES


def glu_saved_bytes(width: int, dt: ActivationDtypes) -> int:
    """LigerSiLUMulFunction / LigerGELUMulFunction per token: a (gate) and b (up)."""
    return 2 * width * dt.linear_out


def eager_glu_saved_bytes(width: int, dt: ActivationDtypes) -> int:
    """Eager act(gate) * up: act saves gate, the product act(gate) and up (activations.mlp_saved_bytes)."""
    return 3 * width * dt.linear_out


def block_saved_change_per_token(layer: DecoderLayer, hidden: int, qk_width: int, qk_rows: int,
                                 dt: ActivationDtypes, patch: LigerPatch, rms: bool, qk_norm: bool) -> int:
    """Bytes per token Liger's kernels save minus what the eager modules save, for one block
    (negative: Liger saves less). qk_width / qk_rows: the q/k norms' total width and rows per
    token (per-head norms normalize head_dim rows, one rstd each)."""
    change = 0
    if patch.rms_norm and rms:
        change += layer.norms * (rms_norm_saved_bytes(hidden, dt) - norm_saved_bytes(hidden, dt, rms=True))
        if qk_norm:
            liger_qk = qk_width * dt.attn + qk_rows * RSTD_BYTES
            change += liger_qk - norm_saved_bytes(qk_width, dt, rms=True)
    if patch.glu and layer.gated_mlp and layer.num_experts == 0:
        change += glu_saved_bytes(layer.mlp_width, dt) - eager_glu_saved_bytes(layer.mlp_width, dt)
    return change


def final_norm_saved_bytes_per_token(hidden: int, dt: ActivationDtypes, lm_head_saves_input: bool) -> int:
    """The final LigerRMSNorm (X + rstd), and lm_head's input when a trained lm_head runs as a
    plain linear (under fused linear CE it saves only the gradients it made in forward)."""
    return rms_norm_saved_bytes(hidden, dt) + (hidden * dt.stream if lm_head_saves_input else 0)


def backward_transient_bytes(tokens: int, hidden: int, layer: DecoderLayer, dt: ActivationDtypes,
                             score_elements: int) -> int:
    """activations.backward_transient_bytes with Liger's gated MLP: its backward allocates dc
    only (da, db overwrite the saved a, b), one intermediate-sized gradient where eager has two."""
    stream_grads = 2 * tokens * hidden * dt.stream
    mlp_grads = tokens * layer.mlp_width * dt.linear_out
    return stream_grads + max(mlp_grads, 3 * 4 * score_elements)


# Memory traffic of the fused kernels, per element (time model, core/step_work.py). Each is one
# launch: read the inputs once, write the outputs once.
def rms_norm_bytes(sb: int) -> int:
    """_rms_norm_forward_kernel: read X, write Y (and one rstd per row, negligible)."""
    return 2 * sb


def rope_bytes(ab: int) -> int:
    """_triton_rope: q and k read and written in place (cos / sin rows are shared)."""
    return 2 * ab


def glu_bytes(lo: int) -> int:
    """_swiglu_forward_kernel / _geglu_tanh_forward_kernel: read a, b; write c."""
    return 3 * lo


RMS_NORM_LAUNCHES = 1
ROPE_LAUNCHES = 1
GLU_LAUNCHES = 1
