"""Benchmark: does the tiny model learn relative position? Held-out accuracy along training, on CPU.

    python benchmarks/bench_relative_learns.py --steps 1200 --eval-every 200 --n 300 --adapter-out runs/relative-adapter

The recipe is configs/train-tiny-relative.yaml (model, LoRA, learning rate, warm-up, clipping, weight
decay), run in one process with one torch thread: batches of 32 drawn (seeded, without
replacement within a batch) from the relative training pool (relative_train.yaml, 1,296 scenes),
accuracy in ``choice`` mode on ``--n`` seeded scenes of the held-out test split (relative_test.yaml,
combinations never trained on), next to the split's target_cell_baseline. Writes
benchmarks/results/relative_learns.json and docs/figures/relative_learning_curve.png; with
``--adapter-out`` the trained adapter, for ``raysweep probe``. The report, the figure and the adapter
are rewritten after every evaluation. ``--tower-pretrain N [--tower-pool DATA]`` first pre-trains
the tower and projector on cell attributes (tower_pretrain.py); ``model.checkpoint=DIR`` starts from
a pre-trained tiny base (pretrain_tiny_base.py) instead of the random one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from raysweep.config import load_config
from raysweep.evaluate import evaluate_rows
from raysweep.training.data import SyntheticRows, limit_rows, train_val_sources
from raysweep.training.engine import WorkerTrainer

REPO = Path(__file__).resolve().parents[1]


def plot(curve: list[dict], baseline: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=120)
    ax.plot([p["step"] for p in curve], [p["acc"] for p in curve], marker="o", label="tiny LLaVA-NeXT, held-out test")
    ax.axhline(baseline, color="tab:orange", linestyle="--", linewidth=1, label=f"target-cell baseline {baseline:.0%}")
    return save_accuracy_figure(fig, ax, "relative position on CPU: held-out accuracy while training", path, legend_size=8)


def save_accuracy_figure(fig, ax, title: str, path: Path, legend_size: int = 7) -> Path:
    """Chance (25%), the axes' labels, limits, title and legend of an accuracy-by-step plot; saved to ``path``."""
    import matplotlib.pyplot as plt

    ax.axhline(0.25, color="grey", linestyle=":", linewidth=1, label="chance 25%")
    ax.set_xlabel("optimizer steps (batch 32)")
    ax.set_ylabel("accuracy (choice)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=legend_size, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/train-tiny-relative.yaml"))
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--n", type=int, default=300, help="held-out test scenes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch draws")
    parser.add_argument("--adapter-out", default="", help="save the trained adapter here")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/relative_learns.json"))
    parser.add_argument("--tower-pretrain", type=int, default=0,
                        help="first pre-train the tower and projector this many steps on cell attributes (tower_pretrain.py)")
    parser.add_argument("--tower-pool", default="", help="data config of the tower pre-training scenes (default: the training pool)")
    parser.add_argument("--figure", default=str(REPO / "docs/figures/relative_learning_curve.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config, args.overrides)
    trainer = WorkerTrainer(cfg, total_steps=args.steps)  # train.lr_schedule=cosine ends at --steps
    train, _ = train_val_sources(cfg)
    test_set = load_config(str(REPO / cfg.train.eval_sets[0].config)).data
    held_out = limit_rows(SyntheticRows(test_set), args.n, 0)
    rows = held_out.rows(range(len(held_out)))
    rng = np.random.default_rng(args.seed)
    tower_log = []
    if args.tower_pretrain:
        from tower_pretrain import pretrain_tower

        pool_data = load_config(args.tower_pool).data if args.tower_pool else cfg.data
        tower_log = pretrain_tower(trainer.family, trainer.built, SyntheticRows(pool_data), list(pool_data.colors),
                                   list(pool_data.shapes), args.tower_pretrain, seed=args.seed)  # fmt: skip

    def evaluate(step: int, loss: float | None, seconds: float) -> dict:
        result = evaluate_rows(trainer.built, rows, "choice", 64)
        point = {"step": step, "loss": loss, "grounding_loss": trainer.last_grounding_loss and round(trainer.last_grounding_loss, 4),
                 "acc": round(result["acc"], 4), "train_seconds": round(seconds, 1),
                 "acc_by_relation": {k[4:]: round(v, 4) for k, v in result.items() if k.startswith("acc/")}}  # fmt: skip
        print(json.dumps(point), flush=True)
        return point | {"baseline": result["target_cell_baseline"]}

    baseline = None

    def write(curve: list[dict], steps_done: int) -> None:
        """The report so far (rewritten after every evaluation, so a stopped run keeps its curve)."""
        report = {"config": args.config, "overrides": args.overrides, "n_held_out": len(rows), "n_train_scenes": len(train),
                  "batch_size": args.batch_size, "seed": args.seed,
                  "tower_pretrain": args.tower_pretrain, "tower_pool": args.tower_pool, "tower_log": tower_log[-1:], "threads": 1, "steps": steps_done,
                  "trainable_params": trainer.built.trainable_params, "total_params": trainer.built.total_params,
                  "target_cell_baseline": round(baseline, 4), "curve": curve}  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        plot(curve, baseline, Path(args.figure))

    first = evaluate(0, None, 0.0)
    baseline = first.pop("baseline")
    curve = [first]
    write(curve, 0)
    trained, loss = 0.0, None
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        loss = trainer.train_step(trainer.prepare(train.rows(rng.choice(len(train), args.batch_size, replace=False))))
        trained += time.perf_counter() - started
        if step % args.eval_every == 0 or step == args.steps:
            point = evaluate(step, round(loss, 4), trained)
            point.pop("baseline")
            curve.append(point)
            write(curve, step)
            if args.adapter_out:
                trainer.family.save_adapter(trainer.built, args.adapter_out)
    print(json.dumps(json.loads(Path(args.out).read_text()) | {"curve": len(curve)}, indent=2))


if __name__ == "__main__":
    main()
