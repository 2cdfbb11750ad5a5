"""The work of one training step, independent of the GPU: FLOPs, bytes, kernel launches.

Split in phases (forward, backward with its recompute, optimizer update) so the time model
can price each on any card and overlap the host (Python + kernel launches) with the device.
Counted per decoder block from the ModelSpec and the plan; identical blocks once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from . import flops as fl
from . import traffic as tr
from .frameworks import unsloth
from .memory import liger, torch_compile
from .memory.activations import linear_roles, role_input_bytes
from .memory import rollout
from .memory.lora import lora_target_linears
from .memory.preference import no_grad_forwards, policy_forward_plan
from .memory.timeline import activation_offload, unsloth_modules, unsloth_offload
from .memory.precision import activation_dtypes, attention_kernel, config_extras, logits_element_bytes
from .model_spec import DecoderLayer, ModelSpec, block_repeats
from .plan import Plan
from .spec_cache import SpecCache

# transformers' model families without rotary position embeddings (learned positions)
NO_ROPE = frozenset({"gpt2", "gpt_bigcode", "opt", "bloom", "mpt"})
# kernel launches of one RMSNorm in eager PyTorch (to fp32, pow, mean, add, rsqrt, mul, to, mul)
RMS_NORM_LAUNCHES = 8
# per-step launches outside the blocks: embedding, rotary cos/sin (~8), final norm (8),
# lm_head, loss (float, pad, slice, view, log_softmax, nll, div ~8)
MODEL_LAUNCHES = 26
MODEL_MODULES = 6
# bitsandbytes dequantize_4bit with double quant: dequantize the absmax (1), add its
# offset (1), dequantize the weight (1) (bitsandbytes/functional.py)
DEQUANT_LAUNCHES = 3


# A phase's matmuls, folded by shape: (dtype, FLOPs, bytes of inputs + weight + output) of one
# matmul -> how many times it is launched. A step has ~150 matmuls but ~20 distinct shapes;
# folding them as they are added (not as a list merged at the end) keeps a step's work to
# a few hundred dict updates.
MatmulShape = tuple[str, float, float]


@dataclass(slots=True)
class PhaseWork:
    """What one phase asks of the device (FLOPs, bytes) and of the host (launches, calls)."""

    name: str
    matmuls: dict[MatmulShape, float] = field(default_factory=dict)  # shape -> launches
    attention_flops: float = 0.0      # flash / memory-efficient attention kernels
    elementwise_bytes: float = 0.0    # norms, activations, casts, LoRA, loss, optimizer
    dequant_bytes: float = 0.0        # NF4 -> bf16 weight dequantization
    launches: float = 0.0             # kernels launched from Python (forward, optimizer)
    autograd_launches: float = 0.0    # kernels launched by the C++ autograd engine
    modules: float = 0.0              # nn.Module calls (Python hooks, peft / bnb wrappers)
    quant_calls: float = 0.0          # bitsandbytes 4-bit matmul calls (Python heavy)
    checkpoints: float = 0.0          # checkpointed blocks recomputed (non-reentrant)
    # time_model.device_seconds of this phase by (card, efficiencies, dtype): a cached StepWork
    # serves every card and GPU count of a plan, and the hardware table prices 4 counts per card
    device_memo: dict = field(default_factory=dict, compare=False, repr=False)

    def add(self, other: PhaseWork, times: float = 1.0) -> None:
        matmuls = self.matmuls
        for shape, launches in other.matmuls.items():
            matmuls[shape] = matmuls.get(shape, 0.0) + launches * times
        for name in ("attention_flops", "elementwise_bytes", "dequant_bytes", "launches",
                     "autograd_launches", "modules", "quant_calls", "checkpoints"):
            setattr(self, name, getattr(self, name) + times * getattr(other, name))


@dataclass(frozen=True, slots=True)
class StepWork:
    """One micro-batch (forward, backward) and one optimizer update, on one GPU."""

    forward: PhaseWork
    backward: PhaseWork
    optimizer: PhaseWork
    tokens: int
    executed_flops: float   # every FLOP the micro-batch runs, recompute included
    model_flops: float      # without recompute (MFU numerator)
    trainable_params: int
    trainable_tensors: int
    # GRPO: generating the completions of one optimizer step (prefill + decoding), None otherwise
    generation: PhaseWork | None = None
    generation_host: bool = True   # transformers' generate runs from Python; vLLM replays CUDA graphs
    # torchtune's / TRL's OffloadActivations (memory/activation_offload.py): PCIe bytes per micro-batch
    offload_to_host_bytes: float = 0.0     # forward: saved tensors copied to pinned host memory
    offload_to_device_bytes: float = 0.0   # backward: copied back (what the stash kept is not)
    offload_unsloth: bool = False          # the copies are UnslothCheckpointFunction's instead


def _add_matmul(phase: PhaseWork, shape: MatmulShape, launches: float) -> None:
    phase.matmuls[shape] = phase.matmuls.get(shape, 0.0) + launches


def _mm(phase: PhaseWork, dtype: str, m: float, k: int, n: int, elem: int, launches: float) -> None:
    """A [m, k] x [k, n] matmul launched `launches` times."""
    _add_matmul(phase, (dtype, 2.0 * m * k * n, elem * (m * k + k * n + m * n)), launches)


def linear_input_bytes(layer: DecoderLayer, dt) -> tuple[int, ...]:
    """Element size of each linear's input, in the block's order."""
    by_role = role_input_bytes(dt)
    return tuple(by_role[role] for role in linear_roles(layer))


def _linears(layer: DecoderLayer, plan: Plan, dt, inputs: tuple[int, ...], tokens: int, fwd: PhaseWork,
             bwd: PhaseWork) -> None:
    """Base linears: matmuls (+ weight grads in full FT), autocast and 4-bit casts, dequant."""
    mm_dtype = plan.compute_dtype
    elem = 4 if mm_dtype == "fp32" else 2
    full, qlora = plan.method == "full", plan.method == "qlora"
    for i, lin in enumerate(layer.linears):
        m = tokens * lin.active / lin.count
        ib = inputs[i]
        for phase in (fwd, bwd) if not full else (fwd, bwd, bwd):
            _mm(phase, mm_dtype, m, lin.d_in, lin.d_out, elem, lin.count)
        fwd.launches += lin.count
        bwd.autograd_launches += lin.count * (2 if full else 1)
        fwd.modules += lin.count
        per_token = 0.0   # input / output casts, per token; their backward casts the grads back
        if dt.autocast:
            # autocast copies each fp32 weight to 16 bit per forward (6 B per weight) and casts
            # fp32 inputs; the weight copies' backward is the .grad cast counted below
            fwd.elementwise_bytes += 6 * lin.count * lin.d_in * lin.d_out
            per_token = lin.active * lin.d_in * tr.cast_bytes(ib, 2)
            fwd.launches += lin.count * (1 + (ib == 4))
        if qlora:
            # Linear4bit casts its input to the compute dtype and its output back to the input's
            per_token = lin.active * (lin.d_in * tr.cast_bytes(ib, 2) + lin.d_out * tr.cast_bytes(2, dt.linear_out))
            dq = lin.count * tr.dequant_bytes(lin.d_in * lin.d_out)
            fwd.dequant_bytes += dq
            bwd.dequant_bytes += dq   # MatMul4Bit.backward dequantizes again for the input grad
            fwd.launches += lin.count * (DEQUANT_LAUNCHES + (ib != 2) + (dt.linear_out != 2))
            bwd.launches += lin.count * DEQUANT_LAUNCHES
            fwd.quant_calls += lin.count
            bwd.quant_calls += lin.count
        fwd.elementwise_bytes += per_token * tokens
        bwd.elementwise_bytes += per_token * tokens
    if full and dt.autocast:
        # fp32 .grad from the 16-bit weight gradient: read 2, write 4 per parameter
        bwd.elementwise_bytes += 6 * sum(lin.count * lin.d_in * lin.d_out for lin in layer.linears)


def _lora(layer: DecoderLayer, plan: Plan, dt, inputs: tuple[int, ...], tokens: int, fwd: PhaseWork,
          bwd: PhaseWork) -> None:
    """peft LoRA on each targeted linear: two small matmuls and the elementwise path around them."""
    if not plan.is_lora:
        return
    r = plan.lora_r
    mm_dtype = plan.compute_dtype if dt.autocast else "fp32"
    elem = 2 if dt.autocast else 4
    dropout = plan.lora_dropout > 0
    targets = lora_target_linears(layer, plan.lora_targets)
    fused = unsloth_fused_linears(layer, plan) if unsloth_modules(plan) else frozenset()
    for i, lin in enumerate(layer.linears):
        if not any(lin is target for target in targets):
            continue
        if i in fused:
            _unsloth_lora(lin, plan, tokens, fwd, bwd)
            continue
        ib, ob = inputs[i], dt.linear_out
        m = tokens * lin.active / lin.count
        _mm(fwd, mm_dtype, m, lin.d_in, r, elem, lin.count)
        _mm(fwd, mm_dtype, m, r, lin.d_out, elem, lin.count)
        for _ in range(2):  # input and weight gradient of A and of B
            _mm(bwd, mm_dtype, m, lin.d_in, r, elem, lin.count)
            _mm(bwd, mm_dtype, m, r, lin.d_out, elem, lin.count)
        f_in, f_out = tr.lora_forward_bytes(ib, ob, dropout)
        b_in, b_out = tr.lora_backward_bytes(ib, ob, dropout)
        fwd.elementwise_bytes += tokens * lin.active * (f_in * lin.d_in + f_out * lin.d_out)
        bwd.elementwise_bytes += tokens * lin.active * (b_in * lin.d_in + b_out * lin.d_out)
        launches = lin.count * ((ib != 4) + dropout + 4 + (ob != 4))
        fwd.launches += launches
        bwd.autograd_launches += launches + lin.count * 3
        fwd.modules += lin.count * 4   # the LoRA wrapper, lora_A, lora_B, dropout / Identity


def _attention(layer: DecoderLayer, spec: ModelSpec, plan: Plan, dt, fwd: PhaseWork, bwd: PhaseWork) -> None:
    """Attention: flash kernels (FLOPs only) or materialized [b, h, s, s] scores (eager / math)."""
    b, s, h = plan.batch_size, plan.seq_len, spec.num_heads
    v_dim = config_extras(spec).v_head_dim
    kernel, native_gqa, needs_mask = attention_kernel(plan, spec, dt, layer.sliding_window)
    ab = dt.attn
    per_token = 2 * ab * h * v_dim     # output transpose + contiguous for o_proj
    fwd.launches += 2
    if not native_gqa and spec.num_kv_heads < h:
        per_token += 2 * ab * h * (spec.head_dim + v_dim)   # repeat_kv copies of k and v
        fwd.launches += 2
    fwd.elementwise_bytes += per_token * b * s
    bwd.elementwise_bytes += per_token * b * s * tr.BACKWARD_TRAFFIC_RATIO
    if kernel == "flash":
        # with an explicit (windowed) mask sdpa's memory-efficient kernel visits every key
        keys = float(s) if needs_mask else fl.attended_keys(s, layer.sliding_window)
        f = fl.attention_flops(b, s, h, spec.head_dim, v_dim, keys)
        fwd.attention_flops += f
        bwd.attention_flops += f * fl.FLASH_BACKWARD_RATIO
        mask = b * s * s * ab if needs_mask else 0   # explicit windowed mask read by the kernel
        fwd.elementwise_bytes += mask
        bwd.elementwise_bytes += mask
        bwd.autograd_launches += 2
        return
    mm_dtype = "fp32" if ab == 4 else plan.compute_dtype
    scores = b * h * s * s
    for d in (spec.head_dim, v_dim):   # q @ k^T, then probs @ v: [b*h, s, d] x [b*h, d, s]
        shape = (mm_dtype, 2.0 * scores * d, ab * (scores + 2 * b * h * s * d))
        _add_matmul(fwd, shape, 1)
        _add_matmul(bwd, shape, 2)
    fwd.elementwise_bytes += scores * tr.score_bytes(ab, kernel)
    bwd.elementwise_bytes += scores * tr.score_bytes(ab, kernel)
    fwd.launches += 5
    bwd.autograd_launches += 8


def _input_grad_sums(layer: DecoderLayer, plan: Plan, inputs: tuple[int, ...]) -> float:
    """Bytes per token of summing input gradients: a tensor read by k ops (q/k/v, gate/up, each
    LoRA branch) gets k gradients, added pairwise (read, read, write each)."""
    readers: dict[str, list] = {}
    targets = set(id(lin) for lin in lora_target_linears(layer, plan.lora_targets)) if plan.is_lora else set()
    # unsloth's fast_lora backward chains a group's input gradient through addmm_ (`dX.addmm_(...)`,
    # unsloth/kernels/fast_lora.py): its role's gradients are summed inside the GEMMs
    fused = unsloth_fused_linears(layer, plan) if unsloth_modules(plan) else frozenset()
    in_gemm = {linear_roles(layer)[i] for i in fused}
    for lin, role, ib in zip(layer.linears, linear_roles(layer), inputs):
        entry = readers.setdefault(role, [0, lin.d_in, ib])
        entry[0] += lin.active * (1 + (id(lin) in targets))
    return sum(max(0, k - 1) * 3 * ib * width for role, (k, width, ib) in readers.items() if role not in in_gemm)


def _block_elementwise(layer: DecoderLayer, spec: ModelSpec, plan: Plan, dt, inputs: tuple[int, ...], fwd: PhaseWork,
                       bwd: PhaseWork) -> None:
    """Norms, rotary embedding, MLP activation, residual adds, dropout, MoE dispatch."""
    extras = config_extras(spec)
    hidden, tokens = spec.hidden_size, plan.batch_size * plan.seq_len
    qk_width = (spec.num_heads + spec.num_kv_heads) * spec.head_dim
    rms = not extras.layer_norm
    patch = liger.liger_patch(plan, spec)   # Liger's fused kernels: one launch each (memory/liger.py)
    if torch_compile.compiles(plan):        # inductor fuses the same chains (memory/torch_compile.py)
        patch = liger.LigerPatch(rope=True, rms_norm=True, glu=True)
    if unsloth_modules(plan):
        patch = unsloth_patch(layer, plan)
    liger_norm = patch is not None and patch.rms_norm and rms
    norm = (liger.rms_norm_bytes(dt.stream) if liger_norm else
            tr.rms_norm_bytes(dt.stream) if rms else tr.layer_norm_bytes(dt.stream))
    per_token = layer.norms * hidden * norm + 2 * hidden * tr.residual_add_bytes(dt.stream)
    norm_launches = (liger.RMS_NORM_LAUNCHES if liger_norm else
                     RMS_NORM_LAUNCHES - (2 if dt.stream == 4 else 0) if rms else 1)
    launches = layer.norms * norm_launches + 2
    if extras.qk_norm:
        per_token += qk_width * (liger.rms_norm_bytes(dt.attn) if liger_norm else tr.rms_norm_bytes(dt.attn))
        launches += 2 * (liger.RMS_NORM_LAUNCHES if liger_norm else RMS_NORM_LAUNCHES)
    if spec.model_type not in NO_ROPE:
        liger_rope = patch is not None and patch.rope
        per_token += qk_width * (liger.rope_bytes(dt.attn) if liger_rope else tr.rope_bytes(dt.attn))
        launches += liger.ROPE_LAUNCHES if liger_rope else 10
    if layer.gated_mlp:
        liger_glu = patch is not None and patch.glu and layer.num_experts == 0
        per_token += layer.mlp_width * (liger.glu_bytes(dt.linear_out) if liger_glu
                                        else tr.gated_mlp_bytes(dt.linear_out))
        launches += liger.GLU_LAUNCHES if liger_glu else 2
    else:
        python_act = extras.act_saved_per_width > 1
        per_token += layer.mlp_width * tr.plain_mlp_bytes(dt.linear_out, python_act)
        launches += 8 if python_act else 1
    if extras.hidden_dropout:
        per_token += 2 * hidden * (2 * dt.stream + 1)
        launches += 2
    if layer.num_experts:
        top_k = max((lin.active for lin in layer.linears if lin.count > 1), default=1)
        per_token += 8 * dt.stream * hidden * top_k     # gather tokens, weight, scatter-add back
        launches += 6 + 5 * layer.num_experts
    grad_sums = _input_grad_sums(layer, plan, inputs)
    fwd.elementwise_bytes += per_token * tokens
    bwd.elementwise_bytes += per_token * tr.BACKWARD_TRAFFIC_RATIO * tokens + grad_sums * tokens
    fwd.launches += launches
    bwd.autograd_launches += launches * tr.BACKWARD_TRAFFIC_RATIO
    if not torch_compile.compiles(plan):   # a compiled block runs as one graph, no module calls
        fwd.modules += layer.norms + 4   # the block, its norms, attention, MLP, activation


def block_work(layer: DecoderLayer, spec: ModelSpec, plan: Plan) -> tuple[PhaseWork, PhaseWork]:
    """(forward, backward) work of one decoder block for the plan's micro-batch."""
    dt = activation_dtypes(plan, spec)
    tokens = plan.batch_size * plan.seq_len
    fwd, bwd = PhaseWork("forward"), PhaseWork("backward")
    inputs = linear_input_bytes(layer, dt)
    _linears(layer, plan, dt, inputs, tokens, fwd, bwd)
    _lora(layer, plan, dt, inputs, tokens, fwd, bwd)
    _attention(layer, spec, plan, dt, fwd, bwd)
    _block_elementwise(layer, spec, plan, dt, inputs, fwd, bwd)
    if torch_compile.compiles(plan):
        fwd.modules = 0.0   # the linears' and LoRA wrappers' Python calls are traced away
    return fwd, bwd


