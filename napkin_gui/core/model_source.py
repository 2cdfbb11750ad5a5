"""Where a plan's `model` string leads: a preset id, a config.json path or a model folder.

Presets are resources/presets/<id>.json: a model's real config.json plus a "napkin" object
({"id", "display_name", "hf_id", "published_params", optional "hf_aliases",
"stored_dtype", "note"}); resources/presets/index.json lists the ids. They are read through
importlib.resources, so a checkout, a wheel and a PyInstaller bundle behave the same.
"""
from __future__ import annotations

import difflib
import functools
import importlib.resources
import json
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from napkin_gui.core.errors import PlanError
from napkin_gui.core.files import loads_json, read_regular_bytes
from napkin_gui.core.hf_config import MAX_PARAMS, model_spec_from_config
from napkin_gui.core.model_spec import ModelSpec
from napkin_gui.core.safetensors_header import folder_tensors, header_param_count, header_stored_dtype
from napkin_gui.core.text import shown

# Larger than any real config.json (they are a few KB); guards against pointing at weights.
MAX_CONFIG_BYTES = 16_000_000
# A safetensors total this far from the config's count is reported in ModelSpec.warnings.
HEADER_MISMATCH_FRACTION = 0.01


@dataclass(frozen=True, slots=True)
class PresetInfo:
    """One entry of the GUI's model picker."""

    id: str
    display_name: str
    family: str
    params_b: float
    hf_id: str

    @property
    def name(self) -> str:
        """The display name (what a picker shows next to the id)."""
        return self.display_name


def _presets_dir() -> Any:
    """resources/presets: the checkout's own folder next to this package when there is one
    (so a second, stale install cannot shadow it), else the installed package data."""
    checkout = Path(__file__).resolve().parents[2] / "resources" / "presets"
    if (checkout / "index.json").is_file():
        return checkout
    try:
        return importlib.resources.files("napkin_gui.resources").joinpath("presets")
    except (ModuleNotFoundError, TypeError):  # bundles place the data at napkin_gui/resources
        return Path(__file__).resolve().parents[1] / "resources" / "presets"


