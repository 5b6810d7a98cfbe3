"""VLM families, one module each, registered by name (no torch import until a family is used).

``get_family("llava-next")`` imports ``raysweep.models.llava_next`` on first use; that module
registers its family class with :func:`register`. An unknown name lists the known ones.
"""

from __future__ import annotations

import importlib

from raysweep.errors import UserError, did_you_mean

# name -> module that registers it (imported lazily), default checkpoint, other known checkpoints.
FAMILIES = {
    "qwen2-vl": ("raysweep.models.qwen2_vl", "Qwen/Qwen2-VL-7B-Instruct", ("Qwen/Qwen2-VL-2B-Instruct",)),
    "llava-next": ("raysweep.models.llava_next", "llava-hf/llava-v1.6-vicuna-7b-hf", ("llava-hf/llava-v1.6-vicuna-13b-hf",)),
    "molmo": ("raysweep.models.molmo", "allenai/Molmo-7B-O-0924", ()),
    "clip": ("raysweep.models.clip", "openai/clip-vit-large-patch14-336", ()),
}
_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: register a family under ``name``; a duplicate name is an error."""

    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"model family {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def list_families() -> list[str]:
    """Names of the known families."""
    return sorted(set(FAMILIES) | set(_REGISTRY))


def get_family(name: str):
    """The family object registered as ``name`` (imports its module on first use)."""
    if name not in _REGISTRY:
        if name not in FAMILIES:
            known = list_families()
            raise UserError(f"Unknown model family '{name}'. {did_you_mean(name, known)}Available: {', '.join(known)}.")
        importlib.import_module(FAMILIES[name][0])
    return _REGISTRY[name]()


def build_model(model_cfg, lora_cfg=None):
    """Build ``model_cfg``'s family and, when ``lora_cfg.enabled``, wrap it with LoRA."""
    family = get_family(model_cfg.family)
    built = family.build(model_cfg)
    if lora_cfg is not None and lora_cfg.enabled:
        built = family.apply_lora(built, lora_cfg)
    return built


__all__ = ["FAMILIES", "build_model", "get_family", "list_families", "register"]