def _model_level(spec: ModelSpec, plan: Plan, fwd: PhaseWork, bwd: PhaseWork) -> None:
    """Embedding, final norm, lm_head and the fp32 cross-entropy over [tokens, vocab]."""
    dt = activation_dtypes(plan, spec)
    tokens, hidden, vocab = plan.batch_size * plan.seq_len, spec.hidden_size, spec.vocab_size
    lb = logits_element_bytes(plan)
    full = plan.method == "full"
    head_dtype = "fp32" if lb == 4 and not dt.autocast else plan.compute_dtype
    _head_matmuls(plan, head_dtype, tokens, hidden, vocab, lb, fwd, bwd)
    softcap = spec.final_logit_softcapping is not None
    forward_bytes, backward_bytes = tr.loss_logits_bytes(plan.framework, plan.loss, lb, softcap)
    fwd.elementwise_bytes += tokens * vocab * forward_bytes
    bwd.elementwise_bytes += tokens * vocab * backward_bytes
    if plan.loss == "fused-linear-ce":
        # Liger's backward: element_mul_kernel scales the saved grad_input (and grad_weight) in place;
        # UnslothFusedLoss: `grad_inputs * scale_factor`: read and write each
        bwd.elementwise_bytes += 2 * dt.stream * (tokens * hidden + (vocab * hidden if full else 0))
    patch = liger.liger_patch(plan, spec)
    fused_norm = (patch is not None and patch.rms_norm) or unsloth_modules(plan)
    norm = ((liger.rms_norm_bytes(dt.stream) if fused_norm else tr.rms_norm_bytes(dt.stream))
            if spec.norm_kind == "rms" else tr.layer_norm_bytes(dt.stream))
    stream = tokens * hidden * (norm + 2 * dt.stream)     # final norm + embedding gather
    fwd.elementwise_bytes += stream
    bwd.elementwise_bytes += stream * tr.BACKWARD_TRAFFIC_RATIO
    if full:
        pb = 4 if plan.param_dtype == "fp32" else 2
        bwd.elementwise_bytes += vocab * hidden * pb * (1 + (3 if spec.tie_word_embeddings else 0))
    fwd.launches += MODEL_LAUNCHES
    bwd.autograd_launches += MODEL_LAUNCHES
    fwd.modules += MODEL_MODULES


