"""torchtune's and TRL's activation offloading (OffloadActivations): saved tensors in pinned host RAM.

Sources, read line by line:
- torchtune 0.6.1 torchtune/training/_activation_offloading.py: `OffloadActivations` is a
  `saved_tensors_hooks`. Its pack hook gives every tensor an id; a tensor of at least
  `min_offload_size` (1024) bytes that is not an `nn.Parameter` / `nn.Buffer` is copied into
  `torch.empty_like(..., pin_memory=True, device="cpu")` on a side stream s1 and kept in
  `fwd_stash` until a later offloaded tensor's id is `max_fwd_stash_size` (5) ids past it
  (`self.s0.wait_event(ev); del self.fwd_stash[id]`); smaller tensors and parameters stay as
  they are. The first backward node's hook deletes what is left in the stash; an unpacked
  tensor still in the stash is used from the device (`brought_back_from_cpu = False`), every
  other one is copied back on s1 and the compute stream waits for it at once
  (`self.s0.wait_stream(self.s1)`). `get_act_offloading_ctx_manager` puts a `NoOpManager`
  around `model.output`: the output head's saved tensors never reach the hook. The recipes
  (recipes/lora_finetune_single_device.py) refuse offloading without activation checkpointing
  ("enable_activation_offloading should only be True when enable_activation_checkpointing is
  True") and run only the model under it: `with self.activations_handling_ctx: logits =
  self._model(**batch)`; the loss comes after.
- TRL 1.16 trl/models/activation_offloading.py: the same class plus deduplication by storage
  (`storage_key in self.storage_to_tensor_id`: a storage already in the stash is not copied
  again and its later reference keeps it on the device), parameter storages skipped by
  pointer, the NoOpManager around `lm_head`. trl/trainer/sft_trainer.py `training_step` runs
  the whole step under it, so the loss's saved tensors are offloaded too
  (`SFTConfig(activation_offloading=True)`; it does not need gradient checkpointing).
- torch 2.x non-reentrant checkpoint (torch/utils/checkpoint.py
  `_checkpoint_without_reentrant_generator`: `new_frame.save_inputs(*args)` before entering
  `_checkpoint_hook`): of a checkpointed block the outer hook sees only its positional tensor
  inputs, the hidden states; whatever the block saves goes to the checkpoint's own (innermost)
  hook and is recomputed in backward.

What napkin counts: the device keeps, per block, what the hook did not copy or still holds in
the stash when the forward ends (the last 5 ids); the forward rows of the timeline count that
same residue and leave out the copies still in flight during the forward (at most 4 earlier
packs): with checkpointing the forward never sets the peak (each block's recompute in backward
holds more). Each block's saved tensors come back for its own backward.

Checked on CPU with torchtune's and TRL's own OffloadActivations (only the device-copy calls
replaced) around tiny models from torchtune's builders and transformers
(tests/test_activation_offload_real_torch.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..model_spec import DecoderLayer, ModelSpec
from . import activations as act
from ..plan import Plan
from .activations import ActivationDtypes

MIN_OFFLOAD_BYTES = 1024      # OffloadActivations(min_offload_size=1024)
MAX_FWD_STASH_SIZE = 5        # OffloadActivations(max_fwd_stash_size=5)
VERSIONS = {"torchtune": "torchtune 0.6.1 torchtune/training/_activation_offloading.py",
            "transformers": "TRL 1.16 trl/models/activation_offloading.py"}


@dataclass(frozen=True, slots=True)
class Pack:
    """One call of the pack hook: a saved tensor's bytes and the storage it views.

    storage: a label shared by the packs of one storage (None: a parameter, never offloaded);
    block: the decoder block it belongs to (0 for what comes before or after the blocks);
    first_backward: the first backward node unpacks it (it is used from the stash)."""

    nbytes: int
    storage: str | None
    block: int = 0
    first_backward: bool = False


@dataclass(frozen=True, slots=True)
class ActivationOffload:
    """Where OffloadActivations leaves one micro-batch's saved tensors after the forward."""

    module: str                      # "torchtune OffloadActivations" / "TRL OffloadActivations"
    offloaded_tensors: int           # copies made into pinned host memory (exact when checkpointed)
    host_bytes: int                  # pinned host RAM those copies hold
    device_to_host_bytes: int        # PCIe traffic in the forward
    host_to_device_bytes: int        # PCIe traffic in the backward (what the stash did not keep)
    block_device_bytes: tuple[int, ...]   # each block's kept bytes still on the device at the loss
    checkpointed: bool               # the blocks are checkpointed: only their inputs were packed

    def formula(self, n_blocks: int) -> str:
        """The activations row's text: the module, what it copies and where it stays."""
        what = (f"{self.offloaded_tensors:,} tensors >= {MIN_OFFLOAD_BYTES} B ({n_blocks} checkpointed block inputs,"
                f" the final norm's{', the loss' if 'TRL' in self.module else ''})" if self.checkpointed
                else f"every saved tensor >= {MIN_OFFLOAD_BYTES} B of {n_blocks} blocks")
        return (f"{self.module}, {what} copied to {self.host_bytes / 2**30:.2f} GiB of pinned host RAM; "
                f"the last {MAX_FWD_STASH_SIZE} packed stay on the card until backward")


