"""Config sections of the model layer: which VLM, its LoRA adapter, and how it is evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from raysweep._configlib import doc
from raysweep.errors import ConfigError


@dataclass
class ModelConfig:
    """Which VLM family and checkpoint to load."""

    family: str = doc("VLM family: qwen2-vl, llava-next, molmo or clip (see `raysweep models`).", "llava-next")
    checkpoint: str = doc("Hub id or local path of the weights; 'tiny' builds the family's tiny variant from config.", "tiny")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = doc("Weight dtype; auto = bf16 on GPU, fp32 on CPU.", "auto")
    trust_remote_code: bool = doc("Allow model code from the Hub (needed by Molmo).", False)
    seed: int = doc("Seed of the tiny variant's random weights.", 0)


@dataclass
class LoraConfig:
    """The LoRA adapter (peft)."""

    enabled: bool = doc("Train a LoRA adapter (false = evaluate the base model only).", True)
    rank: int = doc("LoRA rank r.", 32)
    alpha: float = doc("LoRA alpha (scale = alpha / r).", 64.0)
    dropout: float = doc("LoRA dropout.", 0.0)
    init: Literal["gaussian", "default", "pissa", "olora"] = doc("Initialisation of the LoRA A matrix.", "gaussian")
    targets: list[str] = doc("Module names (or one regex) to adapt; empty = the family's default q/k/v.", factory=list)
    vision: bool = doc("Also adapt the vision encoder's attention (the lab's Qwen2-VL runs did).", False)

    def validate(self) -> None:
        if self.rank < 1:
            raise ConfigError("rank", f"must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", f"must lie in [0, 1), got {self.dropout}")


@dataclass
class EvalConfig:
    """How predictions are made and scored."""

    mode: Literal["choice", "generate", "both"] = doc("choice = likelihood of the 9 answers; generate = greedy text then parse.", "choice")
    max_new_tokens: int = doc("Generation budget in generate mode (the paper's 15).", 15)
    batch_size: int = doc("Evaluation batch size.", 16)
