"""The real short trial of a plan: a few training steps of the model at reduced depth.

For each depth k in `layers` (e.g. 2 and 4 decoder layers) the plan's model is built with
random weights (trial_model.py), trained for a warm-up step, measured steps and one step
whose allocated-memory timeline is recorded phase by phase; then peak memory, parameter
counts and step time are extrapolated per layer to the full depth (extrapolate.py).
Same protocol as shared/groundtruth/measure.py one_run: random token ids, labels =
input_ids, loss from the model, backward, opt.step(), zero_grad(set_to_none=True); the
steady-state peak is max_memory_allocated over the steps after the first.
On CPU memory is not counted (torch has no allocator statistics there): the trial then
checks the path and counts parameters and time only. torch is imported inside.
"""
from __future__ import annotations

import contextlib
import gc
import json
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..core.calibration import TrialPoint, TrialRecord
from ..core.errors import PlanError
from ..core.model_source import resolve_model
from ..core.plan import Plan, plan_to_dict
from ..units import GIB, gib, seconds
from .extrapolate import extrapolate_int, extrapolate_seconds, extrapolate_timeline, trial_depths
from .trial_model import (TrialUnsupported, build_model, check_supported, config_from_model_spec,
                          decoder_layers, full_layer_count, make_optimizer, param_counts)

Progress = Callable[[float, str], None]
StopCheck = Callable[[], bool]
MEASURED_STEPS = 2  # after one warm-up step, before the timeline step


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """A trial's record, or None with the one-line reason in status."""

    status: str
    record: TrialRecord | None

    @property
    def ok(self) -> bool:
        return self.record is not None


class _Cancelled(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Run:
    """One reduced-depth run as measured."""

    point: TrialPoint
    micro_seconds: float | None
    optimizer_seconds: float | None
    timeline: tuple[tuple[str, int], ...]
    context_bytes: int | None


def default_layers(full_layers: int, spec: Any = None) -> tuple[int, ...]:
    """2 and 4 decoder layers (a slope and an intercept), or the depths that extrapolate
    exactly when the layers differ (extrapolate.trial_depths); the whole model when <= 4."""
    layers = spec.layers() if hasattr(spec, "layers") else ()
    if len(layers) == full_layers:
        return trial_depths([layer.params for layer in layers])
    return (full_layers,) if full_layers <= 4 else (2, 4)


def run_trial(plan: Plan, model_spec: Any = None, device: str = "cuda",
              layers: tuple[int, ...] | None = None, progress: Progress | None = None,
              should_stop: StopCheck | None = None,
              nvml_used: Callable[[], tuple[int | None, int | None]] | None = None,
              measured_steps: int = MEASURED_STEPS, memory_snapshot: str | None = None) -> TrialOutcome:
    """Trial `plan` on `device`; never raises (failures become TrialOutcome.status).

    Per depth: one warm-up step, `measured_steps` timed steps, one step whose phases are
    recorded. nvml_used: () -> (device used, other processes' used) bytes (nvml.device_memory),
    for the CUDA context size. memory_snapshot: on CUDA, write torch's allocator snapshot of
    the largest run's recorded step there (a pickle for https://pytorch.org/memory_viz).
    """
    progress = progress or (lambda f, t: None)
    should_stop = should_stop or (lambda: False)
    try:
        import torch
    except ImportError:
        return TrialOutcome("trial needs torch, transformers and peft (pip install 'napkin[probe]')", None)
    try:
        with warnings.catch_warnings():
            # library deprecation chatter (transformers 5 renames, peft) is not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return _run_trial(torch, plan, model_spec, torch.device(device), layers, progress,
                              should_stop, nvml_used, max(1, measured_steps), memory_snapshot)
    except _Cancelled:
        return TrialOutcome("trial cancelled", None)
    except (TrialUnsupported, PlanError) as err:
        return TrialOutcome(str(err), None)
    except torch.OutOfMemoryError as err:
        return TrialOutcome(f"trial ran out of GPU memory{getattr(err, 'napkin_where', '')}: "
                            "the plan does not fit this GPU even at reduced depth", None)
    except ImportError as err:
        return TrialOutcome(f"trial needs {err.name or 'torch, transformers and peft'} "
                            "(pip install 'napkin[probe]')", None)
    except Exception as err:  # noqa: BLE001 - any failure is a status line, never a crash
        text = str(err).strip().splitlines()
        first = text[0] if text else ""
        if _is_cuda_error(torch, err):  # sticky: the process's CUDA context is unusable from here
            return TrialOutcome(f"trial hit a CUDA error{getattr(err, 'napkin_where', '')}: {first}; "
                                "restart napkin before probing again", None)
        return TrialOutcome(f"trial failed: {type(err).__name__}: {first}".rstrip(": "), None)
    finally:
        _cleanup_quietly(torch)


