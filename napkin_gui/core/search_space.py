"""The plans a search may try: those that train the same thing as the user's plan.

Same model, method, algorithm, sequence length, LoRA shape, precision and global batch
(batch_size x grad_accum x n_gpus sequences per optimizer step); free are what only changes
how fast, how cheap and how much memory: GPU type and count, sharding, CPU offload, gradient
checkpointing, the micro-batch / accumulation split, the AdamW variant (bitsandbytes 8-bit and
paged states) and the stack fields the framework offers: the loss kernel (chunked, fused or
cut cross-entropy), activation offload and, for torchtune's full fine-tuning, the optimizer
step inside backward. The framework itself, the algorithm and its fields stay.
`allow` frees the method (full / LoRA / QLoRA) and the sequence length (then the global
batch in tokens stays: seq_len x sequences per step).

A Recipe fixes everything but the card, GPU count, sharding, offload and split; a Layout the
GPU count, sharding and offload; the search walks splits from the smallest micro-batch up.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import PlanError
from .plan import FRAMEWORK_LOSSES, METHODS, OFFLOADS, OPTIMIZERS, SHARDINGS, Plan, check_combination

ALLOWABLE = ("method", "seq_len")
# AdamW as torch and bitsandbytes implement it: the same update, states in 32 or 8 bits, plain
# or paged (bitsandbytes/optim/adamw.py AdamW8bit, PagedAdamW8bit, PagedAdamW). sgd and
# Adafactor are other algorithms: a plan that uses one keeps it.
ADAMW_FAMILY = tuple(o for o in ("adamw", "adamw-8bit", "paged-adamw-8bit", "paged-adamw") if o in OPTIMIZERS)
# sequence lengths tried when seq_len is allowed to change: the plan's x 1/4 .. x 4
SEQ_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
MIN_SEQ_LEN = 128


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything of a plan but card, layout and split; sequences: per optimizer step."""

    plan: Plan
    sequences: int


@dataclass(frozen=True, slots=True)
class Layout:
    n_gpus: int
    sharding: str
    offload: str


def global_batch(plan: Plan) -> int:
    """Sequences per optimizer step over all GPUs."""
    return plan.batch_size * plan.grad_accum * plan.n_gpus


def parse_allow(text: str) -> frozenset[str]:
    """'method,seq_len' -> the set; PlanError naming what may change."""
    names = frozenset(t.strip() for t in text.split(",") if t.strip())
    bad = sorted(names - set(ALLOWABLE))
    if bad:
        raise PlanError(f"allow: {bad[0]!r} cannot change; use {', '.join(ALLOWABLE)} (comma-separated)")
    return names


def _optimizers(plan: Plan) -> tuple[str, ...]:
    return ADAMW_FAMILY if plan.optimizer in ADAMW_FAMILY else (plan.optimizer,)


def _methods(plan: Plan, allow: frozenset[str]) -> tuple[str, ...]:
    return METHODS if "method" in allow else (plan.method,)


