"""The training input: Ray Data's pipeline against the in-worker loader, and Ray Train against the plain loop.

    python benchmarks/bench_train_loop.py [--runs 5] [--steps 60] [--batch 16] [--deepspeed]

Every run is the training loop (raysweep.training.loop.run_epochs) on the same tiny LLaVA-NeXT with
LoRA, batch 16, one torch thread, two epochs, validation on 27 rows and a checkpoint every epoch:

- ``plain``: the loop in this process, no Ray (rows rendered and collated in the loop);
- ``worker``: `raysweep train` with 1 Train worker of 1 CPU, ``train.data_loader=worker``;
- ``ray_data``: the same with ``train.data_loader=ray_data`` (the pipeline's tasks on the other core).

The Ray runs share one local Ray (2 CPUs) and alternate, ``--runs`` times each. A loop callback on
rank 0 times every step's wait for its batch and the step itself. Reported per run, from epoch 2:
steady state (the epoch's first 5 batches excluded) ``data_wait_frac`` and rows/s; the whole
epoch's ``train/data_wait_frac`` and ``train/rows_per_s`` as logged (the pipeline's start
included); the median step without its wait. Medians over the runs; ratios within each pair.
Targets (issue 10): ray_data steady-state wait <= 0.10 and rows/s >= 1.25x worker; Ray Train's step
without waits <= 1.10x the plain loop's. ``--deepspeed`` adds 2 workers with ZeRO-2 (worker loader).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raysweep.training.loop import LoopCallback  # noqa: E402

COMMON = ["data.split=train", "train.val_limit=27", "train.eval_sets=[]", "train.patience=0", "train.warmup_steps=10",
          "train.epochs=2", "train.threads=1"]  # fmt: skip
WARM = 5  # batches of an epoch left out of the steady state


class StepLog(LoopCallback):
    """Every step's (seconds waiting for its batch, seconds of the step) per epoch, written to ``path`` as JSON at the end."""

    def __init__(self, path: str | None = None):
        self.path, self.epochs, self.metrics = path, [], []

    def on_epoch_start(self, ctx) -> None:
        self.epochs.append([])

    def on_step_end(self, ctx, loss: float) -> None:
        self.epochs[-1].append((ctx.batch_wait_s, ctx.step_s))

    def report(self, ctx, metrics: dict, checkpoint) -> None:
        self.metrics.append({k: v for k, v in metrics.items() if k.startswith("train/")})

    def on_train_end(self, ctx) -> None:
        if self.path and ctx.rank == 0:
            Path(self.path).write_text(json.dumps({"steps": self.epochs, "metrics": self.metrics}))


def summarise(log: dict, batch: int) -> dict:
    """Epoch 2 of a StepLog: steady-state and whole-epoch numbers."""
    steps, metrics = log["steps"][-1], log["metrics"][-1]
    steady = steps[WARM:]
    waited, total = sum(w for w, _ in steady), sum(w + s for w, s in steady)
    return {
        "steady_data_wait_frac": waited / total,
        "steady_rows_per_s": batch * len(steady) / total,
        "epoch_data_wait_frac": metrics["train/data_wait_frac"],
        "epoch_rows_per_s": metrics["train/rows_per_s"],
        "step_s_without_wait": statistics.median(s for _, s in steady),
    }


def plain_loop(steps: int, batch: int) -> dict:
    """The loop in this process, no Ray: the Ray runs' config, data, validation and checkpoints."""
    import torch

    from raysweep.config import load_config
    from raysweep.training.data import epoch_batches, limit_rows, train_val_sources
    from raysweep.training.engine import WorkerTrainer
    from raysweep.training.loop import run_epochs

    torch.set_num_threads(1)
    cfg = load_config(REPO / "configs/train-tiny.yaml", COMMON + [f"train.batch_size={batch}", f"train.steps_per_epoch={steps}"])
    trainer = WorkerTrainer(cfg)
    train, val = train_val_sources(cfg)
    val = limit_rows(val, cfg.train.val_limit, cfg.train.seed)

    def batches(epoch: int):
        return (trainer.prepare(train.rows(p)) for p in epoch_batches(len(train), epoch, cfg.train.seed, 0, 1, steps, batch))

    log = StepLog()
    run_epochs(trainer, cfg.train, batches, lambda: trainer.validate(val, cfg.eval.batch_size), callbacks=[log])
    return summarise({"steps": log.epochs, "metrics": log.metrics}, batch)