def _is_cuda_error(torch: Any, err: BaseException) -> bool:
    """A CUDA runtime error (torch.AcceleratorError since torch 2.8, a RuntimeError starting
    "CUDA error" before), not out-of-memory (handled above)."""
    accelerator = getattr(torch, "AcceleratorError", None)
    return (accelerator is not None and isinstance(err, accelerator)) or str(err).startswith("CUDA error")


def _cleanup_quietly(torch: Any) -> None:
    """Free the trial's memory; after a CUDA error every CUDA call fails again, and that second
    failure must not replace the trial's status (or escape run_trial, which never raises)."""
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            _free(torch, True)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def _where(torch: Any, dev: Any, k: int, full: int) -> str:
    """" with k of full decoder layers (peak X of Y GiB)"; without the figures when the CUDA
    calls that give them fail too (a broken context, a CPU build of torch)."""
    where = f" with {k} of {full} decoder layers"
    try:
        peak = torch.cuda.max_memory_allocated(dev) / GIB
        total = torch.cuda.get_device_properties(dev).total_memory / GIB
    except Exception:  # noqa: BLE001 - the figures are extra; the failure is the news
        return where
    return f"{where} (peak {peak:.1f} of {total:.1f} GiB)"


def _run_trial(torch: Any, plan: Plan, spec: Any, dev: Any, layers: tuple[int, ...] | None,
               progress: Progress, should_stop: StopCheck, nvml_used: Any, measured: int,
               snapshot: str | None = None) -> TrialOutcome:
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrialUnsupported(f"trial needs CUDA; torch {torch.__version__} sees no GPU")
    if spec is None:
        spec = resolve_model(plan.model)
    config = config_from_model_spec(spec)
    full = full_layer_count(config)
    layers = tuple(sorted(set(layers or default_layers(full, spec))))
    if not layers or layers[0] < 1 or layers[-1] > full:
        raise TrialUnsupported(f"trial: layers must be between 1 and {full}, got {layers}")
    check_supported(plan, dev)
    runs: list[_Run] = []
    for i, k in enumerate(layers):
        if should_stop():
            raise _Cancelled()
        progress(i / len(layers), f"trial: {k} of {full} layers")
        span = (i / len(layers), (i + 1) / len(layers))
        try:
            runs.append(_one_run(torch, plan, config, k, dev, span, progress, should_stop, nvml_used, measured,
                                 snapshot if k == layers[-1] else None))
        except torch.OutOfMemoryError as err:
            err.napkin_where = _where(torch, dev, k, full)
            raise
        except Exception as err:
            if _is_cuda_error(torch, err):
                err.napkin_where = f" with {k} of {full} decoder layers"
            raise
    progress(1.0, "trial done")
    record = _record(plan, dev, full, runs)
    return TrialOutcome(_summary(record), record)