def _head_matmuls(plan: Plan, dtype: str, tokens: int, hidden: int, vocab: int, lb: int,
                  fwd: PhaseWork, bwd: PhaseWork) -> None:
    """lm_head's matmuls by loss kernel: the logits in forward, their input (and, in full
    fine-tuning, weight) gradient in backward. fused-linear-ce computes both gradients chunk by
    chunk inside its forward (Liger fused_linear_cross_entropy_forward: grad_input / grad_weight;
    UnslothFusedLoss: torch.func.grad_and_value per chunk). cut-ce writes no logits (the
    matmul's output stays on chip: only its inputs are read) and recomputes them in backward
    (cut_cross_entropy cce_backward.py) before the input (and weight) gradient."""
    grads = 2 if plan.method == "full" else 1
    if plan.loss == "cut-ce":
        inputs = lb * (tokens * hidden + hidden * vocab)
        shape = (dtype, 2.0 * tokens * hidden * vocab, float(inputs))
        _add_matmul(fwd, shape, 1)
        _add_matmul(bwd, shape, 1 + grads)
        return
    later = fwd if plan.loss == "fused-linear-ce" else bwd
    _mm(fwd, dtype, tokens, hidden, vocab, lb, 1)
    for _ in range(grads):
        _mm(later, dtype, tokens, hidden, vocab, lb, 1)