def ray_run(loader: str, steps: int, batch: int, tmp: Path, tag: str, workers: int = 1, extra: tuple = ()) -> dict:
    """One `raysweep train` run on the shared local Ray; epoch 2's numbers."""
    from raysweep.config import load_config
    from raysweep.launch.train import run_training

    out = tmp / f"{tag}.json"
    cfg = load_config(REPO / "configs/train-tiny.yaml", COMMON + [
        f"train.batch_size={batch}", f"train.steps_per_epoch={steps}", f"train.num_workers={workers}", "train.cpus_per_worker=1",
        f"train.data_loader={loader}", f"train.storage_path={tmp}/runs", f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
        f"train.name={tag}", *extra])  # fmt: skip
    started = time.time()
    run_training(cfg, quiet=True, loop_callbacks=[("benchmarks.bench_train_loop:StepLog", {"path": str(out)})])
    result = summarise(json.loads(out.read_text()), batch * workers)
    result["run_s"] = time.time() - started
    return result


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--deepspeed", action="store_true", help="also 2 workers with DeepSpeed ZeRO-2")
    args = parser.parse_args()
    import os

    import ray

    os.chdir(REPO)  # Ray Train workers import benchmarks.bench_train_loop from the driver's working directory
    plain = [plain_loop(args.steps, args.batch) for _ in range(2)]
    from raysweep.launch.train import local_ray_options

    ray.init(num_cpus=2, log_to_driver=False, **local_ray_options())
    runs: dict[str, list[dict]] = {"worker": [], "ray_data": []}
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for loader in ("worker", "ray_data") if i % 2 == 0 else ("ray_data", "worker"):
                runs[loader].append(ray_run(loader, args.steps, args.batch, Path(tmp), f"{loader}-{i}"))
                print(loader, i, json.dumps({k: round(v, 3) for k, v in runs[loader][-1].items()}), flush=True)
            ratios.append(runs["ray_data"][-1]["steady_rows_per_s"] / runs["worker"][-1]["steady_rows_per_s"])
        two = ray_run("worker", args.steps, args.batch, Path(tmp), "deepspeed", 2, ("train.strategy=deepspeed",)) if args.deepspeed else None
    results = {"plain": median_of(plain), "worker": median_of(runs["worker"]), "ray_data": median_of(runs["ray_data"]),
               "ray_data_over_worker_rows_per_s": statistics.median(ratios), "pair_ratios": ratios,
               "ray_step_over_plain": median_of(runs["worker"])["step_s_without_wait"] / median_of(plain)["step_s_without_wait"],
               "runs": runs, "steps": args.steps, "batch": args.batch, "deepspeed_2_workers": two}  # fmt: skip
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "train_loop.json").write_text(json.dumps(results, indent=2))
    print(f"\n| input (batch {args.batch}, {args.steps} steps, 1 thread, epoch 2, medians of {args.runs}) | steady wait | steady rows/s "
          f"| epoch wait | epoch rows/s | step without wait |\n|---|---|---|---|---|---|")  # fmt: skip
    for name, r in (("the loop without Ray, 1 process", results["plain"]), ("Ray Train, 1 worker, `worker` loader", results["worker"]),
                    ("Ray Train, 1 worker, `ray_data` loader", results["ray_data"])):  # fmt: skip
        print(f"| {name} | {r['steady_data_wait_frac']:.0%} | {r['steady_rows_per_s']:.1f} | {r['epoch_data_wait_frac']:.0%} "
              f"| {r['epoch_rows_per_s']:.1f} | {r['step_s_without_wait'] * 1000:.0f} ms |")  # fmt: skip
    print(f"\nray_data / worker steady rows/s, median of the {args.runs} pairs: {results['ray_data_over_worker_rows_per_s']:.2f}x "
          f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}); Ray Train step without waits / plain: {results['ray_step_over_plain']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
