"""The training loop of one data-parallel rank, without Ray.

Every epoch: this rank's batches -> train steps -> validation -> early stopping -> a checkpoint
handed to the callbacks' ``report``. Whoever runs the loop supplies the batches, the validation and
the callbacks: the Ray launcher (:mod:`raysweep.launch.train`) plugs in Ray Train's dataset shard,
``report`` and checkpoints; tests and benchmarks drive the same loop in one process. Callbacks
also get hooks at named moments (see :class:`LoopCallback`), where tests inject faults.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from raysweep.training.engine import TrainState


@dataclass
class LoopContext:
    """Where the loop is; every hook receives it."""

    rank: int
    world_size: int
    epochs: int  # the run's maximum
    state: TrainState  # epochs and steps completed, early-stopping record, history
    epoch: int = 0  # the epoch in progress, from 1
    step: int = 0  # micro batches done in this epoch
    batch_wait_s: float = 0.0  # seconds the last step waited for its batch (the data_wait_frac numerator's share)
    step_s: float = 0.0  # seconds of the last train step itself


class LoopCallback:
    """What the loop calls; override what you need (each method here does nothing).

    Every epoch, in this order: ``on_epoch_start``; ``on_step_end`` after each micro batch;
    ``on_validation_end`` with the epoch's metrics (validation, early stopping and the train/ metrics
    are all in); ``report`` with those metrics and the epoch's checkpoint folder; ``on_checkpoint``
    once every report has returned; ``on_epoch_end``. Then ``on_train_end`` once. An exception in a
    hook ends the loop with that exception.
    """

    def on_epoch_start(self, ctx: LoopContext) -> None:
        """Before the epoch's first batch is asked for."""

    def on_step_end(self, ctx: LoopContext, loss: float) -> None:
        """After each micro batch's train step (``ctx.step`` counts them in this epoch)."""

    def on_validation_end(self, ctx: LoopContext, metrics: dict) -> None:
        """After validation and the early-stopping decision (``metrics["early_stopped"]``)."""

    def report(self, ctx: LoopContext, metrics: dict, checkpoint: Path | None) -> None:
        """Record the epoch: ``checkpoint`` is a folder deleted after every report returns (None: none this epoch)."""

    def on_checkpoint(self, ctx: LoopContext, checkpoint: Path) -> None:
        """After every report of an epoch that wrote a checkpoint (the folder still exists)."""

    def on_epoch_end(self, ctx: LoopContext, metrics: dict, stop: bool) -> None:
        """Last thing of the epoch; ``stop`` when early stopping ends the run here."""

    def on_train_end(self, ctx: LoopContext) -> None:
        """After the last epoch (or the early stop)."""


