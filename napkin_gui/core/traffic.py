"""Bytes that memory-bound (elementwise) kernels move, per token and element, op by op.

Each figure counts the reads and writes of the eager PyTorch kernels the Hugging Face code
launches (transformers 5.x modeling_llama.py and siblings, peft 0.21 tuners/lora/layer.py,
bitsandbytes 0.50 nn/modules.py, torch 2.11 optim/adam.py). `sb` is the bytes per element
of the tensor an op reads (2 for bf16/fp16, 4 for fp32). These are forward counts; the
backward of an elementwise op reads the incoming gradient and its saved input(s) and writes
one gradient per input, which `BACKWARD_TRAFFIC_RATIO` turns into backward bytes.
"""
from __future__ import annotations

# unary op: forward reads x and writes y (2 accesses); backward reads dy and the saved x and
# writes dx (3). Binary mul: 3 forward, 5 backward. Averaged over a block's ops: ~1.5x.
BACKWARD_TRAFFIC_RATIO = 1.5


def rms_norm_bytes(sb: int) -> int:
    """Per element of the normalized width: HF LlamaRMSNorm.forward in eager PyTorch:
    x.to(fp32), pow(2), mean(-1), x * rsqrt(var + eps), .to(input dtype), weight * x.
    The two casts are no-ops when the stream is already fp32 (kbit prep, mixed precision)."""
    casts = 0 if sb == 4 else (sb + 4) + (4 + sb)
    return casts + 8 + 4 + 8 + 2 * sb


def layer_norm_bytes(sb: int) -> int:
    """torch's fused layer_norm kernel: read x, write y (mean/rstd per row are negligible)."""
    return 2 * sb


def rope_bytes(ab: int) -> int:
    """Per element of q and k: q*cos (2), rotate_half = neg of one half + cat (3), *sin (2),
    add (3) -> 10 accesses (transformers apply_rotary_pos_emb)."""
    return 10 * ab


def gated_mlp_bytes(lo: int) -> int:
    """Per element of the MLP width: act(gate) reads and writes (2), act * up (3)."""
    return 5 * lo


def plain_mlp_bytes(lo: int, python_act: bool) -> int:
    """Per element: a fused activation reads and writes (2); transformers' python gelu_new
    (0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))) runs 8 ops, ~20 accesses."""
    return (20 if python_act else 2) * lo


def residual_add_bytes(sb: int) -> int:
    """Per element of the hidden size: hidden = residual + out (2 reads, 1 write)."""
    return 3 * sb


def cast_bytes(src: int, dst: int) -> int:
    """x.to(dtype): read src, write dst; free when the dtype already matches."""
    return 0 if src == dst else src + dst


def lora_forward_bytes(ib: int, ob: int, dropout: bool) -> tuple[int, int]:
    """(per input element, per output element) of peft's LoRA Linear.forward around its two
    matmuls: x.to(fp32), dropout(x) (writes fp32 + a bool mask), then
    result = result + lora_B(...) * scaling (fp32 mul; bf16 + fp32 promotes to fp32),
    result.to(result dtype). The matmuls' own reads and writes are counted with them."""
    per_in = cast_bytes(ib, 4) + (4 + 4 + 1 if dropout else 0)
    per_out = 8 + (ob + 4 + 4) + cast_bytes(4, ob)
    return per_in, per_out


def lora_backward_bytes(ib: int, ob: int, dropout: bool) -> tuple[int, int]:
    """(per input element, per output element) of the same ops' backward: both casts back,
    the fp32 grad of the add split to the 16-bit base output, the scaling mul, dropout's
    mask multiply, and the add of the adapter's input gradient into x.grad (3 accesses)."""
    per_in = cast_bytes(4, ib) + (4 + 1 + 4 if dropout else 0) + 3 * ib
    per_out = cast_bytes(ob, 4) + cast_bytes(4, ob) + 8
    return per_in, per_out


def score_bytes(ab: int, kernel: str) -> int:
    """Per [b, h, s, s] element in the forward of materialized attention.

    eager (modeling_llama.eager_attention_forward): (q @ k^T) * scaling (2), + causal mask
    (3), softmax(dtype=fp32) with its max/sum pass (2*ab + 4), .to(q dtype) (ab + 4).
    sdpa's math fallback (fp32): masked add (3), softmax (12)."""
    if kernel == "eager":
        return 2 * ab + 3 * ab + (2 * ab + 4) + cast_bytes(4, ab)
    return 3 * ab + 12


def logits_forward_bytes(lb: int, softcap: bool) -> int:
    """Per [tokens, vocab] element: logits.float() (transformers ForCausalLMLoss), then
    log_softmax (reads twice: max and sum, writes once); final-logit soft-capping adds
    div, tanh and mul (2 accesses each)."""
    return cast_bytes(lb, 4) + 12 + (6 * lb if softcap else 0)


