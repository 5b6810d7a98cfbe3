"""The tiny-model LoRA recipe the README's "Does the tiny model learn?" numbers use (benchmarks only).

AdamW (weight decay 0.01) with a linear warm-up, gradient norm clipped at 1, batches sampled from
synthetic scenes that are never evaluated, trained by the training loop itself
(:func:`raysweep.training.loop.run_epochs` over a :class:`~raysweep.training.engine.WorkerTrainer`).
Shared by bench_tiny_learns.py and bench_predict_modes.py.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from raysweep.config import load_config
from raysweep.models._rows import synthetic_rows
from raysweep.training.engine import WorkerTrainer
from raysweep.training.loop import LoopCallback, run_epochs


def held_out_and_train(n_held_out: int, pool: int = 1200) -> tuple[list[dict], list[dict]]:
    """``n_held_out`` evaluation scenes and the training scenes of ``pool`` that are not among them."""
    held_out = synthetic_rows(n_held_out, offset=3)
    held_ids = {r["scene_id"] for r in held_out}
    return held_out, [r for r in synthetic_rows(pool) if r["scene_id"] not in held_ids]


def lora_trainer(config: str, overrides: list[str], lr: float, warmup: int) -> WorkerTrainer:
    """The config's model with its LoRA adapter (base frozen) and the recipe's optimiser."""
    recipe = [f"train.lr={lr}", f"train.warmup_steps={warmup}", "train.weight_decay=0.01", "train.clip=1.0", "train.grad_accum=1"]
    return WorkerTrainer(load_config(config, [*overrides, *recipe]))


class EpochReports(LoopCallback):
    """Each epoch's metrics, with its step count (``steps``) and its last step's loss (``last_step_loss``)."""

    def __init__(self):
        self.metrics, self.last_loss = [], float("nan")

    def on_step_end(self, ctx, loss: float) -> None:
        self.last_loss = loss

    def report(self, ctx, metrics: dict, checkpoint) -> None:
        self.metrics.append({**metrics, "steps": ctx.step, "last_step_loss": self.last_loss})


def train_steps(trainer: WorkerTrainer, rows: list[dict], steps: int, batch_size: int, seed: int,
                evaluate=None, every: int = 0) -> list[dict]:  # fmt: skip
    """``steps`` train steps on batches drawn from ``rows`` (``random.Random(seed)``) by the training loop.

    An epoch of the loop is ``every`` steps (0: all of them); ``evaluate`` () -> ``{"val/acc": ...}``
    runs after each. Returns each epoch's metrics (:class:`EpochReports`); no checkpoints.
    """
    per_epoch = every or steps
    train_cfg = replace(trainer.cfg.train, epochs=math.ceil(steps / per_epoch), batch_size=batch_size, patience=0,
                        early_stop_metric="val/acc")  # fmt: skip
    rng = random.Random(seed)

    def batches(epoch: int):
        for _ in range(min(per_epoch, steps - epoch * per_epoch)):
            yield trainer.prepare(rng.sample(rows, batch_size))

    reports = EpochReports()
    run_epochs(trainer, train_cfg, batches, evaluate, callbacks=[reports], checkpoint_every=0)
    return reports.metrics


def train_seconds(metrics: list[dict], batch_size: int) -> float:
    """Seconds of the epochs' training phases (sampling, collate and steps; no evaluation)."""
    return sum(m["steps"] * batch_size / m["train/rows_per_s"] for m in metrics)
