"""What core.estimate() returns: frozen records the UI, report and CLI only format."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .gpu_spec import GpuSpec
from .model_spec import ModelSpec
from .plan import Plan

# Component names, in the fixed order of the stacked bars (contract: memory.components).
COMPONENTS = (
    "weights",           # base weights (bf16/fp32, or NF4 codes + absmax), fp32 masters
    "adapters",          # LoRA A/B matrices
    "gradients",         # .grad of trainable parameters
    "optimizer_states",  # AdamW moments, 8-bit blocks, Adafactor factors
    "activations",       # tensors saved for backward (or checkpointed layer inputs)
    "logits_loss",       # logits, fp32 upcast, log-softmax and its gradient
    "temporaries",       # transient work buffers: optimizer foreach temps, gathered shards, workspaces
    "allocator_slack",   # reserved by the caching allocator but not allocated
    "cuda_context",      # CUDA context + kernels + library handles (outside torch)
)

# What a person reads for each component (bars, legends, tables, the PDF).
COMPONENT_LABELS: dict[str, str] = {
    "weights": "weights",
    "adapters": "LoRA adapters",
    "gradients": "gradients",
    "optimizer_states": "optimizer states",
    "activations": "activations",
    "logits_loss": "logits & loss",
    "temporaries": "temporaries",
    "allocator_slack": "allocator slack",
    "cuda_context": "CUDA context",
}

# Components torch.cuda.max_memory_allocated() counts.
ALLOCATED_COMPONENTS = COMPONENTS[:7]


@dataclass(frozen=True, slots=True)
class MemoryComponent:
    """Bytes of one component at the peak, with the formula behind it (tooltip, PDF)."""

    name: str
    bytes: int
    formula: str


class TimelinePoint(NamedTuple):
    """Allocated bytes at one phase of a steady training step, split by component.

    A named tuple, not a dataclass: a step of an 80-layer model has ~170 of them and the GUI
    builds a few hundred timelines per edit (curves, hardware table)."""

    phase: str
    allocated_bytes: int
    values: tuple[int, ...]  # bytes per component, in ALLOCATED_COMPONENTS order

    @property
    def by_component(self) -> tuple[tuple[str, int], ...]:
        return tuple(zip(ALLOCATED_COMPONENTS, self.values))


@dataclass(frozen=True, slots=True)
class AlgorithmMemory:
    """What a preference / RL step adds to the SFT picture (core/memory/algorithm_timeline.py,
    TRL 1.16); MemoryEstimate.algorithm is None for SFT."""

    algorithm: str
    reference: str
    policy_sequences: int          # sequences in one policy forward (DPO family: chosen + rejected)
    sequence_tokens: int           # tokens per sequence (GRPO: prompt + completion)
    scored_tokens: int             # positions with a label (the completions)
    reference_weights_bytes: int   # a frozen reference copy on the card
    reference_forward: bool        # a reference forward inside each step
    kv_cache_bytes: int            # GRPO with transformers: the DynamicCache at its largest
    generation_sequences: int      # GRPO: sequences decoded together
    vllm_reserved_bytes: int       # GRPO vllm-colocate: its share of the card, every phase
    phases: tuple[str, ...]        # the phases the algorithm adds beside SFT's


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    components: tuple[MemoryComponent, ...]
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    device_used_bytes: int
    capacity_bytes: int
    fits: bool
    peak_phase: str
    # the step's phases and, per phase, bytes by component (ALLOCATED_COMPONENTS order);
    # kept as plain tuples of ints, which the garbage collector stops tracking: the GUI holds
    # ~1,000 estimates, and 170 tracked objects each made full collections visible stalls
    phases: tuple[str, ...]
    phase_values: tuple[tuple[int, ...], ...]
    # memory outside the GPU's allocator: CPU RAM for offloaded state, CUDA managed memory
    # (paged optimizers: on the card while there is room, paged to the host when not)
    host_bytes: int = 0
    managed_bytes: int = 0
    paged_out_bytes: int = 0      # of managed_bytes, in host RAM at the peak (summary.paged_out_bytes)
    paged_tensor_bytes: int = 0   # of managed_bytes, what one tensor's update needs on the card
    paged_traffic_bytes: int = 0  # paged over PCIe per optimizer step (summary.paged_traffic_bytes)
    algorithm: AlgorithmMemory | None = None

    def component(self, name: str) -> MemoryComponent:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    @property
    def timeline(self) -> tuple[TimelinePoint, ...]:
        """Allocated bytes after each phase of a steady step, split by component."""
        return tuple(TimelinePoint(phase, sum(values), values) for phase, values in zip(self.phases, self.phase_values))

    @property
    def headroom_bytes(self) -> int:
        """Capacity minus what NVML would show; negative when it does not fit."""
        return self.capacity_bytes - self.device_used_bytes


@dataclass(frozen=True, slots=True)
class TimeTerm:
    """One part of the step time: its seconds and the roofline behind it."""

    name: str
    seconds: float
    formula: str


@dataclass(frozen=True, slots=True)
class TimeEstimate:
    step_seconds: float            # one micro-batch: forward + backward (+ its share of the optimizer)
    optimizer_step_seconds: float  # one optimizer step: grad_accum micro-batches + update
    tokens_per_second: float       # per GPU
    tokens_per_second_total: float  # all GPUs
    bound: str                     # compute | memory | overhead | pcie
    terms: tuple[TimeTerm, ...]
    flops_per_step: float = 0.0
    mfu: float = 0.0               # model FLOPs utilisation (6·N·tokens / peak)


@dataclass(frozen=True, slots=True)
class TotalEstimate:
    tokens: float
    hours: float
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Estimate:
    plan: Plan
    model: ModelSpec
    gpu: GpuSpec
    total_params: int
    trainable_params: int
    memory: MemoryEstimate
    time: TimeEstimate
    total: TotalEstimate | None
    calibration: str | None = None
    warnings: tuple[str, ...] = ()
