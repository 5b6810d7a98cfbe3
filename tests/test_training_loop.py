"""The training loop without Ray: metrics, checkpoints, hooks, early stopping, data wait, resume."""

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from raysweep.training.engine import STATE_FILE, TrainState
from raysweep.training.loop import LoopCallback, improved, run_epochs
from tests.loop_faults import MOMENTS, FailOnce


class Recorder(LoopCallback):
    """Every hook call in order as (hook, epoch, step); every report's metrics; each reported checkpoint's files."""

    def __init__(self):
        self.calls, self.reports, self.checkpoints = [], [], []

    def note(self, hook, ctx):
        self.calls.append((hook, ctx.epoch, ctx.step))

    def on_epoch_start(self, ctx):
        self.note("on_epoch_start", ctx)

    def on_step_end(self, ctx, loss):
        self.note("on_step_end", ctx)

    def on_validation_end(self, ctx, metrics):
        self.note("on_validation_end", ctx)

    def report(self, ctx, metrics, checkpoint):
        self.note("report", ctx)
        self.reports.append(metrics)
        files = {p.relative_to(checkpoint).as_posix(): p.read_bytes() for p in checkpoint.rglob("*") if p.is_file()} if checkpoint else None
        self.checkpoints.append(files)

    def on_checkpoint(self, ctx, checkpoint):
        self.note("on_checkpoint", ctx)

    def on_epoch_end(self, ctx, metrics, stop):
        self.note("on_epoch_end", ctx)

    def on_train_end(self, ctx):
        self.note("on_train_end", ctx)


class SleepyTrainer:
    """A stand-in for WorkerTrainer: each step takes ``step_s``, saving takes ``save_s``."""

    def __init__(self, step_s=0.0, save_s=0.0):
        self.step_s, self.save_s, self.seen = step_s, save_s, []
        self.scheduler = SimpleNamespace(get_last_lr=lambda: [1e-3])

    def train_step(self, batch):
        time.sleep(self.step_s)
        self.seen.append(batch)
        return float(batch)

    def save(self, directory, state):
        time.sleep(self.save_s)
        (directory / STATE_FILE).write_text(json.dumps(state.__dict__))


def train_cfg(**kw):
    base = dict(epochs=3, batch_size=2, patience=0, min_delta=0.0, early_stop_metric="val/loss")
    return SimpleNamespace(**{**base, **kw})


def test_hooks_metrics_and_checkpoints_in_order():
    rec = Recorder()
    vals = iter([{"val/loss": 3.0, "val/acc": 0.5, "val/pred_frac/center": 1.0}, {"val/loss": 2.0, "val/acc": 0.6}])
    state = run_epochs(SleepyTrainer(), train_cfg(epochs=2), lambda epoch: [epoch, epoch + 1, epoch + 2], lambda: next(vals), callbacks=[rec])
    per_epoch = ["on_epoch_start", "on_step_end", "on_step_end", "on_step_end", "on_validation_end", "report", "on_checkpoint", "on_epoch_end"]
    assert [c[0] for c in rec.calls] == per_epoch * 2 + ["on_train_end"]
    assert [c[1:] for c in rec.calls[:5]] == [(1, 0), (1, 1), (1, 2), (1, 3), (1, 3)]
    first = rec.reports[0]
    assert list(first) == ["epoch", "train/loss", "train/rows_per_s", "train/data_wait_frac", "train/lr", "val/loss", "val/acc",
                           "val/pred_frac/center", "best_epoch", "early_stopped"]  # fmt: skip
    assert first["train/loss"] == 1.0 and first["epoch"] == 1 and rec.reports[1]["train/loss"] == 2.0
    assert (state.epoch, state.step, state.best, state.best_epoch) == (2, 6, 2.0, 2)
    assert "val/pred_frac/center" not in state.history[0] and len(state.history) == 2
    saved = json.loads(rec.checkpoints[0][STATE_FILE])  # the checkpoint holds the state after its epoch
    assert saved["epoch"] == 1 and len(saved["history"]) == 1


