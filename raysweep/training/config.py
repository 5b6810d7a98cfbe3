"""Config sections of the training layer (filled in by the training issue)."""

from __future__ import annotations

from dataclasses import dataclass

from raysweep._configlib import doc


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    lr: float = doc("AdamW learning rate.", 1e-5)
    epochs: int = doc("Maximum epochs.", 10)
    batch_size: int = doc("Micro batch size per worker.", 1)
    seed: int = doc("Seed of data order and adapter init.", 42)