def unsloth_patch(layer: DecoderLayer, plan: Plan) -> liger.LigerPatch:
    """unsloth's Triton kernels, one read of each input and one write each, like Liger's:
    fast_rms_layernorm (unsloth/kernels/rms_layernorm.py _rms_layernorm_forward: read X, write Y
    and the fp32 r per row), fast_rope_embedding (rope_embedding.py _rope_embedding: Q and K in
    place) in every layer LlamaDecoderLayer_fast_forward runs, and swiglu_fg_kernel
    (swiglu.py _fg_kernel: read e, g, write h) inside LoRA_MLP only (its fast path: all of
    gate/up/down adapted, no dropout; core/frameworks/unsloth.py fast_paths)."""
    mlp = any(layer.linears[i].name in unsloth.MLP for i in unsloth_fused_linears(layer, plan))
    return liger.LigerPatch(rope=True, rms_norm=True, glu=mlp)


def unsloth_fused_linears(layer: DecoderLayer, plan: Plan) -> frozenset[int]:
    """The linears whose LoRA runs in unsloth's fast_lora Functions (LoRA_QKV, LoRA_W, LoRA_MLP:
    FastLlamaModel.patch_peft_model, core/frameworks/unsloth.py fast_paths)."""
    targets = frozenset(i for i, lin in enumerate(layer.linears)
                        if any(lin is t for t in lora_target_linears(layer, plan.lora_targets)))
    paths = unsloth.fast_paths(layer, targets, plan.lora_dropout > 0)
    names = ((unsloth.QKV if paths.qkv else ()) + (("o_proj",) if paths.o else ())
             + (unsloth.MLP if paths.mlp else ()))
    return frozenset(i for i in targets if layer.linears[i].name in names)