def improved(value: float, best: float | None, metric: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (lower for losses, higher otherwise)."""
    if best is None:
        return True
    return value < best - min_delta if metric.endswith("loss") else value > best + min_delta


def run_epochs(trainer, train_cfg, batches: Callable[[int], Iterable[dict]], validate: Callable[[], dict] | None,
               state: TrainState | None = None, callbacks: Sequence[LoopCallback] = (), *, rank: int = 0,
               world_size: int = 1, checkpoint_every: int = 1) -> TrainState:  # fmt: skip
    """Train from ``state`` (a resumed run's, or the start) to ``train_cfg.epochs`` or an early stop.

    Args:
        trainer: a :class:`~raysweep.training.engine.WorkerTrainer` (``train_step``, ``save``, ``scheduler``).
        train_cfg: the run's TrainConfig (epochs, batch_size, patience, min_delta, early_stop_metric).
        batches: epoch (from 0) -> this rank's ready (collated) batches of that epoch, taken lazily;
            the seconds spent waiting for each are ``train/data_wait_frac``'s numerator.
        validate: () -> the epoch's validation metrics (``val/...``); None: no validation and no
            early stopping.
        state: where to continue from (a checkpoint's TrainState); default the start.
        callbacks: reports and hooks, called in order.
        rank, world_size: this rank in the data-parallel group (rows/s counts all ranks).
        checkpoint_every: write a checkpoint every this many epochs, and at the last or stopping
            epoch (0: never).

    Returns:
        The final TrainState (its history holds every epoch's metrics but ``val/pred*``).
    """
    state = state or TrainState()
    ctx = LoopContext(rank, world_size, train_cfg.epochs, state)
    for epoch in range(state.epoch, train_cfg.epochs):
        ctx.epoch, ctx.step = epoch + 1, 0
        _emit(callbacks, "on_epoch_start", ctx)
        losses, grounding, waited, seconds = _train_phase(trainer, batches(epoch), ctx, callbacks)
        metrics = {
            "epoch": epoch + 1,
            "train/loss": sum(losses) / len(losses),
            **({"train/grounding_loss": sum(grounding) / len(grounding)} if grounding else {}),  # train.grounding_weight
            "train/rows_per_s": len(losses) * train_cfg.batch_size * world_size / seconds,
            "train/data_wait_frac": waited / seconds,
            "train/lr": float(trainer.scheduler.get_last_lr()[0]),
        }
        stop = False
        if validate is not None:
            val = validate()
            metrics.update(val)
            stop = _early_stopping(state, val[train_cfg.early_stop_metric], epoch + 1, train_cfg)
        metrics.update(best_epoch=state.best_epoch, early_stopped=int(stop))
        state.epoch = epoch + 1
        state.history.append({k: v for k, v in metrics.items() if not k.startswith("val/pred")})
        _emit(callbacks, "on_validation_end", ctx, metrics)
        last = stop or epoch + 1 == train_cfg.epochs
        if checkpoint_every and ((epoch + 1) % checkpoint_every == 0 or last):
            with tempfile.TemporaryDirectory() as directory:
                trainer.save(Path(directory), state)
                _emit(callbacks, "report", ctx, metrics, Path(directory))
                _emit(callbacks, "on_checkpoint", ctx, Path(directory))
        else:
            _emit(callbacks, "report", ctx, metrics, None)
        _emit(callbacks, "on_epoch_end", ctx, metrics, stop)
        if stop:
            break
    _emit(callbacks, "on_train_end", ctx)
    return state


def _train_phase(trainer, batches: Iterable[dict], ctx: LoopContext, callbacks) -> tuple[list[float], list[float], float, float]:
    """Train steps over ``batches``: (answer losses, grounding losses (``train.grounding_weight``; else
    empty), seconds waiting for batches, seconds of the whole phase)."""
    losses, grounding, waited = [], [], 0.0
    started = time.perf_counter()
    iterator = iter(batches)
    while True:
        asked = time.perf_counter()
        batch = next(iterator, None)
        waited += time.perf_counter() - asked
        if batch is None:
            break
        stepped = time.perf_counter()
        losses.append(trainer.train_step(batch))
        if getattr(trainer, "last_grounding_loss", None) is not None:
            grounding.append(trainer.last_grounding_loss)
        ctx.batch_wait_s, ctx.step_s = stepped - asked, time.perf_counter() - stepped
        ctx.step += 1
        ctx.state.step += 1
        _emit(callbacks, "on_step_end", ctx, losses[-1])
    return losses, grounding, waited, time.perf_counter() - started


def _early_stopping(state: TrainState, value: float, epoch: int, train_cfg) -> bool:
    """Record ``value`` of the watched metric; True when ``patience`` epochs passed without improvement."""
    if improved(value, state.best, train_cfg.early_stop_metric, train_cfg.min_delta):
        state.best, state.best_epoch, state.bad_epochs = value, epoch, 0
    else:
        state.bad_epochs += 1
    return bool(train_cfg.patience) and state.bad_epochs >= train_cfg.patience


def _emit(callbacks: Sequence[LoopCallback], hook: str, *args) -> None:
    for callback in callbacks:
        getattr(callback, hook)(*args)


def load_callback(path: str, kwargs: dict | None = None) -> LoopCallback:
    """An instance of the class at ``package.module:Class`` built with ``kwargs``.

    How a callback reaches a process that only receives configuration (a Ray Train worker): the
    tests' fault hooks travel this way, as ``(path, kwargs)`` pairs.
    """
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)(**(kwargs or {}))


class ConsoleProgress(LoopCallback):
    """A progress bar per epoch and one line per epoch on stdout (give it to rank 0 only).

    Also prints when this process's first step is done (benchmarks read the time to it).
    """

    def __init__(self, steps_per_epoch: int, batch_size: int, log_every: int = 10):
        self.steps_per_epoch, self.batch_size, self.log_every = steps_per_epoch, batch_size, log_every
        self.bar, self.losses, self.started, self.first_done = None, [], 0.0, False

    def on_epoch_start(self, ctx: LoopContext) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {ctx.epoch}/{ctx.epochs}", file=sys.stdout,
                        mininterval=5.0, dynamic_ncols=False, ncols=100)  # fmt: skip
        self.losses, self.started = [], time.perf_counter()

    def on_step_end(self, ctx: LoopContext, loss: float) -> None:
        self.losses.append(loss)
        if not self.first_done:
            print(f"first step done at unix time {time.time():.3f}", flush=True)
            self.first_done = True
        self.bar.update(1)
        if len(self.losses) % self.log_every == 0:
            rate = len(self.losses) * self.batch_size * ctx.world_size / (time.perf_counter() - self.started)
            self.bar.set_postfix(loss=f"{sum(self.losses[-self.log_every:]) / self.log_every:.3f}", rows_s=f"{rate:.0f}")

    def on_validation_end(self, ctx: LoopContext, metrics: dict) -> None:
        self.bar.close()
        val = "".join(f"  {k} {metrics[k]:{f}}" for k, f in (("val/loss", ".4f"), ("val/acc", ".1%")) if k in metrics)
        print(f"epoch {ctx.epoch}: train/loss {metrics['train/loss']:.4f}{val}  ({metrics['train/rows_per_s']:.1f} rows/s, "
              f"data wait {metrics['train/data_wait_frac']:.0%})" + ("  -> early stop" if metrics["early_stopped"] else ""),
              flush=True)  # fmt: skip
