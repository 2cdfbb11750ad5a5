"""FSDP's parameter mixed precision (`precision: fsdp-mixed-bf16`): fp32 shards, bf16 everywhere
the parameters are gathered, and the accelerate upcast that makes a bf16 plan run this way.

FSDP1, torch 2.13 torch/distributed/fsdp/_flat_param.py and _runtime_utils.py, with
`MixedPrecision(param_dtype=torch.bfloat16)`:
- the sharded flat parameter (`_local_shard`) keeps the original dtype, fp32: the optimizer
  steps fp32 shards with fp32 states (model_state counts them: param_dtype is fp32);
- FlatParamHandle._use_low_precision_shard allocates `_mp_shard`, a bf16 copy of the local
  shard, on the device before each all-gather (`flat_param._mp_shard.copy_(...)`: "copy_()
  implicitly casts to the low precision"), freed after it (_free_low_precision_sharded_param);
- `_full_param_padded`, the all-gather destination, is in `_fwd_bwd_param_dtype` = bf16, so
  the gathered units and the root unit are bf16 and forward/backward run in bf16 (bf16
  activations: precision.activation_dtypes gives 2-byte tensors, no autocast copies);
- gradients come out of the backward in bf16 and are reduce-scattered in `_reduce_dtype`:
  `reduce_dtype` defaults to param_dtype (api.py MixedPrecision docstring) and accelerate sets
  `reduce_dtype` = the mixed-precision dtype (accelerate 1.16 utils/dataclasses.py
  FullyShardedDataParallelPlugin.set_mixed_precision); the bf16 output shard is then cast to
  fp32 (_cast_grad_to_param_dtype: `sharded_grad.data.to(dtype=param.dtype)`), so the shard
  of the gradients is fp32 and the unsharded ones waiting for their reduce are bf16.
FSDP2 (torch/distributed/fsdp/_fully_shard/_fsdp_api.py MixedPrecisionPolicy,
_fsdp_param.py all_gather_inputs `.to(param_dtype)`, _fsdp_collectives.py foreach_reduce)
does the same per parameter: a bf16 cast of the shard as the all-gather input, a bf16
unsharded parameter, reduce in the compute dtype unless reduce_dtype is set, the fp32 shard.

A 16-bit `precision` under accelerate's FSDP: Accelerator.prepare_model (accelerate 1.16
accelerator.py, "FSDP upcast of low precision parameters") upcasts every trainable flat
parameter to fp32 when mixed precision is on ("if model is loaded in 16bit, and even if
mixed_precision.param_dtype is None, we still want to upcast the flat_param"): the HF
Trainer or TRL with `bf16=True` turns a bf16-loaded model into fsdp-mixed-bf16.
"""
from __future__ import annotations

from ..plan import Plan

FSDP_MIXED = "fsdp-mixed-bf16"
GATHERED_BYTES_PER_ELEMENT = 2     # param_dtype = bf16
SHARD_BYTES_PER_ELEMENT = 4        # the original dtype, fp32


def uses_fsdp_mixed(plan: Plan) -> bool:
    """FSDP's MixedPrecision(param_dtype=bf16) over fp32 shards."""
    return plan.precision == FSDP_MIXED and plan.sharding == "fsdp"


def gathered_fraction(plan: Plan) -> float:
    """Bytes of a gathered (unsharded) parameter per byte of its fp32 shard storage: bf16 / fp32
    under fsdp-mixed-bf16; 1 otherwise (FSDP gathers in the stored dtype)."""
    return GATHERED_BYTES_PER_ELEMENT / SHARD_BYTES_PER_ELEMENT if uses_fsdp_mixed(plan) else 1.0


def low_precision_shard_bytes(plan: Plan, unit_shard_bytes: int) -> int:
    """FSDP1 `_mp_shard` / FSDP2's bf16 all-gather input: one bf16 copy of the unit's local
    shard on the device while its all-gather runs (unit_shard_bytes: the fp32 shard)."""
    if not uses_fsdp_mixed(plan):
        return 0
    return int(unit_shard_bytes * gathered_fraction(plan))


def reduce_fraction(plan: Plan) -> float:
    """Bytes of an unsharded gradient awaiting its reduce-scatter per byte of the fp32 gradient
    shard: the gradients are produced and reduced in bf16 (reduce_dtype = param_dtype)."""
    return gathered_fraction(plan)


def accelerate_upcast_warning(plan: Plan) -> str | None:
    """The note a transformers plan with FSDP and 16-bit weights gets: under accelerate with
    mixed precision on, its parameters are held in fp32 (Accelerator.prepare_model)."""
    if (plan.framework != "transformers" or plan.sharding != "fsdp" or plan.method != "full"
            or plan.precision not in ("bf16", "fp16")):
        return None
    return (f"accelerate's FSDP upcasts {plan.precision} parameters to fp32 when mixed precision is on "
            f"(TrainingArguments {plan.precision}=True; accelerate accelerator.py prepare_model): that run "
            f"holds fp32 shards, gradients and AdamW states: estimate it with precision {FSDP_MIXED}")