def shared_attention_output_bytes_per_token(layer: DecoderLayer, dt: ActivationDtypes, kernel: str) -> int:
    """Full fine-tuning with a fused attention kernel: sdpa returns its output in [b, s, h, d]
    memory, so `transpose(1, 2).contiguous()` copies nothing and o_proj saves (a view of) the
    tensor sdpa saved; TRL sees that storage a second time and keeps it on the card instead of
    copying it (napkin's block count has it twice: activations.attention_saved_bytes_per_token)."""
    if not dt.base_trainable or kernel != "flash":
        return 0
    roles = act.linear_roles(layer)
    return sum(lin.d_in * dt.attn for lin, r in zip(layer.linears, roles) if r == "attn_out")


def dedup_residue_bytes_per_token(layer: DecoderLayer, hidden: int, dt: ActivationDtypes, rms: bool) -> int:
    """Of one unchecked block's saved tensors, what TRL's storage deduplication leaves on the
    device (a storage saved again while its first copy is in the stash keeps its device
    reference): each RMSNorm's fp32 x and rstd (saved by pow / rsqrt and again by mul), and,
    when the base trains, the input that several linears of one role read (q/k/v, gate/up)."""
    total = layer.norms * (hidden * 4 + 4) if rms else 0
    if dt.base_trainable:
        roles = act.linear_roles(layer)
        for role in ("attn_in", "mlp_in"):
            if sum(r == role for r in roles) > 1:
                total += hidden * dt.stream
    return total


def offloads(plan: Plan) -> bool:
    """torchtune's recipes (enable_activation_offloading) and TRL's SFTConfig(activation_offloading)
    wrap the forward in OffloadActivations; unsloth's offload is its own (frameworks/unsloth.py)."""
    return plan.activation_offload and plan.framework in ("torchtune", "transformers")


def norm_packs(tokens: int, hidden: int, dt: ActivationDtypes, rms: bool, framework: str) -> list[Pack]:
    """The final norm's packs in order. RMSNorm (torchtune RMSNorm through F.rms_norm's
    composite on an fp32 x, transformers LlamaRMSNorm): pow saves the fp32 x, rsqrt its fp32
    output [tokens, 1], mul both again; a trainable scale's mul saves the normalized tensor
    (fp32 in torchtune, `.to(input_dtype)` in transformers) and the scale. LayerNorm
    (native_layer_norm) saves x, mean and rstd once."""
    x = tokens * hidden
    if not rms:
        return [Pack(x * dt.stream, "norm.x"), Pack(tokens * 4, "norm.mean"), Pack(tokens * 4, "norm.rstd")]
    packs = [Pack(x * 4, "norm.x32"), Pack(tokens * 4, "norm.rstd"), Pack(tokens * 4, "norm.rstd"),
             Pack(x * 4, "norm.x32", first_backward=not dt.base_trainable)]
    if dt.base_trainable:
        normalized = x * (4 if framework == "torchtune" else dt.stream)
        packs += [Pack(normalized, "norm.normalized", first_backward=True), Pack(0, None)]
    else:
        packs.append(Pack(0, None))   # the frozen scale (a parameter)
    return packs


