"""Logits and the cross-entropy loss: [tokens, vocab] tensors, the largest of a step at long context.

transformers' ForCausalLMLoss (loss/loss_utils.py) upcasts logits with .float() and calls
F.cross_entropy, whose log_softmax saves its fp32 output. In backward, nll_loss's gradient
([tokens, vocab] fp32) and log_softmax's gradient (fp32) both exist while the saved output
and the model's own logits (held by the returned ModelOutput) are still alive.
"""
from __future__ import annotations


def logits_forward_bytes(tokens: int, vocab: int, logits_bytes: int) -> int:
    """Alive after the loss is computed: the logits (kept by the output) + log_softmax output (fp32)."""
    return tokens * vocab * (logits_bytes + 4)


def logits_loss_peak_bytes(tokens: int, vocab: int, logits_bytes: int, softcap: bool = False) -> int:
    """Peak inside the loss backward: logits + (fp32 copy unless already fp32 / freed) +
    log_softmax output + grad of it + grad of the fp32 logits.

    16-bit logits: 2 + 4 + 4 + 4 = 14 B per element; fp32 logits (lm_head upcast by peft's
    prepare_model_for_kbit_training): 4 + 4 + 4 + 4 = 16 B. Measured 14.0 and 16.0 on an H100
    (llama-3.1-8b LoRA / QLoRA, bs 4 x 2048, shared/groundtruth). Gemma-2 final-logit
    softcapping (logits / cap -> tanh -> * cap) keeps tanh's output too.
    """
    per_elem = logits_bytes + 12
    if softcap:
        per_elem += 2 * logits_bytes
    return tokens * vocab * per_elem


def logits_held_bytes(tokens: int, vocab: int, logits_bytes: int) -> int:
    """The logits a training loop keeps through backward and optimizer.step() while it holds
    the model output (`out = model(...); out.loss.backward(); opt.step()`)."""
    return tokens * vocab * logits_bytes
