"""What an adapter was trained on, saved next to it and checked against the base it is loaded onto.

A LoRA adapter only means something on the base it was trained with: peft happily attaches a
LLaVA-NeXT adapter to a Qwen2-VL base whose module names and shapes happen to match (or to a tiny
base with other random weights), and the evaluation then scores noise. So
:meth:`~raysweep.models.base.Family.save_adapter` writes :data:`IDENTITY_FILE` (the whole resolved
model section and the task) next to ``adapter_config.json``, and
:meth:`~raysweep.models.base.Family.load_adapter` refuses a base that differs in a key that decides
the weights or the inputs (:func:`differences`). Runtime keys (``dtype``, ``device``,
``trust_remote_code``) may differ.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from raysweep._configlib import to_dict
from raysweep.errors import UserError

IDENTITY_FILE = "raysweep_identity.json"

# Model keys that decide which weights an adapter was trained on and which inputs it saw.
MODEL_KEYS = ("family", "checkpoint", "image_mean", "image_std", "min_pixels", "max_pixels", "head")
# Keys that build the tiny variant: its random weights (seed), its shapes and its input side.
TINY_KEYS = ("seed", "image_size", "tiny_patch", "tiny_hidden", "tiny_layers", "tiny_heads", "tiny_vision_hidden", "tiny_vision_layers",
             "tiny_vision_position", "tiny_vision_position_norm", "tiny_vision_filters", "tiny_init_range")


def task_identity(built) -> dict[str, Any]:
    """The task an adapter answers: the task registry's record of the built model's task."""
    return built.task.identity()


def write_identity(path, model_cfg, task: dict | None = None) -> None:
    """Write :data:`IDENTITY_FILE` into adapter folder ``path``: the model section (and the task)."""
    record = {"model": to_dict(model_cfg)}
    if task is not None:
        record["task"] = task
    (Path(path) / IDENTITY_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def has_identity(path) -> bool:
    return (Path(path) / IDENTITY_FILE).is_file()


def read_identity(path) -> dict | None:
    """The record saved with the adapter in ``path``; None for adapters saved before it existed."""
    file = Path(path) / IDENTITY_FILE
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"adapter {path}: {IDENTITY_FILE} is not valid JSON ({err}); save the adapter again") from None
    if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
        raise UserError(f"adapter {path}: {IDENTITY_FILE} holds no 'model' mapping; save the adapter again")
    return record


def _same_checkpoint(a, b) -> bool:
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()  # ./ckpt and /abs/ckpt


def differences(saved: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, current value)`` for every identity key that differs.

    A key missing from an older record counts as its default (the behaviour it was trained with).
    """
    from raysweep.models.config import ModelConfig

    defaults = to_dict(ModelConfig())
    model_s = {**defaults, **saved["model"]}
    model_c = {**defaults, **current["model"]}
    keys = list(MODEL_KEYS)
    if "tiny" in (model_s["checkpoint"], model_c["checkpoint"]):
        keys += TINY_KEYS
    diffs = []
    for key in keys:
        a, b = model_s.get(key), model_c.get(key)
        if not (_same_checkpoint(a, b) if key == "checkpoint" else a == b):
            diffs.append((f"model.{key}", a, b))
    task_s, task_c = saved.get("task"), current.get("task")
    if isinstance(task_s, dict) and isinstance(task_c, dict):
        diffs += [(f"task.{k}", task_s.get(k), task_c.get(k)) for k in task_c if task_s.get(k) != task_c.get(k)]
    return diffs


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def check_identity(built, path) -> None:
    """Refuse (one line naming the differing keys) an adapter trained on another base than ``built``.

    An adapter without the record (saved by an older raysweep) loads with a warning.
    """
    saved = read_identity(path)
    if saved is None:
        warnings.warn(
            f"adapter {path} has no {IDENTITY_FILE} (saved by an older raysweep): cannot check that it was trained "
            f"on this base ({built.family}, {built.config.checkpoint}); loading it anyway",
            stacklevel=3,
        )
        return
    diffs = differences(saved, {"model": to_dict(built.config), "task": task_identity(built)})
    if diffs:
        was = ", ".join(f"{k}={_show(a)}" for k, a, _ in diffs)
        now = ", ".join(f"{k}={_show(b)}" for k, _, b in diffs)
        raise UserError(f"adapter {path} was trained on {was} but the base is {now}; pass the matching model config")


def misfit_error(built, path, err: Exception) -> UserError:
    """peft's error for an adapter whose modules or shapes are not the base's, as one line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    reason = " ".join(lines[:2])[:300] if lines else type(err).__name__
    return UserError(
        f"adapter {path} does not fit the {built.family} base {built.config.checkpoint!r} ({reason}); it was "
        "trained on another model: pass the matching model config"
    )


def read_adapter_files(path) -> set[str] | None:
    """Check the folder's peft files; returns the saved tensor names (None for a ``.bin`` adapter).

    A missing or damaged file is one line naming it, before peft would fail in a traceback or
    mistake the folder for a Hub id.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(path)
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise UserError(f"adapter {path} not found: expected a folder with adapter_config.json (written by training)")
    try:
        peft_type = json.loads(config.read_text(encoding="utf-8")).get("peft_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise UserError(f"adapter {path}: adapter_config.json is damaged ({err}); save the adapter again") from None
    if not peft_type:
        raise UserError(f"adapter {path}: adapter_config.json names no peft_type; save the adapter again")
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        if (folder / "adapter_model.bin").is_file():
            return None
        raise UserError(f"adapter {path}: adapter_model.safetensors is missing next to adapter_config.json; save the adapter again")
    try:
        with safe_open(str(weights), framework="pt") as f:
            return set(f.keys())
    except (SafetensorError, OSError) as err:
        raise UserError(f"adapter {path}: adapter_model.safetensors is damaged ({err}); save the adapter again") from None


def check_weights_placed(peft_model, built, path, saved: set[str] | None) -> None:
    """Refuse an adapter whose saved tensors are not exactly the adapter tensors of the base.

    peft skips tensors it finds no module for without a word (an adapter of a 4-layer model on a
    2-layer one loads, half of it dropped); comparing the names catches that for every adapter.
    """
    from peft import get_peft_model_state_dict

    if saved is None:
        return
    expected = set(get_peft_model_state_dict(peft_model).keys())
    if saved != expected:
        extra, missing = sorted(saved - expected), sorted(expected - saved)
        parts = [f"{len(extra)} of its tensors have no place in the model (e.g. {extra[0]})"] if extra else []
        parts += [f"{len(missing)} adapter tensors of the model are not in it (e.g. {missing[0]})"] if missing else []
        raise misfit_error(built, path, ValueError("; ".join(parts)))


def check_adapter(path, model_cfg, task) -> None:
    """Before any model is built (a replica elsewhere will load it): the folder holds a readable peft
    adapter trained on this base (``model_cfg``) and this task. Raises UserError as ``load_adapter`` would."""
    from types import SimpleNamespace

    read_adapter_files(path)
    check_identity(SimpleNamespace(config=model_cfg, family=model_cfg.family, task=task), path)