def _one_run(torch: Any, plan: Plan, config: dict, k: int, dev: Any, span: tuple[float, float],
             progress: Progress, should_stop: StopCheck, nvml_used: Any, measured: int,
             snapshot: str | None = None) -> _Run:
    cuda = dev.type == "cuda"
    _free(torch, cuda)
    base = torch.cuda.memory_allocated(dev) if cuda else 0
    model = opt = None
    try:
        model = build_model(plan, config, k, dev)
        weights = torch.cuda.memory_allocated(dev) - base if cuda else None
        blocks = decoder_layers(model, k)
        total, trainable = param_counts(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(plan, params)
        vocab = int(model.get_input_embeddings().weight.shape[0])
        recorder = _PhaseRecorder(torch, dev, blocks)
        micro_times, opt_times = [], []
        steps = 1 + measured + 1
        for step in range(steps):
            if should_stop():
                raise _Cancelled()
            progress(span[0] + (span[1] - span[0]) * step / steps, f"trial: {k} layers, step {step + 1}/{steps}")
            if step == 1 and cuda:
                torch.cuda.reset_peak_memory_stats(dev)  # steady state: steps after the first
            record = step == steps - 1
            if record:
                peak_alloc = torch.cuda.max_memory_allocated(dev) if cuda else None
                peak_res = torch.cuda.max_memory_reserved(dev) if cuda else None
            with _allocator_history(torch, snapshot if record and cuda else None):
                micro, optim = _train_step(torch, plan, model, opt, vocab, dev, recorder, record)
            recorder.stop()
            if 1 <= step <= measured:
                micro_times.append(micro)
                opt_times.append(optim)
        timeline = recorder.timeline() if cuda else ()
        if cuda:
            peak_alloc = max([peak_alloc] + [b for _, b in timeline])
            peak_res = max(peak_res, torch.cuda.max_memory_reserved(dev))
        context = _context_bytes(torch, dev, nvml_used) if cuda else None
        micro_s, opt_s = statistics.median(micro_times), statistics.median(opt_times)
        point = TrialPoint(layers=k, total_params=total, trainable_params=trainable,
                           peak_allocated_bytes=peak_alloc, peak_reserved_bytes=peak_res,
                           weights_bytes=weights, step_seconds=micro_s + opt_s / plan.grad_accum,
                           phases=recorder.phases())
        return _Run(point, micro_s, opt_s, timeline, context)
    finally:
        try:  # after a CUDA error these fail too: the first error is the one to report
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            del model, opt
            _free(torch, cuda)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def _train_step(torch: Any, plan: Plan, model: Any, opt: Any, vocab: int, dev: Any,
                recorder: "_PhaseRecorder", record: bool) -> tuple[float, float]:
    """One optimizer step; (seconds per micro-batch, seconds of opt.step + zero_grad).

    With grad_accum > 1 two micro-batches run, so the second one's forward sees the first
    one's gradients alive, as in training; `record` marks the phases of the last one."""
    autocast = plan.precision.startswith("mixed-")
    compute = getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[plan.compute_dtype])
    micro_batches = min(plan.grad_accum, 2)
    _sync(torch, dev)
    t0 = time.perf_counter()
    for i in range(micro_batches):
        if record and i == micro_batches - 1:
            recorder.start()
            recorder.mark("weights loaded")
        ids = torch.randint(0, vocab, (plan.batch_size, plan.seq_len), device=dev)
        with torch.autocast(dev.type, dtype=compute, enabled=autocast):
            out = model(input_ids=ids, labels=ids)
        recorder.mark("logits & loss")
        recorder.in_backward = True
        out.loss.backward()
        recorder.in_backward = False
        recorder.mark("backward L1")
        del out, ids
    _sync(torch, dev)
    t1 = time.perf_counter()
    opt.step()
    recorder.mark("optimizer step")
    opt.zero_grad(set_to_none=True)
    recorder.mark("after zero_grad")
    _sync(torch, dev)
    t2 = time.perf_counter()
    return (t1 - t0) / micro_batches, t2 - t1


class _PhaseRecorder:
    """Module hooks that mark step phases: forward per layer, backward per layer (a hook on
    each layer's output gradient fires when the layers after it are done), recompute per
    layer under checkpointing. Each mark is the peak allocated since the previous mark
    (max_memory_allocated, then reset), so the timeline's maximum is the step's peak."""

    def __init__(self, torch: Any, dev: Any, blocks: list[Any]) -> None:
        self.torch, self.dev, self.cuda = torch, dev, dev.type == "cuda"
        self.active = False
        self.in_backward = False
        self._marks: list[tuple[str, int]] = []
        self._n = len(blocks)
        for i, block in enumerate(blocks):
            block.register_forward_hook(self._forward_hook(i))
            # transformers 5 checkpoints `forward`, so the block's own hooks stay outside the
            # recompute; its children's hooks run inside it (merged into one mark per layer)
            for child in block.children():
                child.register_forward_hook(self._recompute_hook(i))

    def start(self) -> None:
        self._marks = []
        self.active = True
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats(self.dev)

    def stop(self) -> None:
        self.active = False
        self.in_backward = False

    def mark(self, phase: str) -> None:
        if not self.active:
            return
        value = 0
        if self.cuda:
            value = self.torch.cuda.max_memory_allocated(self.dev)
            self.torch.cuda.reset_peak_memory_stats(self.dev)
        if self._marks and self._marks[-1][0] == phase:  # one phase seen by several hooks
            value = max(value, self._marks[-1][1])
            self._marks.pop()
        self._marks.append((phase, value))

    def phases(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self._marks)

    def timeline(self) -> tuple[tuple[str, int], ...]:
        return tuple(self._marks)

    def _recompute_hook(self, i: int) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            if self.active and self.in_backward:
                self.mark(f"recompute L{i + 1}")
        return hook

    def _forward_hook(self, i: int) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            if not self.active:
                return
            if self.in_backward:
                self.mark(f"recompute L{i + 1}")
                return
            self.mark(f"forward L{i + 1}")
            hidden = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(hidden, self.torch.Tensor) and hidden.requires_grad:
                after = "backward head" if i == self._n - 1 else f"backward L{i + 2}"
                hidden.register_hook(lambda grad: self.mark(after))
        return hook


