"""Benchmark: does a tiny model learn the task? Held-out accuracy before and after LoRA training.

    python benchmarks/bench_tiny_learns.py --config configs/models/tiny-qwen2-vl.yaml --steps 500 --eval-every 100
    python benchmarks/bench_tiny_learns.py --config configs/models/tiny-llava-next.yaml --steps 200

The README's recipe (benchmarks/_tiny_training.py, run by the training loop): the tiny model's LoRA
adapter (the config's ``lora`` section; base frozen at random init from ``model.seed``), AdamW lr
1e-3 with a 100-step linear warm-up, batch 32 drawn from synthetic scenes that are never evaluated,
gradient norm clipped at 1, one torch thread, seeded.
Accuracy is ``choice`` mode on ``--n`` held-out scenes. ``key=value`` arguments override the config
(e.g. ``lora.rank=64``). Writes benchmarks/results/tiny_learns_<family>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _tiny_training import held_out_and_train, lora_trainer, train_seconds, train_steps

from raysweep.evaluate import evaluate_rows


def accuracy(built, rows, batch_size: int) -> float:
    return evaluate_rows(built, rows, "choice", batch_size, 1)["acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/models/tiny-qwen2-vl.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n", type=int, default=144, help="held-out scenes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=0, help="also record held-out accuracy every N steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch order and the LoRA init")
    parser.add_argument("--out", default="", help="default: benchmarks/results/tiny_learns_<family>.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trainer = lora_trainer(args.config, [*args.overrides, f"train.seed={args.seed}"], args.lr, args.warmup)
    cfg, built = trainer.cfg, trainer.built
    held_out, train = held_out_and_train(args.n)
    report = {
        "config": args.config, "overrides": args.overrides, "family": cfg.model.family, "n_held_out": args.n,
        "n_train_scenes": len(train), "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup,
        "seed": args.seed, "threads": torch.get_num_threads(),
        "trainable_params": built.trainable_params, "total_params": built.total_params,
    }
    report["acc_before"] = accuracy(built, held_out, args.batch_size)
    epochs = train_steps(trainer, train, args.steps, args.batch_size, args.seed,
                         evaluate=lambda: {"val/acc": accuracy(built, held_out, args.batch_size)}, every=args.eval_every)  # fmt: skip
    curve, done = [], 0
    for m in epochs[:-1]:
        done += m["steps"]
        curve.append({"step": done, "loss": round(m["last_step_loss"], 4), "acc": m["val/acc"]})
        print(json.dumps(curve[-1]), flush=True)
    report["steps"], report["train_seconds"] = args.steps, round(train_seconds(epochs, args.batch_size), 1)
    report["final_loss"] = round(epochs[-1]["last_step_loss"], 4)
    report["acc_after"] = epochs[-1]["val/acc"]
    if curve:
        report["curve"] = curve
    out = Path(args.out or f"benchmarks/results/tiny_learns_{cfg.model.family}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
