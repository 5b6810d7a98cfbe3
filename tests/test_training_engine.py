"""The per-worker training step without Ray: data order, resume, early-stopping rule."""

from pathlib import Path

import numpy as np
import pytest

from raysweep.config import load_config
from raysweep.training.data import epoch_batches, limit_rows, steps_per_epoch, stratified_split, train_val_sources

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


def _run(trainer, train, epoch, steps, batch):
    return [trainer.train_step(trainer.prepare(train.rows(b))) for b in epoch_batches(len(train), epoch, 42, 0, 1, steps, batch)]


def test_resume_gives_the_same_next_step_loss(tmp_path, torch_single_thread):
    from raysweep.training.engine import TrainState, WorkerTrainer

    cfg = tiny_cfg()
    train, _ = train_val_sources(cfg)
    uninterrupted = WorkerTrainer(cfg)
    first = _run(uninterrupted, train, 0, 4, 4)
    second = _run(uninterrupted, train, 1, 2, 4)

    interrupted = WorkerTrainer(cfg)
    assert _run(interrupted, train, 0, 4, 4) == pytest.approx(first, rel=1e-6)
    interrupted.save(tmp_path, TrainState(epoch=1, step=4, best=1.0))
    del interrupted
    resumed = WorkerTrainer(cfg)
    state = resumed.load(tmp_path)
    assert (state.epoch, state.step, state.best) == (1, 4, 1.0)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    again = _run(resumed, train, 1, 2, 4)
    assert again == pytest.approx(second, rel=1e-5)
    # a fresh model (no resume) would not give that loss
    fresh = WorkerTrainer(cfg)
    assert _run(fresh, train, 1, 1, 4)[0] != pytest.approx(second[0], rel=1e-3)


def test_loss_falls_and_validation_reports_metrics(torch_single_thread):
    from raysweep.training.engine import WorkerTrainer

    cfg = tiny_cfg()
    train, val = train_val_sources(cfg)
    trainer = WorkerTrainer(cfg)
    losses = _run(trainer, train, 0, 12, 4)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    metrics = trainer.validate(limit_rows(val, 18, 0), batch_size=9)
    assert {"val/loss", "val/acc", "val/acc/top_left", "val/pred_frac/center", "val/center_bias"} <= set(metrics)
    assert 0.0 <= metrics["val/acc"] <= 1.0


def test_better_rule():
    from raysweep.launch.train import _better

    assert _better(1.0, None, "val/loss", 0.0)
    assert _better(0.9, 1.0, "val/loss", 0.0) and not _better(0.95, 1.0, "val/loss", 0.1)
    assert _better(0.6, 0.5, "val/acc", 0.0) and not _better(0.5, 0.5, "val/acc", 0.0)


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
