"""Config sections of the model layer: which VLM, its LoRA adapter, and how it is evaluated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from raysweep._configlib import doc
from raysweep.errors import ConfigError


# Tiny keys that only some families' tiny variants read: (default, families). Another family given a
# non-default value refuses it by name rather than building a model that silently ignores it.
TINY_KEY_FAMILIES = {
    "tiny_vision_position": ("learned", ("llava-next", "clip")),  # CLIP-style position embedding
    "tiny_vision_filters": ("random", ("llava-next", "clip")),  # CLIP-style patch embedding
    "tiny_init_range": (0.02, ("llava-next", "qwen2-vl")),  # a language model
    "tiny_vision_position_norm": (1.0, ("llava-next", "clip")),  # scales the sincos / monotonic codes
}


@dataclass
class ModelConfig:
    """Which VLM family and checkpoint to load."""

    family: str = doc("VLM family: qwen2-vl, llava-next, molmo or clip (see `raysweep models`).", "llava-next")
    checkpoint: str = doc("Hub id or local path of the weights; 'tiny' builds the family's tiny variant from config.", "tiny")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = doc("Weight dtype; auto = bf16 on GPU, fp32 on CPU.", "auto")
    trust_remote_code: bool = doc("Allow model code from the Hub (needed by Molmo).", False)
    seed: int = doc("Seed of the tiny variant's random weights.", 0)
    device: str = doc("Torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...", "auto")
    image_size: int = doc("Tiny variants: input side in pixels (0 = the family's tiny default).", 0)
    tiny_patch: int = doc(
        "Tiny LLaVA-NeXT and CLIP: vision patch side in pixels (0 = image_size / 3, one patch per 3x3 area; "
        "relative position wants one per cell: image_size 108, patch 12 on the 9x9 grid).",
        0,
    )
    image_mean: list[float] = doc(
        "Per-channel mean of the image normalisation (empty = the processor's default; the tiny "
        "variants default to 0 so that a black background stays 0).",
        factory=list,
    )
    image_std: list[float] = doc("Per-channel std of the image normalisation (empty = the processor's default).", factory=list)
    attn_implementation: Literal["", "sdpa", "flash_attention_2", "eager"] = doc(
        "Attention kernel: '' = transformers' default (sdpa where the model supports it); flash_attention_2 needs "
        "the flash-attn package and a bf16/fp16 GPU; eager materialises heads x seq x seq scores (raysweep plan counts them).",
        "",
    )
    min_pixels: int = doc("Qwen2-VL: minimum image pixels of the processor (0 = default; the lab used 100*28*28).", 0)
    max_pixels: int = doc(
        "Qwen2-VL: maximum image pixels of the processor, the cap on image tokens (pixels / 28^2; 0 = default; the lab "
        "used 16384*28*28, up to 16,384 tokens for one photo; 802816 caps at 1,024).",
        0,
    )
    tiny_hidden: int = doc("Tiny variants: hidden size of the language model (or CLIP text tower).", 128)
    tiny_layers: int = doc("Tiny variants: layers of the language model.", 4)
    tiny_heads: int = doc("Tiny variants: attention heads of the language model.", 4)
    tiny_init_range: float = doc(
        "Tiny LLaVA-NeXT and Qwen2-VL: standard deviation of the language model's (and projector's) random "
        "weights (transformers' initializer_range). 0.02, Llama's default, leaves every attention head near "
        "uniform, so an object's share of what the answer token reads shrinks with the image's token count "
        "(171 tokens at 108 px / patch 12: the absolute task stays at chance for 300 steps); 0.1 gives peaked "
        "random heads, some on the objects (99.5% by step 200; README, Tasks).",
        0.02,
    )
    tiny_vision_hidden: int = doc("Tiny variants: hidden size of the vision encoder.", 64)
    tiny_vision_layers: int = doc("Tiny variants: layers of the vision encoder.", 2)
    tiny_vision_position: Literal["learned", "sincos", "monotonic"] = doc(
        "Tiny LLaVA-NeXT and CLIP: the vision tower's position embedding at build. learned = CLIP's random init "
        "(frozen under LoRA, so each patch's position is an arbitrary code); sincos = fixed 2D sine-cosine codes "
        "(MAE's), rows and columns linear in them, as in a pretrained tower; monotonic = the same codes at frequencies "
        "that never pass a quarter turn across the grid, so every channel rises or falls from edge to edge and a "
        "read-out cannot order far-apart patches backwards (the relative-position task's; README, Tasks).",
        "learned",
    )
    tiny_vision_position_norm: float = doc(
        "Tiny LLaVA-NeXT and CLIP with sincos or monotonic positions: the norm of every patch's position code (1 = "
        "an object patch's content embedding). The tower's LayerNorms and random MLPs mix position with content; "
        "at 3 position dominates the mix, so a patch's row and column read the same whatever object is on it: an "
        "MLP given the projector's features at the two objects' cells tells the relation of held-out colour-shape "
        "pairs 98.2% right, against 85.0% at 1 (README, Tasks).",
        1.0,
    )
    tiny_vision_filters: Literal["random", "colour_split"] = doc(
        "Tiny LLaVA-NeXT and CLIP: the patch embedding's filters at build. random = CLIP's init; colour_split = "
        "three quarters achromatic (one random spatial filter on R+G+B: shape without colour) and a quarter "
        "chromatic blobs (a random colour mix, flat in space: colour without shape), as a trained network's first "
        "layer splits (Krizhevsky et al. 2012, Fig. 3), so a shape seen in one colour is the same feature in another.",
        "random",
    )
    head: Literal["text", "linear", "mlp"] = doc(
        "CLIP: how an image becomes an answer. text = match against 'a photo of a {answer}' (the paper's); linear "
        "or mlp = a classification head over the task's classes on CLIP's image features, trained (with LoRA on "
        "the vision tower when lora.enabled, else alone).",
        "text",
    )

    def validate(self) -> None:
        from raysweep.errors import did_you_mean
        from raysweep.models import list_families

        if self.family not in list_families():
            known = list_families()
            raise ConfigError("family", f"unknown family {self.family!r}. {did_you_mean(self.family, known)}Available: {', '.join(known)}.")
        for key in ("image_mean", "image_std"):
            values = getattr(self, key)
            if values and len(values) != 3:
                raise ConfigError(key, f"needs 3 values (R, G, B) or none, got {values}")
        if any(v <= 0 for v in self.image_std):
            raise ConfigError("image_std", f"values must be > 0, got {self.image_std}")
        if self.max_pixels and self.min_pixels > self.max_pixels:
            raise ConfigError("min_pixels", f"{self.min_pixels} exceeds max_pixels {self.max_pixels}")
        if self.tiny_patch and (self.image_size or 84) % self.tiny_patch:
            raise ConfigError("tiny_patch", f"{self.tiny_patch} does not divide image_size {self.image_size or 84}")
        if not 0 < self.tiny_init_range <= 1:
            raise ConfigError("tiny_init_range", f"must lie in (0, 1] (a standard deviation; Llama's is 0.02), got {self.tiny_init_range}")
        for key in ("image_size", "tiny_patch", "min_pixels", "max_pixels"):
            if getattr(self, key) < 0:
                raise ConfigError(key, f"must be >= 0, got {getattr(self, key)}")
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", self.device):
            raise ConfigError("device", f"{self.device!r} is not a torch device; use auto, cpu, cuda or cuda:N")
        if self.head != "text" and self.family != "clip":
            raise ConfigError("head", f"{self.head} is a head on CLIP's image features; it needs model.family=clip "
                                      f"(got {self.family}); leave model.head=text")  # fmt: skip
        for key, (default, families) in TINY_KEY_FAMILIES.items():
            value = getattr(self, key)
            if self.checkpoint == "tiny" and value != default and self.family not in families:
                raise ConfigError(key, f"the tiny {self.family} has no use for it (only {' and '.join(families)} read it); "
                                       f"leave it at {default}")  # fmt: skip
        for key in ("tiny_hidden", "tiny_layers", "tiny_heads", "tiny_vision_hidden", "tiny_vision_layers"):
            if getattr(self, key) < 1:  # 0 vision layers leave LLaVA-NeXT no hidden state to read; 0 heads divide by 0
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        if not 0 < self.tiny_vision_position_norm <= 100:
            raise ConfigError("tiny_vision_position_norm", f"must lie in (0, 100], got {self.tiny_vision_position_norm}")
        if self.tiny_vision_position_norm != 1.0 and self.tiny_vision_position == "learned":
            raise ConfigError("tiny_vision_position_norm", "scales fixed codes; set model.tiny_vision_position=sincos or monotonic "
                                                           "(learned is CLIP's random init)")  # fmt: skip
        if self.tiny_vision_position in ("sincos", "monotonic") and self.tiny_vision_hidden % 4:
            raise ConfigError("tiny_vision_hidden", f"sincos positions need a multiple of 4, got {self.tiny_vision_hidden}")
        if self.tiny_hidden % self.tiny_heads:
            raise ConfigError("tiny_hidden", f"{self.tiny_hidden} is not divisible by tiny_heads {self.tiny_heads}")


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
    leniency: Literal["exact", "lenient"] = doc("Answer parser in generate mode (see raysweep/parsing.py).", "lenient")
    limit: int = doc("Evaluate at most this many rows (0 = all).", 0)
    replicas: int = doc(
        "Model replicas (Ray actors) that evaluate in parallel as Ray Data batch inference; 0 = what a finished run "
        "releases (train.num_workers, each with train.cpus_per_worker and a GPU with train.use_gpu) for the final "
        "evaluation, 1 for raysweep eval.",
        0,
    )
    replica_cpus: float = doc("CPUs per replica of raysweep eval (the final evaluation uses train.cpus_per_worker).", 1.0)

    def validate(self) -> None:
        if self.replicas < 0:
            raise ConfigError("replicas", f"must be >= 0 (0 = automatic), got {self.replicas}")
        if self.replica_cpus <= 0:
            raise ConfigError("replica_cpus", f"must be > 0, got {self.replica_cpus}")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.limit < 0:
            raise ConfigError("limit", f"must be >= 0, got {self.limit}")