def _unsloth_lora(lin, plan: Plan, tokens: int, fwd: PhaseWork, bwd: PhaseWork) -> None:
    """One adapter in unsloth's fast path (unsloth/kernels/utils.py matmul_lora:
    `XA = torch_matmul(X, A.to(dtype)); out.addmm_(XA, B.to(dtype), alpha=s)`): both matmuls
    in the activations' 16-bit dtype, the add and the scaling in the GEMM's epilogue, so none
    of peft's fp32 input copy, fp32 add and casts back; only the fp32 A and B are cast (6 B
    per adapter weight). fast_lora.py backward: dA, dB and the input gradient by matmul /
    addmm_ (4 matmuls, as peft's), no elementwise pass."""
    r, dtype = plan.lora_r, plan.compute_dtype
    m = tokens * lin.active / lin.count
    _mm(fwd, dtype, m, lin.d_in, r, 2, lin.count)
    _mm(fwd, dtype, m, r, lin.d_out, 2, lin.count)
    for _ in range(2):
        _mm(bwd, dtype, m, lin.d_in, r, 2, lin.count)
        _mm(bwd, dtype, m, r, lin.d_out, 2, lin.count)
    fwd.elementwise_bytes += lin.count * 6 * r * (lin.d_in + lin.d_out)
    fwd.launches += lin.count * 4          # A.to, B.to, X @ A, addmm_
    bwd.autograd_launches += lin.count * 6
    fwd.modules += lin.count


