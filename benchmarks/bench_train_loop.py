"""Ray Train loop overhead: the training loop on Ray Train against the same loop in one process.

    python benchmarks/bench_train_loop.py [--steps 60] [--batch 16]

Both run the same loop (raysweep.training.loop.run_epochs) on the same tiny LLaVA-NeXT with LoRA,
batch size, data (scenes rendered in the loop, collate, forward, backward, AdamW step), validation
and checkpoints, two epochs, one CPU worker with one torch thread. The Ray number is `raysweep
train` with 1 worker; both report epoch 2's train/rows_per_s (data and compute, not validation) and
train/data_wait_frac. Also measured: seconds from the command's start to its first finished
training step, and the 2-worker DeepSpeed ZeRO-2 throughput. Target: Ray per-step <= 1.10x plain.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from raysweep.training.loop import LoopCallback

REPO = Path(__file__).resolve().parents[1]
COMMON = ["data.split=train", "train.val_limit=27", "train.eval_sets=[]", "train.patience=0", "train.warmup_steps=10"]


class StepClock(LoopCallback):
    """Seconds from one step's end to the next (the wait for a batch and the step) and each epoch's metrics."""

    def __init__(self):
        self.times, self.metrics, self.last = [], [], 0.0

    def on_epoch_start(self, ctx) -> None:
        self.times.append([])
        self.last = time.perf_counter()

    def on_step_end(self, ctx, loss: float) -> None:
        now = time.perf_counter()
        self.times[-1].append(now - self.last)
        self.last = now

    def report(self, ctx, metrics: dict, checkpoint) -> None:
        self.metrics.append(metrics)


def plain_loop(steps: int, batch: int) -> dict:
    """The training loop (run_epochs) in this process, no Ray: the Ray run's config, data, validation and checkpoints.

    Epoch 2 (warm) as for Ray: its rows/s and data wait, and the median step (data wait included)
    without its first 5 steps.
    """
    from raysweep.config import load_config
    from raysweep.training.data import epoch_batches, limit_rows, train_val_sources
    from raysweep.training.engine import WorkerTrainer
    from raysweep.training.loop import run_epochs

    cfg = load_config(REPO / "configs/train-tiny.yaml", COMMON + [f"train.batch_size={batch}", f"train.steps_per_epoch={steps}", "train.epochs=2"])
    trainer = WorkerTrainer(cfg)
    train, val = train_val_sources(cfg)
    val = limit_rows(val, cfg.train.val_limit, cfg.train.seed)

    def batches(epoch: int):
        return (trainer.prepare(train.rows(p)) for p in epoch_batches(len(train), epoch, cfg.train.seed, 0, 1, steps, batch))

    clock = StepClock()
    run_epochs(trainer, cfg.train, batches, lambda: trainer.validate(val, cfg.eval.batch_size), callbacks=[clock])
    warm = clock.metrics[-1]
    return {"seconds_per_step": statistics.median(clock.times[-1][5:]), "rows_per_s": warm["train/rows_per_s"],
            "data_wait_pct": round(100 * warm["train/data_wait_frac"])}  # fmt: skip


def ray_loop(steps: int, batch: int, workers: int, tmp: Path) -> dict:
    """Run `raysweep train`; per-step seconds from its reported rows/s, and time to first step."""
    args = [sys.executable, "-m", "raysweep.cli", "train", str(REPO / "configs/train-tiny.yaml"), *COMMON,
            f"train.batch_size={batch}", f"train.num_workers={workers}", f"train.steps_per_epoch={steps}", "train.epochs=2",
            f"train.storage_path={tmp}/runs", f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db", f"train.name=bench{workers}",
            "train.cpus_per_worker=1"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.time()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp)
    total = time.time() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(out[-3000:])
    first = float(re.search(r"first step done at unix time ([0-9.]+)", out).group(1))
    rates = [float(x) for x in re.findall(r"\(([0-9.]+) rows/s, data wait", out)]
    waits = [int(x) for x in re.findall(r"data wait ([0-9]+)%", out)]
    rate = rates[-1]  # epoch 2: warm
    return {"seconds_per_step": batch * workers / rate, "rows_per_s": rate,
            "time_to_first_step_s": first - start, "total_s": total, "data_wait_pct": waits[-1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    plain = plain_loop(args.steps, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        one = ray_loop(args.steps, args.batch, 1, Path(tmp))
        two = ray_loop(args.steps, args.batch, 2, Path(tmp))
    results = {
        "plain_loop": plain,
        "ray_1_worker": one,
        "ray_2_workers_deepspeed": two,
        "ray_over_plain": plain["rows_per_s"] / one["rows_per_s"],
    }
    print(json.dumps(results, indent=2))
    print(f"\n| loop (batch {args.batch}, 1 thread/worker, epoch 2) | s/step | rows/s | data wait |\n|---|---|---|---|")
    print(f"| the loop without Ray, 1 process | {args.batch / plain['rows_per_s']:.3f} | {plain['rows_per_s']:.1f} | {plain['data_wait_pct']}% |")
    print(f"| Ray Train, 1 worker | {one['seconds_per_step']:.3f} | {one['rows_per_s']:.1f} | {one['data_wait_pct']}% |")
    print(f"| Ray Train, 2 workers, DeepSpeed ZeRO-2 | {two['seconds_per_step']:.3f} (per worker step) | {two['rows_per_s']:.1f} | {two['data_wait_pct']}% |")
    print(f"\nRay / plain per step: {results['ray_over_plain']:.2f}x (median plain step without the first 5: "
          f"{plain['seconds_per_step']:.3f} s); command to first step: "
          f"{one['time_to_first_step_s']:.1f} s (1 worker), {two['time_to_first_step_s']:.1f} s (2 workers, DeepSpeed)")
    out = REPO / "benchmarks" / "results" / "train_loop.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
