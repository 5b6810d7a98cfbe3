"""The per-worker training step without Ray: data order, training through the loop, the DeepSpeed op cache.

Resume and early stopping are tested through the loop in tests/test_training_loop.py.
"""

from pathlib import Path

import numpy as np
import pytest

from raysweep.config import load_config
from raysweep.training.data import epoch_batches, limit_rows, steps_per_epoch, stratified_split, train_val_sources
from raysweep.training.loop import LoopCallback, run_epochs

SMALL = [
    "data.split=train",
    "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
    "data.sizes={large: 0.86}",
    "data.canvas_size=84",
    "model.tiny_layers=2",
    "train.lr=1e-3",
    "train.batch_size=4",
    "train.warmup_steps=3",
]


def tiny_cfg(*extra):
    return load_config("configs/models/tiny-llava-next.yaml", SMALL + list(extra))


def test_epoch_batches_fixed_steps_and_disjoint_ranks():
    world, steps, batch = 3, 5, 4
    per_rank = [epoch_batches(60, 2, 42, r, world, steps, batch) for r in range(world)]
    assert all(len(b) == steps and all(len(x) == batch for x in b) for b in per_rank)
    # one permutation dealt to ranks: every row exactly once in this epoch
    flat = [i for b in per_rank for x in b for i in x]
    assert sorted(flat) == list(range(60))
    assert epoch_batches(60, 2, 42, 1, world, steps, batch) == per_rank[1]
    assert epoch_batches(60, 3, 42, 1, world, steps, batch) != per_rank[1]
    # more steps than rows: the order wraps around, every rank still gets full batches
    many = epoch_batches(7, 0, 1, 0, 2, 6, 3)
    assert len(many) == 6 and all(0 <= i < 7 for x in many for i in x)
    assert steps_per_epoch(1296, 16, 2, 1) == 41 and steps_per_epoch(10, 16, 2, 1, fixed=7) == 7


def test_stratified_split_by_area():
    areas = np.repeat(np.arange(9), 20)
    train, val = stratified_split(areas, 0.2, seed=3)
    assert len(val) == 36 and set(np.bincount(areas[val])) == {4}
    assert set(train).isdisjoint(val) and len(train) + len(val) == 180


def test_train_val_sources_synthetic_and_limit():
    cfg = tiny_cfg()
    train, val = train_val_sources(cfg)
    assert len(train) + len(val) == 4 * 81 and len(val) == 63
    row = train.rows([0])[0]
    assert set(row) >= {"image", "prompt", "answer", "area"} and row["image"].size == (84, 84)
    assert len(limit_rows(val, 18, 0)) == 18


@pytest.fixture(scope="module")
def torch_single_thread():
    import torch

    torch.set_num_threads(1)


class StepLosses(LoopCallback):
    """Every step's loss and every epoch's metrics."""

    def __init__(self):
        self.losses, self.metrics = [], []

    def on_step_end(self, ctx, loss):
        self.losses.append(loss)

    def report(self, ctx, metrics, checkpoint):
        self.metrics.append(metrics)


def test_loss_falls_and_validation_reports_metrics(torch_single_thread):
    from raysweep.training.engine import WorkerTrainer

    cfg = tiny_cfg("train.epochs=1")
    train, val = train_val_sources(cfg)
    val = limit_rows(val, 18, 0)
    trainer = WorkerTrainer(cfg)
    seen = StepLosses()
    batches = lambda epoch: (trainer.prepare(train.rows(b)) for b in epoch_batches(len(train), epoch, 42, 0, 1, 12, 4))  # noqa: E731
    run_epochs(trainer, cfg.train, batches, lambda: trainer.validate(val, batch_size=9), callbacks=[seen], checkpoint_every=0)
    assert len(seen.losses) == 12 and np.mean(seen.losses[-3:]) < np.mean(seen.losses[:3])
    metrics = seen.metrics[0]
    assert {"val/loss", "val/acc", "val/acc/top_left", "val/pred_frac/center", "val/center_bias"} <= set(metrics)
    assert 0.0 <= metrics["val/acc"] <= 1.0 and metrics["train/loss"] == pytest.approx(np.mean(seen.losses))


def test_extension_cache_is_per_environment_and_drops_stale_locks(tmp_path, monkeypatch):
    import os
    import time

    from raysweep.training import engine

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    (tmp_path / "op").mkdir()
    (tmp_path / "fresh").mkdir()
    stale, fresh = tmp_path / "op" / "lock", tmp_path / "fresh" / "lock"
    stale.write_text("")
    fresh.write_text("")
    old = time.time() - engine.STALE_LOCK_S - 5
    os.utime(stale, (old, old))
    assert engine.prepare_extension_cache() == tmp_path
    assert not stale.exists() and fresh.exists()
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    import sys

    assert engine.prepare_extension_cache() == Path(sys.prefix) / "torch_extensions"


def test_lr_schedule_warms_up_then_stays_or_decays_by_cosine(torch_single_thread):
    """train.lr_schedule: constant keeps train.lr after the warm-up; cosine reaches half at the middle
    of the post-warm-up steps and 0 at the run's last step; the trainer's optimizer follows it."""
    from raysweep.errors import ConfigError
    from raysweep.training.engine import WorkerTrainer, lr_factor

    assert [lr_factor(s, 4) for s in (0, 1, 3, 4, 100)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert [lr_factor(s, 0, "cosine", 10) for s in (0, 5, 10, 12)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert lr_factor(1, 4, "cosine", 14) == 0.5 and lr_factor(9, 4, "cosine", 14) == pytest.approx(0.5)
    trainer = WorkerTrainer(tiny_cfg("train.lr_schedule=cosine", "train.epochs=2", "train.steps_per_epoch=4", "train.warmup_steps=2"))
    lrs = []
    for _ in range(8):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert lrs == pytest.approx([1e-3 * f for f in (0.5, 1.0, 1.0, 0.9330127, 0.75, 0.5, 0.25, 0.0669873)])
    with pytest.raises(ConfigError, match="train.lr_schedule: cosine needs the run's length"):
        WorkerTrainer(tiny_cfg("train.lr_schedule=cosine", "train.steps_per_epoch=0"))