class _Copies(NamedTuple):
    device_to_host_bytes: int
    host_to_device_bytes: int


def unsloth_offload_traffic(spec: ModelSpec, plan: Plan) -> _Copies:
    """UnslothCheckpointFunction (unsloth_zoo/gradient_checkpointing.py): each offloaded layer's
    input goes to its pinned CPU buffer in forward (`x.copy_(_arg, non_blocking=True)` on
    EXTRA_STREAM) and comes back into GPU_BUFFER in backward (`buffer.copy_(x, non_blocking=True)`)."""
    plan = policy_forward_plan(plan)
    offload = unsloth_offload(spec, plan)
    layer_input = plan.batch_size * plan.seq_len * spec.hidden_size * activation_dtypes(plan, spec).stream
    return _Copies(offload.offloaded_layers * layer_input, offload.offloaded_layers * layer_input)


def trainable_tensors(spec: ModelSpec, plan: Plan) -> int:
    """Parameter tensors the optimizer updates: A and B per adapter, or every weight, bias, norm."""
    total = 0
    for n, layer in block_repeats(spec):
        if plan.is_lora:
            total += n * sum(2 * lin.count for lin in lora_target_linears(layer, plan.lora_targets))
        else:
            total += n * (sum(lin.count * (1 + lin.bias) for lin in layer.linears) + layer.norms)
    if not plan.is_lora:
        total += 2 + (0 if spec.tie_word_embeddings else 1)
    return total


# Python work per parameter tensor in optimizer.step(), in units of one nn.Module call:
# torch's foreach optimizers loop over params once in _init_group and group them by
# device/dtype; bitsandbytes' Optimizer8bit.step calls update_step, prefetch and
# get_config per tensor; Adafactor's single-tensor loop runs per tensor.
OPTIMIZER_PYTHON_PER_TENSOR = {"adamw": 0.2, "sgd": 0.2, "adamw-8bit": 3.0,
                               "paged-adamw-8bit": 4.0, "paged-adamw": 4.0, "adafactor": 1.0}
