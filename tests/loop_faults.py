"""Fault injection at the training loop's hooks, for tests only.

A Ray Train worker builds these from ``("tests.loop_faults:FailOnce", kwargs)`` pairs given to
``run_training(loop_callbacks=...)`` (Ray puts the driver's working directory, the repo root, on
the workers' path); in one process, pass an instance to ``run_epochs`` directly.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from raysweep.training.loop import LoopCallback

MOMENTS = ("on_epoch_start", "on_step_end", "on_validation_end", "on_checkpoint", "on_epoch_end", "on_train_end")


class FailOnce(LoopCallback):
    """At ``moment`` of ``epoch`` (and ``step``, for on_step_end) on ``rank``: raise, or send ``signal_name`` to ``pid``.

    ``marker`` is a file written when the fault fires: while it exists nothing fires again, so a
    run restarted from its checkpoint goes on.
    """

    def __init__(self, marker: str, moment: str = "on_epoch_end", epoch: int = 1, step: int = 1, rank: int = 0,
                 pid: int | None = None, signal_name: str = "SIGKILL"):  # fmt: skip
        if moment not in MOMENTS:
            raise ValueError(f"unknown moment {moment!r}; choose from {', '.join(MOMENTS)}")
        self.marker, self.moment, self.epoch, self.step, self.rank = Path(marker), moment, epoch, step, rank
        self.pid, self.signal_name = pid, signal_name

    def on_epoch_start(self, ctx):
        self.at("on_epoch_start", ctx)

    def on_step_end(self, ctx, loss):
        self.at("on_step_end", ctx)

    def on_validation_end(self, ctx, metrics):
        self.at("on_validation_end", ctx)

    def on_checkpoint(self, ctx, checkpoint):
        self.at("on_checkpoint", ctx)

    def on_epoch_end(self, ctx, metrics, stop):
        self.at("on_epoch_end", ctx)

    def on_train_end(self, ctx):
        self.at("on_train_end", ctx)

    def at(self, moment: str, ctx) -> None:
        """Fire if this is the moment (once: the marker file then exists)."""
        step_ok = moment != "on_step_end" or ctx.step == self.step
        if moment != self.moment or ctx.rank != self.rank or ctx.epoch != self.epoch or not step_ok or self.marker.exists():
            return
        self.marker.write_text(f"{moment} of epoch {ctx.epoch}, step {ctx.step}")
        if self.pid is not None:
            os.kill(self.pid, getattr(signal, self.signal_name))
        else:
            raise RuntimeError(f"injected failure at {moment} of epoch {ctx.epoch} (tests/loop_faults.py)")


class RecordServed(LoopCallback):
    """At each epoch's end, write the positions of the batches this rank was served by the ray_data
    input (``raysweep.launch.data.SERVED[epoch]``) to ``<folder>/epoch<E>-rank<R>.json``."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_epoch_end(self, ctx, metrics, stop):
        import json

        from raysweep.launch import data

        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"epoch{ctx.epoch}-rank{ctx.rank}.json").write_text(json.dumps(data.SERVED[ctx.epoch - 1]))


def kill_data_worker_once(stage: str, epoch: int, batch_id: int, marker: str, at_stage: str = "collate",
                          at_epoch: int = 0, at_batch: int = 1) -> None:  # fmt: skip
    """A ray_data stage hook (``run_training(data_hooks=...)``): the Ray Data worker process running
    ``at_stage`` for batch ``at_batch`` of epoch ``at_epoch`` (from 0) dies at once, the first time only."""
    if (stage, epoch, batch_id) != (at_stage, at_epoch, at_batch) or Path(marker).exists():
        return
    Path(marker).write_text(f"{stage} of epoch {epoch}, batch {batch_id}, pid {os.getpid()}")
    os._exit(1)


def bad_row(stage: str, epoch: int, batch_id: int, at: int = 0) -> None:
    """A ray_data stage hook: the collate stage of batch ``at`` raises the UserError a bad row would."""
    from raysweep.errors import UserError

    if stage == "collate" and batch_id == at:
        raise UserError("synthetic scenes: row 99: injected bad row; remove it")