def logits_backward_bytes(lb: int, softcap: bool) -> int:
    """nll_loss backward writes a dense fp32 gradient (4), log_softmax backward reads the
    gradient and the saved output and writes (12), the .float() backward casts back."""
    return 4 + 12 + cast_bytes(4, lb) + (10 * lb if softcap else 0)


def loss_logits_bytes(framework: str, loss: str, lb: int, softcap: bool) -> tuple[int, int]:
    """(forward, backward) bytes per [tokens, vocab] element of the loss, by the kernel that runs
    it; the lm_head matmul writing the logits (or a chunk of them) is counted with the matmuls.

    - transformers `standard` (ForCausalLMLoss: logits.float(), cross_entropy) and torchtune 0.6.1
      `chunked-ce` (CEWithChunkedOutputLoss.compute_cross_entropy: `F.cross_entropy(logits.float(),
      ...)` per chunk: every chunk's fp32 upcast and log-softmax are written): logits_forward_bytes
      / logits_backward_bytes.
    - litgpt 0.5.13 (utils.py chunked_cross_entropy; chunk_size 0 is the plain loss):
      `F.cross_entropy(logit_chunk, ...)` on the model-dtype logits, no upcast: log_softmax reads
      twice and writes once (3 x lb), backward: nll's dense gradient (lb) and log_softmax's
      backward (3 x lb).
    - `fused-linear-ce`, Liger 0.8.5 (ops/cross_entropy.py liger_cross_entropy_kernel, called per
      chunk by fused_linear_cross_entropy_forward) and unsloth_zoo's UnslothFusedLoss
      (fused_losses/cross_entropy_loss.py: compute_fused_ce_loss under torch.compile, one
      generated kernel per chunk): the chunk's logits in the lm_head dtype are read for the online
      max / sum, read again and overwritten by their gradient in the same forward (3 x lb); no
      fp32 logits, nothing over the vocabulary in backward.
    - `cut-ce`, Apple cut cross-entropy (cce_lse_forward.py, cce_backward.py): logits are computed
      block by block in on-chip memory and never written, forward and backward: 0 (the backward's
      recomputed logits matmul is counted with the matmuls).
    - unsloth `standard` (UNSLOTH_RETURN_LOGITS=1 -> unsloth/kernels/cross_entropy_loss.py
      Fast_CrossEntropyLoss): _cross_entropy_forward reads each row once for its logsumexp (lb),
      _cross_entropy_backward reads the logits and writes the gradient in place (2 x lb)."""
    if loss == "cut-ce":
        return 0, 0
    if loss == "fused-linear-ce":
        return 3 * lb, 0
    if framework == "unsloth":
        return lb, 2 * lb
    if framework == "litgpt":
        return 3 * lb + (6 * lb if softcap else 0), 4 * lb + (10 * lb if softcap else 0)
    return logits_forward_bytes(lb, softcap), logits_backward_bytes(lb, softcap)


def dequant_bytes(params: int) -> float:
    """bitsandbytes dequantize_4bit of one NF4 weight: read the 4-bit codes (0.5 B) and the
    absmax (double quant: 1 B per 64 weights), write the bf16 weight (2 B)."""
    return params * (0.5 + 1 / 64 + 2)


# optimizer update: (accesses per trainable element, kernel launches per tensor,
# launches per step for foreach kernels over all tensors).
OPTIMIZER_PASSES: dict[str, tuple[int, float, int]] = {
    # torch/optim/adam.py _multi_tensor_adam (AdamW: decoupled weight decay, foreach on CUDA):
    # mul_(1-lr*wd) 2, lerp_ 3, mul_ 2, addcmul_ 3, sqrt 2, div_ 2, add_ 2, addcdiv_ 4
    "adamw": (20, 0.0, 8),
    # bitsandbytes optimizer_update_8bit_blockwise: one fused kernel per tensor reading and
    # writing the param (2 x param bytes counted as 2 accesses) + grad, uint8 states count 1
    "adamw-8bit": (5, 1.0, 0),
    "paged-adamw-8bit": (5, 1.0, 0),
    # bitsandbytes optimizer_update_32bit (PagedAdamW): one fused kernel per tensor; param
    # read+write 2, grad 1, two fp32 states read+write 4
    "paged-adamw": (7, 1.0, 0),
    # torch/optim/sgd.py _multi_tensor_sgd without momentum: params.add_(grads, alpha=-lr)
    "sgd": (3, 0.0, 1),
    # torch/optim/_adafactor.py _single_tensor_adafactor: grad^2, row/col means, lerps,
    # outer product estimate, rsqrt, update, clipping norm, decay, add: ~16 accesses,
    # ~15 small kernels per tensor
    "adafactor": (16, 15.0, 0),
}