# torch MultiTensorApply.cuh: one launch handles up to 36 tensors (depth 4) and 320 blocks
# of 65536 elements (~21M elements)
FOREACH_TENSORS_PER_LAUNCH = 36
FOREACH_ELEMENTS_PER_LAUNCH = 320 * 65536


def optimizer_work(plan: Plan, trainable_params: int, tensors: int, state_bytes: int) -> PhaseWork:
    """optimizer.step() over every trainable tensor (zero_grad(set_to_none) is free)."""
    passes, per_tensor, foreach_ops = tr.OPTIMIZER_PASSES[plan.optimizer]
    launches_per_op = max(1.0, tensors / FOREACH_TENSORS_PER_LAUNCH,
                          trainable_params / FOREACH_ELEMENTS_PER_LAUNCH)
    return PhaseWork("optimizer", elementwise_bytes=passes * trainable_params * state_bytes,
                     launches=per_tensor * tensors + foreach_ops * launches_per_op,
                     modules=OPTIMIZER_PYTHON_PER_TENSOR[plan.optimizer] * tensors)


def _matmul_flops(phase: PhaseWork) -> float:
    return sum(flops * launches for (_, flops, _), launches in phase.matmuls.items()) + phase.attention_flops


# Plan fields that do not change one GPU's micro-batch work: every card, GPU count, sharding
# and dataset size of a plan share one StepWork (tests/test_time_model.py checks it).
WORK_IGNORED = ("gpu", "n_gpus", "sharding", "offload", "dataset_tokens", "epochs")
WORK_FIELDS = tuple(f.name for f in fields(Plan) if f.name not in WORK_IGNORED)
# of those, the ones the micro-batch's forward and backward (and GRPO's generation) read: all but
# the optimizer, which only the update reads (optimizer_work)
BODY_FIELDS = tuple(name for name in WORK_FIELDS if name != "optimizer")
# of those, what GRPO's generation reads: not the split of the sequences it decodes together
# (rollout.generation_sequences), nor checkpointing (generation runs without it)
GENERATION_FIELDS = tuple(name for name in BODY_FIELDS if name not in ("batch_size", "grad_accum", "grad_ckpt"))
_CACHE: SpecCache[StepWork] = SpecCache(256)
_BODIES: SpecCache[StepWork] = SpecCache(256)
_GENERATIONS: SpecCache[PhaseWork] = SpecCache(256)


def step_work(spec: ModelSpec, plan: Plan, trainable_params: int) -> StepWork:
    """Forward, backward (+ recompute) and optimizer work of the plan on one GPU, unsharded
    (cached by WORK_FIELDS; the returned phases must not be changed). Plans that differ only
    in their optimizer share the forward, backward and generation phases (one PhaseWork each,
    cached by BODY_FIELDS): the search tries four AdamW variants of every recipe."""
    key = (tuple(getattr(plan, name) for name in WORK_FIELDS), trainable_params)
    return _CACHE.get(spec, key, lambda: _with_optimizer(spec, plan, trainable_params))


def _with_optimizer(spec: ModelSpec, plan: Plan, trainable_params: int) -> StepWork:
    key = (tuple(getattr(plan, name) for name in BODY_FIELDS), trainable_params)
    body = _BODIES.get(spec, key, lambda: _step_work(spec, plan, trainable_params))
    return dataclasses.replace(body, optimizer=_optimizer_phase(policy_forward_plan(plan), trainable_params,
                                                                body.trainable_tensors))


def _optimizer_phase(plan: Plan, trainable_params: int, tensors: int) -> PhaseWork:
    """optimizer_work of the plan at its state element size (_state_bytes)."""
    return optimizer_work(plan, trainable_params, tensors, _state_bytes(plan))


def _state_bytes(plan: Plan) -> int:
    """Element size of the gradients and optimizer states: fp32 for LoRA adapters and fp32
    masters, else the weights' 16 bits."""
    return 4 if plan.is_lora or plan.param_dtype == "fp32" else 2


