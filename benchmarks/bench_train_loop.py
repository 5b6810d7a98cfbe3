"""Ray Train loop overhead: per-step time against a plain single-process PyTorch loop.

    python benchmarks/bench_train_loop.py [--steps 60] [--batch 16]

Both loops run the same tiny LLaVA-NeXT with LoRA, the same batch size and data (scenes rendered
in the loop, collate, forward, backward, AdamW step) on one CPU worker with one torch thread. The
Ray number is `raysweep train` with 1 worker (its own per-epoch rows/s, which counts data and
compute but not validation). Also measured: seconds from the command's start to its first finished
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

REPO = Path(__file__).resolve().parents[1]
COMMON = ["data.split=train", "train.val_limit=27", "train.eval_sets=[]", "train.patience=0", "train.warmup_steps=10"]


def plain_loop(steps: int, batch: int) -> float:
    """Median seconds per step of WorkerTrainer in this process."""
    from raysweep.config import load_config
    from raysweep.training.data import epoch_batches, train_val_sources
    from raysweep.training.engine import WorkerTrainer

    cfg = load_config(REPO / "configs/train-tiny.yaml", COMMON + [f"train.batch_size={batch}"])
    trainer = WorkerTrainer(cfg)
    train, _ = train_val_sources(cfg)
    times = []
    for positions in epoch_batches(len(train), 0, 42, 0, 1, steps, batch):
        t0 = time.perf_counter()
        trainer.train_step(trainer.prepare(train.rows(positions)))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[5:])


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
        "plain_seconds_per_step": plain,
        "ray_1_worker": one,
        "ray_2_workers_deepspeed": two,
        "ray_over_plain": one["seconds_per_step"] / plain,
    }
    print(json.dumps(results, indent=2))
    print(f"\n| loop (batch {args.batch}, 1 thread/worker) | s/step | rows/s |\n|---|---|---|")
    print(f"| plain PyTorch, 1 process | {plain:.3f} | {args.batch / plain:.1f} |")
    print(f"| Ray Train, 1 worker | {one['seconds_per_step']:.3f} | {one['rows_per_s']:.1f} |")
    print(f"| Ray Train, 2 workers, DeepSpeed ZeRO-2 | {two['seconds_per_step']:.3f} (per worker step) | {two['rows_per_s']:.1f} |")
    print(f"\nRay / plain per step: {results['ray_over_plain']:.2f}x; command to first step: "
          f"{one['time_to_first_step_s']:.1f} s (1 worker), {two['time_to_first_step_s']:.1f} s (2 workers, DeepSpeed)")
    out = REPO / "benchmarks" / "results" / "train_loop.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