@contextlib.contextmanager
def _allocator_history(torch: Any, path: str | None) -> Iterator[None]:
    """torch.cuda.memory._record_memory_history around one step, dumped to `path` (private
    torch API, torch >= 2.1: a failure to record never fails the trial)."""
    if path is None:
        yield
        return
    memory = torch.cuda.memory
    try:
        memory._record_memory_history(max_entries=200_000)
    except Exception:  # noqa: BLE001 - optional diagnostics
        yield
        return
    try:
        yield
        memory._dump_snapshot(path)
    finally:
        memory._record_memory_history(enabled=None)


def _record(plan: Plan, dev: Any, full: int, runs: list[_Run]) -> TrialRecord:
    pts = [r.point for r in runs]
    layers = tuple(p.layers for p in pts)
    cuda = dev.type == "cuda"

    def ext(values: list[Any]) -> Any:
        return extrapolate_int(list(zip(layers, values)), full)

    def ext_f(values: list[float | None]) -> float | None:
        if any(v is None for v in values):
            return None
        return extrapolate_seconds(list(zip(layers, values)), full)

    micro, optim = ext_f([r.micro_seconds for r in runs]), ext_f([r.optimizer_seconds for r in runs])
    step = None if micro is None or optim is None else micro + optim / plan.grad_accum
    peak_res = ext([p.peak_reserved_bytes for p in pts])
    context = runs[-1].context_bytes
    notes = [] if cuda else ["CPU trial: memory not measured (torch counts only CUDA allocations)"]
    if plan.optimizer == "paged-adamw-8bit":
        notes.append("paged optimizer states live in CUDA managed memory, outside torch's counts")
    if plan.n_gpus > 1:
        notes.append(f"trial ran one GPU; the plan's {plan.n_gpus} data-parallel GPUs were not reproduced")
    if len(layers) == 1 and layers[0] != full:
        notes.append(f"one depth ({layers[0]} layers) only: figures are not extrapolated to {full} layers")
    return TrialRecord(
        plan_json=json.dumps(plan_to_dict(plan)), device=str(dev), full_layers=full,
        layers_run=layers, total_params=ext([p.total_params for p in pts]),
        trainable_params=ext([p.trainable_params for p in pts]),
        peak_allocated_bytes=ext([p.peak_allocated_bytes for p in pts]), peak_reserved_bytes=peak_res,
        device_used_bytes=None if peak_res is None or context is None else peak_res + context,
        step_seconds=step,
        optimizer_step_seconds=None if micro is None or optim is None else micro * plan.grad_accum + optim,
        tokens_per_second=plan.tokens_per_micro_batch / step if step else None,
        memory_measured=cuda, points=tuple(pts),
        timeline=extrapolate_timeline([(r.point.layers, r.timeline) for r in runs], full) if cuda else (),
        raw_timeline=runs[-1].timeline, notes=tuple(notes))


def _summary(r: TrialRecord) -> str:
    depth = "x".join(str(k) for k in r.layers_run)
    where = f"{depth} of {r.full_layers} layers on {r.device}"
    if r.peak_allocated_bytes is None:
        return f"trial ran ({where}): {seconds(r.step_seconds)} per step, memory not measured"
    return (f"trial ran ({where}): peak allocated {gib(r.peak_allocated_bytes, 1)}, "
            f"reserved {gib(r.peak_reserved_bytes, 1)}, {seconds(r.step_seconds)} per step")


def _context_bytes(torch: Any, dev: Any, nvml_used: Any) -> int | None:
    """NVML's device used minus other processes and torch's reserved memory, model alive
    (benchmarks._context_bytes, the groundtruth definition)."""
    if nvml_used is None:
        return None
    device_used, others = nvml_used()
    if device_used is None or others is None:
        return None
    return max(0, device_used - others - torch.cuda.memory_reserved(dev))


def _sync(torch: Any, dev: Any) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _free(torch: Any, cuda: bool) -> None:
    """Return freed blocks to the driver so the next run starts clean (CUDA only: on CPU
    there is nothing to measure and a full gc costs ~0.2 s with transformers loaded)."""
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