def _seq_lens(plan: Plan, allow: frozenset[str]) -> list[tuple[int, int]]:
    """(seq_len, sequences per step) keeping the tokens per optimizer step."""
    sequences = global_batch(plan)
    if "seq_len" not in allow:
        return [(plan.seq_len, sequences)]
    tokens = plan.seq_len * sequences
    out = []
    for factor in SEQ_FACTORS:
        seq = int(plan.seq_len * factor)
        if seq == plan.seq_len or (seq >= MIN_SEQ_LEN and tokens % seq == 0):
            out.append((seq, tokens // seq))
    return out


def _loss_options(plan: Plan) -> list[dict]:
    """The loss kernels the plan's framework offers (plan.FRAMEWORK_LOSSES), each with the
    liger settings it runs with: under transformers fused-linear-ce is Liger's kernel
    (liger_kernel 0.8.5 LigerFusedLinearCrossEntropyLoss), so it comes with liger on; the
    other kernels come with Liger's RMSNorm / SwiGLU / RoPE kernels on and off (they change
    memory and time whatever the loss: core/memory/liger.py). Other frameworks keep liger off."""
    out = []
    for loss in FRAMEWORK_LOSSES[plan.framework]:
        if plan.framework != "transformers":
            out.append({"loss": loss, "liger": plan.liger})
            continue
        for liger in ((True,) if loss == "fused-linear-ce" else (False, True)):
            out.append({"loss": loss, "liger": liger})
    return out


def _stack_options(plan: Plan) -> list[dict]:
    """The stack fields the framework offers that change only memory and time: the loss kernel,
    activation offload (check_stack says where it runs) and, for torchtune's full fine-tuning,
    the optimizer step inside backward (only without accumulation: a per-split check)."""
    offloads = [{"activation_offload": v} for v in (False, True)]
    in_backward = ([{"optimizer_in_backward": v} for v in (False, True)]
                   if plan.framework == "torchtune" and plan.method == "full" else [{}])
    return [{**a, **b, **c} for a in _loss_options(plan) for b in offloads for c in in_backward]


def recipes(plan: Plan, allow: frozenset[str] = frozenset()) -> list[Recipe]:
    """Every recipe that trains what plan trains (check_combination decides what can run).
    Each is checked as one GPU holding the whole step in one micro-batch, the split the
    fewest checks refuse (KTO's batch >= 2, optimizer_in_backward's grad_accum 1); the
    search checks each (layout, split) again."""
    out: list[Recipe] = []
    for method in _methods(plan, allow):
        for seq, sequences in _seq_lens(plan, allow):
            for optimizer in _optimizers(plan):
                for ckpt in (False, True):
                    for extra in _stack_options(replace(plan, method=method)):
                        changed = replace(plan, method=method, seq_len=seq, optimizer=optimizer,
                                          grad_ckpt=ckpt, n_gpus=1, sharding="none", offload="none",
                                          batch_size=sequences, grad_accum=1, **extra)
                        if runs(changed):
                            out.append(Recipe(changed, sequences))
    return out


def runs(plan: Plan) -> bool:
    """Whether check_combination lets the plan run."""
    try:
        check_combination(plan)
    except PlanError:
        return False
    return True


def _layout_options(plan: Plan, n: int) -> list[tuple[str, str]]:
    """(sharding, offload) pairs worth trying on n GPUs. One GPU shards only to offload its
    parameters (FSDP / ZeRO-3 CPU offload), or where the plan itself does so."""
    if n > 1:
        return [(s, o) for s in SHARDINGS for o in OFFLOADS]
    options = [("none", o) for o in OFFLOADS] + [(s, "optimizer+params") for s in ("fsdp", "zero3")]
    if plan.n_gpus == 1 and plan.sharding != "none":
        options += [(plan.sharding, o) for o in OFFLOADS]
    return list(dict.fromkeys(options))


def layouts(plan: Plan, sequences: int, max_gpus: int) -> list[Layout]:
    """GPU counts up to max_gpus that split the step's sequences evenly, each with the
    shardings and offloads that can run there (check_combination)."""
    return [Layout(n, sharding, offload) for n in range(1, min(max_gpus, sequences) + 1) if sequences % n == 0
            for sharding, offload in _layout_options(plan, n)
            if runs(replace(plan, n_gpus=n, sharding=sharding, offload=offload, batch_size=sequences // n))]


def splits(per_gpu_sequences: int) -> list[tuple[int, int]]:
    """(batch_size, grad_accum) with batch_size x grad_accum = per_gpu_sequences, smallest
    micro-batch first."""
    small = [d for d in range(1, int(per_gpu_sequences ** 0.5) + 1) if per_gpu_sequences % d == 0]
    divisors = sorted(set(small) | {per_gpu_sequences // d for d in small})   # O(sqrt n), not a scan to n
    return [(bs, per_gpu_sequences // bs) for bs in divisors]