def test_early_stopping_and_checkpoint_cadence():
    rec = Recorder()
    vals = iter({"val/loss": v} for v in [1.0, 1.5, 0.9, 2.0])
    state = run_epochs(SleepyTrainer(), train_cfg(epochs=4, patience=2), lambda e: [0.5], lambda: next(vals),
                       callbacks=[rec], checkpoint_every=2)  # fmt: skip
    assert [r["early_stopped"] for r in rec.reports] == [0, 0, 0, 0] and state.bad_epochs == 1 and state.best_epoch == 3
    assert [c is not None for c in rec.checkpoints] == [False, True, False, True]  # every 2nd epoch and the last
    vals = iter({"val/loss": v} for v in [1.0, 1.5, 1.2, 0.1])
    rec = Recorder()
    state = run_epochs(SleepyTrainer(), train_cfg(epochs=4, patience=2), lambda e: [0.5], lambda: next(vals),
                       callbacks=[rec], checkpoint_every=2)  # fmt: skip
    assert [r["early_stopped"] for r in rec.reports] == [0, 0, 1] and state.epoch == 3 and rec.reports[-1]["best_epoch"] == 1
    assert rec.checkpoints[-1] is not None  # the stopping epoch is checkpointed
    assert rec.calls[-2][0] == "on_epoch_end" and rec.calls[-1][0] == "on_train_end"
    assert improved(1.0, None, "val/loss", 0.0)
    assert improved(0.9, 1.0, "val/loss", 0.0) and not improved(0.95, 1.0, "val/loss", 0.1)
    assert improved(0.6, 0.5, "val/acc", 0.0) and not improved(0.5, 0.5, "val/acc", 0.0)


def test_data_wait_excludes_validation_and_checkpointing():
    def slow_batches(epoch):
        for i in range(4):
            time.sleep(0.05)
            yield i

    def slow_validation():
        time.sleep(0.3)
        return {"val/loss": 1.0}

    rec = Recorder()
    run_epochs(SleepyTrainer(step_s=0.05, save_s=0.3), train_cfg(epochs=1), slow_batches, slow_validation, callbacks=[rec])
    metrics = rec.reports[0]
    assert 0.4 < metrics["train/data_wait_frac"] < 0.6  # half of the training phase, none of the 0.6 s after it
    assert 4 * 2 / 0.6 < metrics["train/rows_per_s"] < 4 * 2 / 0.4  # 4 steps of 2 rows in 0.4 s and a little


def test_no_validation_means_no_early_stopping():
    rec = Recorder()
    state = run_epochs(SleepyTrainer(), train_cfg(epochs=2, patience=1), lambda e: [1.0], None, callbacks=[rec])
    assert state.epoch == 2 and state.best is None and "val/loss" not in rec.reports[0]


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_hook_that_raises_stops_the_loop_at_that_moment(tmp_path, moment):
    rec = Recorder()
    epoch = 3 if moment == "on_train_end" else 2  # on_train_end comes once, after the last epoch
    fault = FailOnce(str(tmp_path / "marker"), moment=moment, epoch=epoch, step=2)
    with pytest.raises(RuntimeError, match=f"injected failure at {moment} of epoch {epoch}"):
        run_epochs(SleepyTrainer(), train_cfg(), lambda e: [1.0, 2.0, 3.0], lambda: {"val/loss": 1.0}, callbacks=[rec, fault])
    assert rec.calls[-1][:2] == (moment, epoch) and (tmp_path / "marker").exists()
    if moment == "on_step_end":
        assert rec.calls[-1][2] == 2
    run_epochs(SleepyTrainer(), train_cfg(), lambda e: [1.0], lambda: {"val/loss": 1.0}, callbacks=[fault])  # fired once only