def loss_packs(plan: Plan, spec: ModelSpec, dt: ActivationDtypes) -> list[Pack]:
    """What the loss saves, when it runs under the hook (TRL's training_step; torchtune's
    recipes compute it outside). standard: transformers ForCausalLMLoss -> cross_entropy:
    log_softmax saves its fp32 output, nll_loss the same tensor, the shifted labels (int64) and
    a 0-d total weight. fused-linear-ce: Liger's `ctx.save_for_backward(grad_input,
    grad_weight, grad_bias)` (grad_weight only when lm_head trains). cut-ce:
    cut_cross_entropy LinearCrossEntropyFunction saves e, the fp32 log-sum-exp and the targets."""
    if plan.framework != "transformers" or plan.algorithm != "sft":
        return []   # (DPO's / KTO's log-prob heads are not counted here: their host copies are left out)
    tokens, hidden, vocab = plan.batch_size * plan.seq_len, spec.hidden_size, spec.vocab_size
    if plan.loss == "fused-linear-ce":
        packs = [Pack(tokens * hidden * dt.stream, "loss.grad_input", first_backward=True)]
        if dt.base_trainable:
            packs.append(Pack(vocab * hidden * dt.stream, "loss.grad_weight", first_backward=True))
        return packs
    if plan.loss == "cut-ce":
        return [Pack(tokens * hidden * dt.stream, "loss.e", first_backward=True),
                Pack(tokens * 4, "loss.lse", first_backward=True), Pack(tokens * 8, "loss.targets")]
    return [Pack(tokens * vocab * 4, "loss.logprobs", first_backward=True),
            Pack(tokens * vocab * 4, "loss.logprobs", first_backward=True),
            Pack(tokens * 8, "loss.labels"), Pack(4, "loss.total_weight")]


def stashed(packs: list[Pack], dedup: bool) -> tuple[list[bool], set[int]]:
    """OffloadActivations.pack_tensor over the packs in order: which were copied to the host,
    and the indices of those still in fwd_stash when the forward ends."""
    copied: list[bool] = []
    stash: list[int] = []            # indices of offloaded packs in fwd_stash, oldest first
    for i, p in enumerate(packs):
        tracked = {packs[j].storage for j in stash}
        if p.storage is None or p.nbytes < MIN_OFFLOAD_BYTES or (dedup and p.storage in tracked):
            copied.append(False)     # a parameter, too small, or (TRL) a storage already being copied
            continue
        stash = [j for j in stash if j > i - MAX_FWD_STASH_SIZE]   # `id <= tensor_id - max_fwd_stash_size`
        stash.append(i)
        copied.append(True)
    return copied, set(stash)


def activation_offload(spec: ModelSpec, plan: Plan, dt: ActivationDtypes, block_saved: tuple[int, ...],
                       block_kept: tuple[int, ...], block_residue: tuple[int, ...],
                       block_shared: tuple[int, ...]) -> ActivationOffload | None:
    """OffloadActivations over one forward of the plan (None when the plan does not offload).

    block_saved / block_kept: each block's saved tensors and what it keeps after its forward
    (its input when checkpointed); block_residue: of a block's saved bytes, the storages TRL's
    deduplication keeps on the device as well as copying them (saved again while their first
    copy is in the stash); block_shared: of those, what napkin's block count holds twice
    (shared_attention_output_bytes_per_token), never copied."""
    if not offloads(plan):
        return None
    tokens = plan.batch_size * plan.seq_len
    packs: list[Pack] = []
    if dt.base_trainable:   # a trained embedding saves the int64 input ids
        packs.append(Pack(tokens * 8, "embedding.ids"))
    for i, kept in enumerate(block_kept, 1):
        if plan.grad_ckpt:   # save_inputs: the block's hidden-state input
            packs.append(Pack(kept, f"block{i}.input", i))
        else:                # every saved storage copied once; a deduplicated one also stays on the card
            packs.append(Pack(block_saved[i - 1] - block_shared[i - 1], f"block{i}.saved", i))
    rms = spec.norm_kind == "rms"
    packs += norm_packs(tokens, spec.hidden_size, dt, rms, plan.framework)
    packs += loss_packs(plan, spec, dt)
    dedup = plan.framework == "transformers"
    copied, stash = stashed(packs, dedup)
    host = sum(p.nbytes for p, c in zip(packs, copied) if c)
    first = [i for i in stash if packs[i].first_backward]
    back = host - sum(packs[i].nbytes for i in first)
    on_device = list(block_residue) if not plan.grad_ckpt else [0] * len(block_kept)
    for i, (p, c) in enumerate(zip(packs, copied)):
        if p.block and (not c or i in stash):
            on_device[p.block - 1] += p.nbytes
    count = sum(copied)
    name = "torchtune OffloadActivations" if plan.framework == "torchtune" else "TRL OffloadActivations"
    return ActivationOffload(name, count, host, host, back, tuple(on_device), plan.grad_ckpt)
