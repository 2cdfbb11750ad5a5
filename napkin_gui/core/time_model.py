"""Step time: every operation priced by a roofline, host and device overlapped.

The work of a step (core/step_work.py: FLOPs, bytes, kernel launches per phase) is priced on
the plan's card: each matmul at max(FLOPs / achievable rate, bytes / bandwidth), flash
attention at its own efficiency, elementwise traffic (norms, activations, casts, LoRA's fp32
path, the fp32 loss, NF4 dequantization, the optimizer update) at the achievable bandwidth.
The host (Python, autograd, kernel launches) runs ahead of the device; a phase takes the soft
maximum of the two, which is why batch 1 and batch 4 at 512 tokens cost nearly the same.
Link traffic (sharding, offload; core/comm.py) overlaps its phase's device work in part.
Efficiencies are data: resources/time_efficiency.json, fitted by bench/fit_time.py.

The formulas from comm_seconds to the bound take Python floats (one plan on one card: estimate,
advise, validate) or numpy float64 arrays with one element per row: compare_hardware prices a
plan on every card x GPU count (152 rows) on each edit of the desktop app (too slow a row at
a time in floats: bench/README.md). Only larger / smaller / where / first_largest tell the two apart, and they import
numpy only when arrays come, so estimate and the CLI never load it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .comm import (CommSeconds, LinkTraffic, comm_seconds, host_bytes_per_second, interconnect_bytes_per_second,
                   link_traffic)
from .gpu_spec import GpuSpec
from .memory.model_state import ModelState
from .model_spec import ModelSpec
from .plan import Plan
from .result import TimeEstimate, TimeTerm
from .step_work import PhaseWork, StepWork, step_work
from .time_efficiency import TimeEfficiency, time_efficiency

if TYPE_CHECKING:  # annotations only: numpy is imported where arrays come
    from numpy import ndarray


def larger(a: float | ndarray, b: float | ndarray) -> float | ndarray:
    """max(a, b) for floats (the same tie rule); elementwise for numpy arrays."""
    if type(a) is float and type(b) is float:
        return b if b > a else a
    import numpy
    return numpy.maximum(a, b)


def smaller(a: float | ndarray, b: float | ndarray) -> float | ndarray:
    """min(a, b) for floats (the same tie rule); elementwise for numpy arrays."""
    if type(a) is float and type(b) is float:
        return b if b < a else a
    import numpy
    return numpy.minimum(a, b)


def where(condition: bool | ndarray, a: float | str, b: float | str | ndarray) -> float | str | ndarray:
    """a if condition else b; elementwise for a numpy array of conditions."""
    if type(condition) is bool:
        return a if condition else b
    import numpy
    return numpy.where(condition, a, b)


def first_largest(values: dict[str, float | ndarray], names: tuple[str, ...]) -> str | ndarray:
    """The first of names with the largest value, as max(names, key=values.get) picks it; per
    row (an array of names) when the values are numpy arrays. The first value decides: a float
    means all are floats; else the values, arrays or floats, are broadcast to rows."""
    if type(values[names[0]]) is float:
        return max(names, key=values.__getitem__)
    import numpy
    columns = numpy.stack(numpy.broadcast_arrays(*(values[name] for name in names)))  # [name, row]
    return numpy.array(names)[numpy.argmax(columns, axis=0)]  # argmax: the first largest, like max


class PhaseSeconds(NamedTuple):
    """One phase priced: device compute / memory seconds, host seconds, link seconds (floats,
    or arrays with one element per row). A NamedTuple: step_time makes three, and a NamedTuple
    is cheaper to make than a frozen dataclass (bench/README.md)."""

    compute: float
    memory: float
    host: float
    link: float = 0.0
    offload: float = 0.0           # OffloadActivations' PCIe copies (seconds at the host link)
    offload_overlap: float = 0.0   # the share of the device time they can hide behind

    @property
    def device(self) -> float:
        return self.compute + self.memory


def matmul_flops_per_second(gpu: GpuSpec, eff: TimeEfficiency, dtype: str) -> float:
    """Achievable dense matmul rate: datasheet x measured derate, or the calibrated rate.
    fp32 matmuls run without TF32 (torch.backends.cuda.matmul.allow_tf32 is False by default)."""
    if dtype == "fp32":
        peak, derate = gpu.fp32_tflops, eff.matmul_fp32
    else:
        peak, derate = (gpu.fp16_tflops if dtype == "fp16" else gpu.bf16_tflops), eff.matmul_16bit
    return peak * 1e12 * (1.0 if gpu.calibrated else derate)


def bandwidth_bytes_per_second(gpu: GpuSpec, eff: TimeEfficiency) -> float:
    """Achievable device-memory bandwidth (read + write counted)."""
    bw = gpu.memory_bandwidth_gbps * 1e9
    return bw if gpu.calibrated else bw * eff.memory_bandwidth


def device_seconds(phase: PhaseWork, gpu: GpuSpec, eff: TimeEfficiency, compute_dtype: str) -> tuple[float, float]:
    """(compute, memory) seconds of one phase on the device (memoised on the phase by the
    identity of the card and efficiencies: both are frozen)."""
    key = (id(gpu), id(eff), compute_dtype)
    hit = phase.device_memo.get(key)
    if hit is not None and hit[0] is gpu and hit[1] is eff:
        return hit[2]
    if len(phase.device_memo) >= 256:
        phase.device_memo.clear()
    seconds = _device_seconds(phase, gpu, eff, compute_dtype)
    phase.device_memo[key] = (gpu, eff, seconds)
    return seconds


def _device_seconds(phase: PhaseWork, gpu: GpuSpec, eff: TimeEfficiency, compute_dtype: str) -> tuple[float, float]:
    return _phase_device_seconds(phase, bandwidth_bytes_per_second(gpu, eff),
                                 lambda dtype: matmul_flops_per_second(gpu, eff, dtype), eff, compute_dtype)


def _phase_device_seconds(phase: PhaseWork, bw, rate_of, eff: TimeEfficiency, compute_dtype: str):
    """(compute, memory) seconds of one phase at bandwidth bw and matmul rates rate_of(dtype):
    floats for one card, or numpy arrays with one element per card (card_rates_over). Each
    matmul at max(FLOPs / rate, bytes / bandwidth) plus its launch, counted as compute or
    memory by which term is larger. The array branch runs the float branch's sums in the same
    order (adding 0.0 where a matmul is the other kind), so each element equals its card's
    float; the float branch stays plain Python (estimate and compare_hardware's rows)."""
    compute = memory = 0.0
    rates: dict = {}
    if type(bw) is float:
        for (dtype, flops, nbytes), launches in phase.matmuls.items():
            rate = rates.get(dtype) or rates.setdefault(dtype, rate_of(dtype))
            flops_s = flops / (rate * eff.matmul_efficiency)
            bytes_s = nbytes / bw
            t = launches * (max(flops_s, bytes_s) + eff.matmul_launch_seconds)
            if flops_s >= bytes_s:
                compute += t
            else:
                memory += t
    else:
        import numpy
        for (dtype, flops, nbytes), launches in phase.matmuls.items():
            rate = rates[dtype] if dtype in rates else rates.setdefault(dtype, rate_of(dtype))
            flops_s = flops / (rate * eff.matmul_efficiency)
            bytes_s = nbytes / bw
            t = launches * (numpy.maximum(flops_s, bytes_s) + eff.matmul_launch_seconds)
            compute_bound = flops_s >= bytes_s
            compute = compute + numpy.where(compute_bound, t, 0.0)
            memory = memory + numpy.where(compute_bound, 0.0, t)
    rate16 = rate_of(compute_dtype)
    compute += phase.attention_flops / (rate16 * eff.attention_efficiency)
    memory += (phase.elementwise_bytes + phase.dequant_bytes) / (bw * eff.elementwise_efficiency)
    memory += (phase.launches + phase.autograd_launches) * eff.device_kernel_seconds
    return compute, memory


class CardRates(NamedTuple):
    """A card as step time prices a StepWork on it: the device seconds of each phase and the
    link rates. Floats for one card; arrays with one element per row in compare_hardware."""

    forward_compute_seconds: float
    forward_memory_seconds: float
    backward_compute_seconds: float
    backward_memory_seconds: float
    optimizer_compute_seconds: float
    optimizer_memory_seconds: float
    interconnect_bytes_per_second: float
    host_bytes_per_second: float
    generation_compute_seconds: float = 0.0   # GRPO: StepWork.generation on the card
    generation_memory_seconds: float = 0.0


def card_rates(work: StepWork, gpu: GpuSpec, eff: TimeEfficiency, compute_dtype: str) -> CardRates:
    """The work's device seconds on gpu (memoised, device_seconds) and the card's link rates."""
    return CardRates(*device_seconds(work.forward, gpu, eff, compute_dtype),
                     *device_seconds(work.backward, gpu, eff, compute_dtype),
                     *device_seconds(work.optimizer, gpu, eff, compute_dtype),
                     interconnect_bytes_per_second(gpu, eff), host_bytes_per_second(gpu, eff),
                     *(device_seconds(work.generation, gpu, eff, compute_dtype) if work.generation is not None
                       else (0.0, 0.0)))


def card_rates_over(work: StepWork, gpus: tuple[GpuSpec, ...], eff: TimeEfficiency, compute_dtype: str) -> CardRates:
    """card_rates of the work on every card at once: numpy arrays with one element per card
    (the search prices each split's StepWork on every catalog card)."""
    import numpy
    bw = numpy.array([bandwidth_bytes_per_second(g, eff) for g in gpus])
    memo: dict[str, ndarray] = {}

    def rate_of(dtype: str) -> ndarray:
        if dtype not in memo:
            memo[dtype] = numpy.array([matmul_flops_per_second(g, eff, dtype) for g in gpus])
        return memo[dtype]
    phases = [_phase_device_seconds(phase, bw, rate_of, eff, compute_dtype)
              for phase in (work.forward, work.backward, work.optimizer)]
    generation = (_phase_device_seconds(work.generation, bw, rate_of, eff, compute_dtype)
                  if work.generation is not None else (0.0, 0.0))   # GRPO's generation
    return CardRates(*(numpy.broadcast_to(x, bw.shape) for pair in phases for x in pair),
                     numpy.array([interconnect_bytes_per_second(g, eff) for g in gpus]),
                     numpy.array([host_bytes_per_second(g, eff) for g in gpus]),
                     *(numpy.broadcast_to(x, bw.shape) for x in generation))


def host_seconds(phase: PhaseWork, eff: TimeEfficiency) -> float:
    """Python and dispatch time of one phase on the CPU."""
    return (phase.launches * eff.host_launch_seconds
            + phase.autograd_launches * eff.host_autograd_launch_seconds
            + phase.modules * eff.host_module_seconds
            + phase.quant_calls * eff.host_quant_call_seconds
            + phase.checkpoints * eff.host_checkpoint_seconds)


def smooth_max(a: float | ndarray, b: float | ndarray, p: float) -> float | ndarray:
    """(a^p + b^p)^(1/p): the larger of a and b (both >= 0), rounded up where they are close."""
    hi = larger(a, b)
    unit = where(hi > 0.0, hi, 1.0)  # where a = b = 0 the ratios are 0 and so is the result
    return hi * ((a / unit) ** p + (b / unit) ** p) ** (1.0 / p)


def activation_offload_exposed_seconds(device_seconds: float | ndarray, copy_seconds: float | ndarray,
                                       overlap: float) -> float | ndarray:
    """Seconds activation offloading's PCIe copies add to a phase (torchtune 0.6.1
    torchtune/training/_activation_offloading.py, TRL 1.16 trl/models/activation_offloading.py,
    use_streams=True): the copies run on the side stream s1 beside the compute stream s0, so they
    hide behind up to `overlap` of the phase's device time. Forward: s0 waits for a copy only
    max_fwd_stash_size packs later (`self.s0.wait_event(ev)`), overlap 1. Backward: a tensor is
    fetched when autograd reaches its node and s0 waits for it at once (`self.s0.wait_stream(self.s1)`),
    overlap 0 (resources/time_efficiency.json activation_offload_*_overlap). unsloth's
    UnslothCheckpointFunction (unsloth_zoo gradient_checkpointing.py) copies each layer input on
    EXTRA_STREAM beside that layer's forward and makes MAIN_STREAM wait at its end, and in backward
    waits for the copy back before the recompute (unsloth_offload_*_overlap, 1 and 0)."""
    return copy_seconds - overlap * smaller(device_seconds, copy_seconds)


def overlapped_seconds(phases: tuple[PhaseSeconds, ...], eff: TimeEfficiency) -> float:
    """Wall time of phases run back to back: the host issues work that the device queues,
    so the device finishes a phase no earlier than its own work nor than the host's."""
    host_done = device_done = 0.0
    for ph in phases:
        device = ph.device + ph.link - eff.comm_overlap * smaller(ph.device, ph.link)
        if type(ph.offload) is not float or ph.offload:   # activation offloading's copies
            device = device + activation_offload_exposed_seconds(ph.device, ph.offload, ph.offload_overlap)
        device_done = smooth_max(device_done + device, host_done + smooth_max(ph.host, device, eff.overlap_exponent),
                                 eff.overlap_exponent)
        host_done += ph.host
    return device_done


def step_phases(plan: Plan, work: StepWork, card: CardRates, eff: TimeEfficiency, comm: CommSeconds,
                shards: float) -> tuple[tuple[PhaseSeconds, PhaseSeconds], PhaseSeconds]:
    """((forward, backward) of a micro-batch, optimizer update) priced on the card.

    Reads only plan.offload: GPU count and sharding come in as shards (LinkTraffic.shards)."""
    fwd = PhaseSeconds(card.forward_compute_seconds, card.forward_memory_seconds,
                       host_seconds(work.forward, eff), comm.forward)
    bwd = PhaseSeconds(card.backward_compute_seconds, card.backward_memory_seconds,
                       host_seconds(work.backward, eff), comm.backward)
    up = work.offload_to_host_bytes
    if type(up) is not float or up:   # OffloadActivations: device->host in forward, back in backward
        forward, backward = ((eff.unsloth_offload_forward_overlap, eff.unsloth_offload_backward_overlap)
                             if work.offload_unsloth else
                             (eff.activation_offload_forward_overlap, eff.activation_offload_backward_overlap))
        fwd = fwd._replace(offload=up / card.host_bytes_per_second, offload_overlap=forward)
        bwd = bwd._replace(offload=work.offload_to_device_bytes / card.host_bytes_per_second,
                           offload_overlap=backward)
    if plan.offload != "none":   # the update runs on the CPU: its time is in comm.step
        return (fwd, bwd), PhaseSeconds(0.0, 0.0, 0.0, comm.step)
    scale = 1.0 / shards  # each GPU updates its shard of the optimizer state
    opt = PhaseSeconds(card.optimizer_compute_seconds * scale, card.optimizer_memory_seconds * scale,
                       host_seconds(work.optimizer, eff), comm.step)
    return (fwd, bwd), opt


def generation_phase(work: StepWork, card: CardRates, eff: TimeEfficiency) -> PhaseSeconds | None:
    """GRPO's generation priced on the card: prefill compute, decoding's weight and KV reads
    (core/step_work.py generation_work); the host only for transformers' generate."""
    generation = getattr(work, "generation", None)   # search's per-row work carries no generation
    if generation is None:
        return None
    host = host_seconds(generation, eff) if work.generation_host else 0.0
    return PhaseSeconds(card.generation_compute_seconds, card.generation_memory_seconds, host)


def _bound(fwd: PhaseSeconds, bwd: PhaseSeconds, opt: PhaseSeconds, ga: int,
           gen: PhaseSeconds | None = None, paged: float = 0.0) -> tuple[str, dict[str, float]]:
    """What an optimizer step (ga micro-batches, one update, GRPO's generation, paged optimizer
    states over PCIe) spends its seconds on, and the kind that bounds it."""
    totals = {"compute": ga * (fwd.compute + bwd.compute) + opt.compute,
              "memory": ga * (fwd.memory + bwd.memory) + opt.memory,
              "overhead": ga * (fwd.host + bwd.host) + opt.host,
              "pcie": ga * (fwd.link + bwd.link + fwd.offload + bwd.offload) + opt.link + paged}
    if gen is not None:
        totals["compute"] += gen.compute
        totals["memory"] += gen.memory
        totals["overhead"] += gen.host
    device = totals["compute"] + totals["memory"]
    return where(totals["overhead"] > device + totals["pcie"], "overhead",
                 first_largest(totals, ("compute", "memory", "pcie"))), totals


def _term_formulas(plan: Plan, gpu: GpuSpec, eff: TimeEfficiency, work: StepWork) -> tuple[str, str, str, str]:
    """The text behind each time term, memoised: the hardware table formats the same few
    texts 152 times (by card identity, like device_seconds)."""
    key = (id(gpu), id(eff), plan.compute_dtype, plan.sharding, plan.n_gpus, work.executed_flops,
           work.offload_to_host_bytes, work.offload_to_device_bytes, work.offload_unsloth)
    hit = _FORMULAS.get(key)
    if hit is not None and hit[0] is gpu and hit[1] is eff:
        return hit[2]
    rate = matmul_flops_per_second(gpu, eff, plan.compute_dtype) / 1e12
    bw = bandwidth_bytes_per_second(gpu, eff) / 1e9
    texts = (f"{work.executed_flops:.3g} FLOP matmul + attention at {rate:.0f} TFLOP/s x "
             f"{eff.matmul_efficiency:.2f} (attention x {eff.attention_efficiency:.2f})",
             f"elementwise, loss, dequant, optimizer bytes at {bw:.0f} GB/s x {eff.elementwise_efficiency:.2f}",
             "host: Python, autograd and kernel launches (overlaps the device)",
             (f"GPU-GPU collectives ({plan.sharding}, {plan.n_gpus} GPUs) and CPU offload traffic" if plan.n_gpus > 1
              else "CPU offload traffic (one GPU: no collectives)") + _activation_offload_text(work, gpu, eff))
    if len(_FORMULAS) >= 1024:
        _FORMULAS.clear()
    _FORMULAS[key] = (gpu, eff, texts)
    return texts


_FORMULAS: dict[tuple, tuple[GpuSpec, TimeEfficiency, tuple[str, str, str, str]]] = {}


def _activation_offload_text(work: StepWork, gpu: GpuSpec, eff: TimeEfficiency) -> str:
    if not work.offload_to_host_bytes:
        return ""
    rate = host_bytes_per_second(gpu, eff) / 1e9
    who, forward, backward = (("UnslothCheckpointFunction", eff.unsloth_offload_forward_overlap,
                               eff.unsloth_offload_backward_overlap) if work.offload_unsloth else
                              ("OffloadActivations", eff.activation_offload_forward_overlap,
                               eff.activation_offload_backward_overlap))
    return (f"; activation offload ({who}): {work.offload_to_host_bytes / 1e9:.2f} GB to pinned host"
            f" RAM in forward ({forward:.0%} hidden behind compute), "
            f"{work.offload_to_device_bytes / 1e9:.2f} GB back in backward "
            f"({backward:.0%} hidden) at {rate:.0f} GB/s")


def _terms(totals: dict[str, float], plan: Plan, gpu: GpuSpec, eff: TimeEfficiency, work: StepWork,
           paged_bytes: float = 0.0) -> tuple[TimeTerm, ...]:
    """Per-micro-batch seconds of each kind of work (they overlap: their sum exceeds the step)."""
    ga = plan.grad_accum
    texts = _term_formulas(plan, gpu, eff, work)
    if paged_bytes:
        texts = texts[:3] + (f"{texts[3]}; paged optimizer states: {paged_bytes / 2 / 2**30:.2f} GiB in and out "
                             f"per optimizer step (they do not all fit beside torch's reserve)",)
    terms = tuple(TimeTerm(name, totals[name] / ga, text)
                  for name, text in zip(("compute", "memory", "overhead", "pcie"), texts))
    if "generation" in totals:   # GRPO: its generation's share of each micro-batch (in the terms above too)
        who = "transformers generate" if work.generation_host else f"vLLM ({plan.generation})"
        terms += (TimeTerm("generation", totals["generation"] / ga,
                           f"{who}: prefill of {plan.prompt_len} prompt tokens (compute) + {plan.completion_len} "
                           f"decoding steps reading the weights and KV cache (memory), "
                           f"{plan.batch_size * plan.grad_accum} sequences together"),)
    return terms


class StepTime(NamedTuple):
    """One step priced on one card: what the hardware table's rows need, without the texts
    and terms of a full TimeEstimate (from priced_step on arrays: each field one per row)."""

    step_seconds: float             # one micro-batch
    optimizer_step_seconds: float   # grad_accum micro-batches and the update
    tokens_per_second: float        # per GPU
    bound: str
    totals: dict[str, float]        # seconds of an optimizer step by kind (compute, memory, ...)
    work: StepWork


def plan_traffic(plan: Plan, spec: ModelSpec, state: ModelState) -> LinkTraffic:
    """The plan's link traffic per GPU (comm.link_traffic) from its model and state; under FSDP's
    mixed precision the all-gathers and reduce-scatters move bf16 over fp32 shards
    (memory/fsdp_mixed_precision.py)."""
    from .memory.fsdp_mixed_precision import gathered_fraction, uses_fsdp_mixed
    if uses_fsdp_mixed(plan):
        half = gathered_fraction(plan)
        return link_traffic(plan, state.weights_bytes + state.adapter_bytes, state.gradient_bytes,
                            state.trainable_params, spec.num_layers,
                            collective_weights_bytes=(state.weights_bytes + state.adapter_bytes) * half,
                            collective_grad_bytes=state.gradient_bytes * half)
    return link_traffic(plan, state.weights_bytes + state.adapter_bytes, state.gradient_bytes,
                        state.trainable_params, spec.num_layers)


def step_time(plan: Plan, spec: ModelSpec, gpu: GpuSpec, state: ModelState,
              eff: TimeEfficiency | None = None, paged_bytes: float = 0.0) -> StepTime:
    """Seconds per micro-batch and per optimizer step, tokens/s per GPU and the bound.
    paged_bytes: paged optimizer states moved over PCIe per step (MemoryEstimate.paged_traffic_bytes)."""
    eff = eff or time_efficiency()
    work = step_work(spec, plan, state.trainable_params)
    card = card_rates(work, gpu, eff, plan.compute_dtype)
    return priced_step(plan, work, card, plan_traffic(plan, spec, state), eff, paged_bytes)


def priced_step(plan: Plan, work: StepWork, card: CardRates, traffic: LinkTraffic,
                eff: TimeEfficiency, paged_bytes: float = 0.0) -> StepTime:
    """step_time of work on the card(s) under the traffic. Floats price one row; arrays with one
    element per row price compare_hardware's rows at once: there rows differ in card (CardRates)
    and in GPU count and sharding (LinkTraffic), never in what plan gives here (grad_accum,
    offload). paged_bytes (float or one per row): paged optimizer states over the host link,
    after the update's own time: bitsandbytes prefetches each tensor's states on the stream
    its update runs on and synchronizes per tensor (Optimizer8bit.step), so nothing overlaps."""
    comm = comm_seconds(traffic, card.interconnect_bytes_per_second, card.host_bytes_per_second, eff)
    (fwd, bwd), opt = step_phases(plan, work, card, eff, comm, traffic.shards)
    micro = overlapped_seconds((fwd, bwd), eff)
    paged = paged_bytes / card.host_bytes_per_second
    update = overlapped_seconds((opt,), eff) + paged
    gen = generation_phase(work, card, eff)
    generation = overlapped_seconds((gen,), eff) if gen is not None else 0.0
    total = plan.grad_accum * micro + update + generation
    bound, totals = _bound(fwd, bwd, opt, plan.grad_accum, gen, paged)
    if gen is not None:
        totals["generation"] = generation
    return StepTime(total / plan.grad_accum, total, work.tokens * plan.grad_accum / total, bound, totals, work)


def time_estimate(plan: Plan, spec: ModelSpec, gpu: GpuSpec, state: ModelState,
                  eff: TimeEfficiency | None = None, paged_bytes: float = 0.0) -> TimeEstimate:
    """Seconds per micro-batch and per optimizer step, tokens/s, bound, FLOPs and MFU
    (paged_bytes: as step_time)."""
    eff = eff or time_efficiency()
    t = step_time(plan, spec, gpu, state, eff, paged_bytes)
    total, per_gpu, work = t.optimizer_step_seconds, t.tokens_per_second, t.work
    peak = (gpu.fp16_tflops if plan.compute_dtype == "fp16" else
            gpu.fp32_tflops if plan.compute_dtype == "fp32" else gpu.bf16_tflops) * 1e12
    return TimeEstimate(
        step_seconds=t.step_seconds, optimizer_step_seconds=total,
        tokens_per_second=per_gpu, tokens_per_second_total=per_gpu * plan.n_gpus, bound=t.bound,
        terms=_terms(t.totals, plan, gpu, eff, work, paged_bytes), flops_per_step=work.executed_flops * plan.grad_accum,
        mfu=work.model_flops * plan.grad_accum / total / peak)
