"""Benchmark: `choice` against `generate` on the same tiny model and data (speed ratio, agreement).

    python benchmarks/bench_predict_modes.py --config configs/models/tiny-llava-next.yaml --steps 200 --n 144

Trains the tiny model's LoRA adapter for ``--steps`` (so that generate produces real answers), then
predicts ``--n`` held-out scenes in both modes, untrained and trained, one torch thread.
Writes benchmarks/results/predict_modes.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from raysweep.config import load_config
from raysweep.evaluate import evaluate_rows
from raysweep.metrics import agreement
from raysweep.models import build_model, get_family
from raysweep.models._rows import synthetic_rows


def compare(built, rows, batch_size, max_new_tokens) -> dict:
    res = {m: evaluate_rows(built, rows, m, batch_size, max_new_tokens) for m in ("choice", "generate")}
    preds = {m: [p["pred"] for p in r["predictions"]] for m, r in res.items()}
    return {
        "choice_rows_per_s": res["choice"]["rows_per_s"],
        "generate_rows_per_s": res["generate"]["rows_per_s"],
        "speed_ratio": res["choice"]["rows_per_s"] / res["generate"]["rows_per_s"],
        "agreement": agreement(preds["choice"], preds["generate"]),
        "choice_acc": res["choice"]["acc"],
        "generate_acc": res["generate"]["acc"],
        "generate_parse_fail_rate": res["generate"]["parse_fail_rate"],
        "mean_generated_chars": sum(len(p["text"]) for p in res["generate"]["predictions"]) / len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/models/tiny-llava-next.yaml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=144)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="benchmarks/results/predict_modes.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    family = get_family(cfg.model.family)
    built = build_model(cfg.model, cfg.lora)
    held_out = synthetic_rows(args.n, offset=3)
    held_ids = {r["scene_id"] for r in held_out}
    train = [r for r in synthetic_rows(1200) if r["scene_id"] not in held_ids]  # scenes never evaluated
    report = {"config": args.config, "n": args.n, "batch_size": args.batch_size, "max_new_tokens": cfg.eval.max_new_tokens,
              "trainable_params": built.trainable_params, "total_params": built.total_params}
    report["untrained"] = compare(built, held_out, args.batch_size, cfg.eval.max_new_tokens)
    opt = torch.optim.AdamW([p for p in built.model.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    rng, started = random.Random(0), time.perf_counter()
    built.model.train()
    for _ in range(args.steps):
        loss = family.loss(built, family.collate(built, rng.sample(train, 32), train=True))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(built.model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
    report["train_seconds"], report["steps"] = time.perf_counter() - started, args.steps
    report["trained"] = compare(built, held_out, args.batch_size, cfg.eval.max_new_tokens)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