def _step_work(spec: ModelSpec, plan: Plan, trainable_params: int) -> StepWork:
    algorithm = plan
    plan = policy_forward_plan(plan)   # DPO family / GRPO: the sequences one policy forward runs
    fwd, bwd = PhaseWork("forward"), PhaseWork("backward")
    for n, layer in block_repeats(spec):  # each distinct block priced once
        f, b = block_work(layer, spec, plan)
        fwd.add(f, n)
        bwd.add(b, n)
        if plan.grad_ckpt:   # the block's forward runs again inside its backward
            bwd.add(f, n)
            bwd.checkpoints += n
    _model_level(spec, plan, fwd, bwd)
    no_grad = no_grad_forwards(algorithm)
    if no_grad:   # the reference / KL / old-policy forwards cost a forward each (no backward)
        policy = PhaseWork("forward")
        policy.add(fwd)
        fwd.add(policy, no_grad)
    generation = _generation(spec, algorithm) if algorithm.algorithm == "grpo" else None
    tensors = trainable_tensors(spec, plan)
    state_bytes = _state_bytes(plan)
    if plan.grad_accum > 1:   # later micro-batches add into .grad: read, read, write
        bwd.elementwise_bytes += 3 * trainable_params * state_bytes * (plan.grad_accum - 1) / plan.grad_accum
    extras = config_extras(spec)
    model = fl.model_flops(spec, plan.batch_size, plan.seq_len, plan.method == "full",
                           plan.lora_r if plan.is_lora else 0, plan.lora_targets, extras.v_head_dim)
    moved, offload_unsloth = activation_offload(spec, algorithm), False
    if moved is None and unsloth_offload(spec, algorithm) is not None:
        moved, offload_unsloth = unsloth_offload_traffic(spec, algorithm), True
    return StepWork(forward=fwd, backward=bwd,
                    optimizer=_optimizer_phase(plan, trainable_params, tensors),
                    tokens=plan.batch_size * plan.seq_len,
                    executed_flops=_matmul_flops(fwd) + _matmul_flops(bwd), model_flops=model,
                    trainable_params=trainable_params, trainable_tensors=tensors,
                    generation=generation, generation_host=algorithm.generation == "transformers",
                    offload_to_host_bytes=float(moved.device_to_host_bytes) if moved else 0.0,
                    offload_to_device_bytes=float(moved.host_to_device_bytes) if moved else 0.0,
                    offload_unsloth=offload_unsloth)


def _generation(spec: ModelSpec, plan: Plan) -> PhaseWork:
    """generation_work, one PhaseWork for every split of the same sequences (GENERATION_FIELDS)."""
    key = (tuple(getattr(plan, name) for name in GENERATION_FIELDS), rollout.generation_sequences(plan))
    return _GENERATIONS.get(spec, key, lambda: generation_work(spec, plan))


def generation_work(spec: ModelSpec, plan: Plan) -> PhaseWork:
    """GRPO's generation of one optimizer step (core/memory/rollout.py: batch_size x grad_accum
    sequences decode together): the prefill, a forward over the prompts (large matmuls: compute),
    then completion_len decoding steps, each a forward of one token per sequence whose matmuls
    read every weight (memory-bound at small batch) plus the KV cache read by attention (at its
    mean length) and the LM head over the vocabulary for the sampled position. Same launches as a
    forward per step: transformers' generate (peft adapters unmerged, bitsandbytes dequantizing per
    step) is host-bound on small models; vLLM replays CUDA graphs over merged 16-bit weights."""
    base = dataclasses.replace(policy_forward_plan(plan), grad_ckpt=False)
    if plan.generation != "transformers":
        # vLLM gets the policy's weights with the adapters merged (grpo_trainer.py / vllm_generation.py
        # sync: merge_adapter, load_weights, unmerge_adapter) in the compute dtype: plain 16-bit linears
        base = dataclasses.replace(base, method="full", precision=plan.compute_dtype)
    sequences = rollout.generation_sequences(plan)
    dt = activation_dtypes(base, spec)
    phase = PhaseWork("generate")
    for length, times in ((plan.prompt_len, 1), (1, plan.completion_len)):
        step = dataclasses.replace(base, batch_size=sequences, seq_len=length)
        for n, layer in block_repeats(spec):
            f, _ = block_work(layer, spec, step)
            phase.add(f, n * times)
        head_dtype = "fp32" if logits_element_bytes(base) == 4 and not dt.autocast else base.compute_dtype
        _mm(phase, head_dtype, sequences, spec.hidden_size, spec.vocab_size, logits_element_bytes(base), times)
        phase.launches += MODEL_LAUNCHES * times
        phase.modules += MODEL_MODULES * times
    mean_context = plan.prompt_len + plan.completion_len / 2
    phase.elementwise_bytes += plan.completion_len * rollout.kv_cache_bytes(spec, sequences, int(mean_context), dt.attn)
    phase.attention_flops += (plan.completion_len * 4.0 * sequences * mean_context * spec.num_heads * spec.head_dim
                              * spec.num_layers)
    return phase