@functools.lru_cache(maxsize=None)
def _preset_raw(preset_id: str) -> dict:
    """The preset file as a dict (its "napkin" object included)."""
    return json.loads(_presets_dir().joinpath(f"{preset_id}.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def preset_ids() -> tuple[str, ...]:
    """Every preset id, as listed in resources/presets/index.json."""
    index = json.loads(_presets_dir().joinpath("index.json").read_text(encoding="utf-8"))
    return tuple(index["presets"])


@functools.lru_cache(maxsize=1)
def _preset_keys() -> dict[str, str]:
    """Lower-cased id, hf_id and hf_aliases -> preset id."""
    keys: dict[str, str] = {}
    for pid in preset_ids():
        meta = _preset_raw(pid)["napkin"]
        for name in (meta.get("hf_id"), *meta.get("hf_aliases", ())):
            if name:
                keys.setdefault(name.lower(), pid)
    keys.update({pid.lower(): pid for pid in preset_ids()})
    return keys


@functools.lru_cache(maxsize=None)
def _preset_spec(preset_id: str) -> ModelSpec:
    raw = dict(_preset_raw(preset_id))
    meta = raw.pop("napkin")
    spec = model_spec_from_config(raw, preset_id, source="preset")
    return replace(spec, stored_dtype=meta["stored_dtype"]) if "stored_dtype" in meta else spec


@functools.lru_cache(maxsize=1)
def is_preset(model: str) -> bool:
    """Whether model names a preset (its id, Hugging Face id or alias, any case)."""
    return model.strip().lower() in _preset_keys()


def list_presets() -> tuple[PresetInfo, ...]:
    """Every preset for the picker, grouped by family, small to large."""
    infos = []
    for pid in preset_ids():
        meta, spec = _preset_raw(pid)["napkin"], _preset_spec(pid)
        infos.append(PresetInfo(pid, meta["display_name"], spec.model_type,
                                round(spec.total_params / 1e9, 3), meta.get("hf_id", "")))
    return tuple(sorted(infos, key=lambda p: (p.family, p.params_b, p.id)))


# difflib's ratio is quadratic in the typed length: match on this many characters at most.
MATCH_CHARS = 64


@functools.lru_cache(maxsize=256)
def _unknown_model_message(model: str) -> str:
    """One line naming the three presets closest to what was typed (echo escaped and cut)."""
    if model.startswith((".", "/", "~")) or "\\" in model or model.lower().endswith(".json"):
        return (f"model: no such file or folder {shown(model, 200)} "
                "(give a preset id, a config.json path or a model folder)")
    typed = model[:MATCH_CHARS].lower()

    def likeness(pid: str) -> tuple[float, str]:
        return (-difflib.SequenceMatcher(None, typed, pid).ratio(), pid)

    closest = sorted(preset_ids(), key=likeness)[:3]
    return (f"model: unknown model {shown(model)}; closest presets: {', '.join(closest)} "
            "(or give a config.json path / model folder)")


def _read_config(path: Path) -> dict:
    """A config.json as a dict; every failure is one PlanError line.

    Only a regular file of at most MAX_CONFIG_BYTES is read (core/files.py): /dev/zero or a
    FIFO as the model is refused at once instead of growing memory or blocking.
    """
    try:
        raw = read_regular_bytes(path, MAX_CONFIG_BYTES)
    except OSError as err:
        raise PlanError(f"model: cannot read {shown(str(path), 200)} ({err.strerror or err})") from None
    config = loads_json(raw, f"model: {shown(str(path), 200)}", strict_keys=False)
    if not isinstance(config, dict):
        raise PlanError(f"model: {path} must hold a JSON object")
    return config


def _with_headers(spec: ModelSpec, folder: Path) -> ModelSpec:
    """Exact count and stored dtype from the folder's safetensors headers, when it has any."""
    tensors = folder_tensors(folder)
    if not tensors:
        return spec
    # transformers ties lm_head to the embeddings; a checkpoint may still store a copy.
    skip = tuple(n for n in tensors if n.endswith("lm_head.weight")) if spec.tie_word_embeddings else ()
    count = header_param_count(tensors, skip)
    if count > MAX_PARAMS:
        raise PlanError(f"model: the safetensors headers in {shown(folder.name, 80)} hold {count:.3g} parameters; "
                        f"napkin takes models up to {MAX_PARAMS:.0e}")
    warnings = spec.warnings
    if abs(count - spec.counted_params) > HEADER_MISMATCH_FRACTION * spec.counted_params:
        warnings += (f"model: the safetensors hold {count:,} parameters but config.json gives "
                     f"{spec.counted_params:,} (extra towers or pre-quantized weights?); using the safetensors count",)
    return replace(spec, exact_params=count, stored_dtype=header_stored_dtype(tensors) or spec.stored_dtype,
                   source="safetensors", warnings=warnings)


@functools.lru_cache(maxsize=64)
def _path_spec(path: str, mtime_ns: int) -> ModelSpec:
    """ModelSpec of a config.json file or a model folder (cached per modification time)."""
    target = Path(path).resolve()
    if target.is_dir():
        config_path = target / "config.json"
        if not config_path.is_file():
            raise PlanError(f"model: folder {shown(path, 200)} has no config.json")
        spec = model_spec_from_config(_read_config(config_path), target.name, source="config")
        return _with_headers(spec, target)
    name = target.parent.name if target.name == "config.json" and target.parent.name else target.stem
    return model_spec_from_config(_read_config(target), name, source="config")


def resolve_model(model: str) -> ModelSpec:
    """The ModelSpec a plan's `model` names: preset id or HF repo id, config.json, or folder."""
    if not isinstance(model, str) or not model.strip():
        raise PlanError("model: must be a preset id (e.g. llama-3.1-8b), a config.json path or a model folder")
    key = model.strip()
    preset = _preset_keys().get(key.lower())
    if preset is not None:
        return _preset_spec(preset)
    path = os.path.expanduser(key)
    try:  # os.stat on the string: a few microseconds per keystroke
        info = os.stat(path)
        stamp = info.st_mtime_ns
        if stat.S_ISDIR(info.st_mode):  # its config.json may change without touching the folder
            stamp = max(stamp, os.stat(os.path.join(path, "config.json")).st_mtime_ns)
    except FileNotFoundError:
        if os.path.isdir(path):
            raise PlanError(f"model: folder {shown(key, 200)} has no config.json") from None
        raise PlanError(_unknown_model_message(key)) from None
    except (OSError, ValueError):
        raise PlanError(_unknown_model_message(key)) from None
    return _path_spec(path, stamp)