def test_the_core_imports_without_ray():
    code = ("import sys, raysweep.training.loop, raysweep.training.engine, raysweep.training.data, "
            "raysweep.training.final_eval, raysweep.training.config; print('ray' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False"


# -- the real trainer on the tiny model ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    import torch

    from tests.test_training_engine import tiny_cfg
    from raysweep.training.data import limit_rows, train_val_sources

    torch.set_num_threads(1)
    cfg = tiny_cfg("train.epochs=3", "train.patience=0")
    train, val = train_val_sources(cfg)
    return cfg, train, limit_rows(val, 9, 0)


def run_tiny(cfg, train, val, callbacks=(), trainer=None, state=None):
    from raysweep.training.data import epoch_batches
    from raysweep.training.engine import WorkerTrainer

    trainer = trainer or WorkerTrainer(cfg)

    def batches(epoch):
        return (trainer.prepare(train.rows(p)) for p in epoch_batches(len(train), epoch, cfg.train.seed, 0, 1, 3, cfg.train.batch_size))

    return run_epochs(trainer, cfg.train, batches, lambda: trainer.validate(val, 9), state, list(callbacks))


def _killed_after_epoch_1(cfg, train, val, tmp_path):
    """A tiny run failed by a hook at the end of epoch 1: its recorder and epoch 1's checkpoint written to disk."""
    recorder = Recorder()
    with pytest.raises(RuntimeError, match="injected failure"):
        run_tiny(cfg, train, val, [recorder, FailOnce(str(tmp_path / "marker"), "on_epoch_end", epoch=1)])
    kept = tmp_path / "epoch-001"
    for name, data in recorder.checkpoints[0].items():
        (kept / name).parent.mkdir(parents=True, exist_ok=True)
        (kept / name).write_bytes(data)
    return recorder, kept


def test_tiny_loop_resumed_after_a_fault_matches_an_uninterrupted_run(tmp_path, tiny):
    """Killed after epoch 1's checkpoint, resumed from it: the same per-epoch losses as without the fault."""
    from raysweep.training.engine import WorkerTrainer

    cfg, train, val = tiny
    whole = Recorder()
    run_tiny(cfg, train, val, [whole])
    assert [r["epoch"] for r in whole.reports] == [1, 2, 3] and whole.reports[-1]["train/loss"] < whole.reports[0]["train/loss"]
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "torch_state.pt", STATE_FILE} <= set(whole.checkpoints[0])

    first, kept = _killed_after_epoch_1(cfg, train, val, tmp_path)
    trainer = WorkerTrainer(cfg)
    state = trainer.load(kept)
    assert isinstance(state, TrainState) and state.epoch == 1
    rest = Recorder()
    final = run_tiny(cfg, train, val, [rest], trainer=trainer, state=state)
    resumed = first.reports + rest.reports
    for key in ("train/loss", "val/loss", "val/acc", "train/lr"):
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in whole.reports], rel=1e-6, abs=1e-9), key
    assert final.step == 9 and len(final.history) == 3
    fresh = Recorder()  # the same data from epoch 2 on, without the checkpoint's weights: other losses
    run_tiny(cfg, train, val, [fresh], state=TrainState(epoch=1, step=3))
    assert fresh.reports[0]["train/loss"] != pytest.approx(rest.reports[0]["train/loss"], rel=1e-3)


def test_a_checkpoint_of_another_base_is_refused_on_resume(tmp_path, tiny):
    """A run name reused with another model config: load_state_dict(strict=False) would take it silently."""
    from raysweep.errors import UserError
    from raysweep.training.engine import WorkerTrainer
    from tests.test_training_engine import tiny_cfg

    cfg, train, val = tiny
    _, kept = _killed_after_epoch_1(cfg, train, val, tmp_path)
    other = WorkerTrainer(tiny_cfg("train.epochs=3", "train.patience=0", "model.seed=3"))
    with pytest.raises(UserError, match="model.seed=0 but the base is model.seed=3"):
        other.load(kept)
    assert WorkerTrainer(cfg).load(kept).epoch == 1
