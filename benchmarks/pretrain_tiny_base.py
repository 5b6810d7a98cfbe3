"""Experiment: a pre-trained tiny base - the tiny LLaVA-NeXT pre-trained offline on naming what it sees.

    python benchmarks/pretrain_tiny_base.py --out runs/tiny-base [key=value ...] [--tower-steps 300] [--steps 600]

The paper's models come to fine-tuning knowing what "a red star" looks like and where one stands in
a picture; the tiny model is random, and on relative position it does not get past ~76% held-out
(README, Tasks, "Where the 74% ceiling is"). This builds configs/train-tiny-relative.yaml's tiny model
and pre-trains every weight of it in two stages on scenes of ``--pool`` (default
configs/data/tower_pool_all.yaml: every shape in every colour):

1. the tower and projector: per-cell colour, shape, row and column heads on the image tokens
   (``tower_pretrain.py``);
2. the whole model: a referring-expression grounding loss - for "Find the red star and the blue
   circle." the last hidden state at each name's last token predicts that object's cell (the
   ``train.grounding_weight`` head) - so the language model learns the names of every colour-shape
   pair and where the named thing is. No answer is trained and no relation is ever asked.

It then saves the model and its processor with ``save_pretrained`` to ``--out``, a checkpoint that
``model.checkpoint=<out>`` loads like any local checkpoint, and prints the grounding accuracy (the
named object's cell, exactly) on the held-out relative test split's scenes (pairs the relative
fine-tuning never sees).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
from relative_by_pair import named_objects  # noqa: E402  benchmarks/, the script's own folder
from tower_pretrain import pretrain_tower  # noqa: E402


def find_rows(rows: list[dict], rng: np.random.Generator) -> list[dict]:
    """``rows`` re-asked as "Find the {A} and the {B}." (the two objects in a random order) with ``grounding`` to match."""
    out = []
    for row in rows:
        (c1, s1), (c2, s2) = named_objects(row["prompt"])
        objects = [(f"{c1} {s1}", row["cell_row"], row["cell_col"]), (f"{c2} {s2}", row["ref_row"], row["ref_col"])]
        if rng.random() < 0.5:
            objects.reverse()
        prompt = f"Find the {objects[0][0]} and the {objects[1][0]}."
        first_end = len("Find the ") + len(objects[0][0])
        second_end = prompt.rindex(".")
        grounding = [[first_end, objects[0][1], objects[0][2]], [second_end, objects[1][1], objects[1][2]]]
        out.append(row | {"prompt": prompt, "answer": "left", "grounding": grounding})
    return out


def grounding_accuracy(family, built, head, rows: list[dict]) -> float:
    """Share of named objects whose cell ``head`` names exactly, over ``rows`` (already :func:`find_rows`)."""
    right = total = 0
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            _, logits, cell = family.grounding_logits(built, family.collate(built, rows[start:start + 32], train=True), head)
            pred = logits.argmax(-1)
            right += int(((pred == cell) & (cell >= 0)).sum())
            total += int((cell >= 0).sum())
    return right / max(total, 1)


def main() -> None:
    from raysweep.config import load_config
    from raysweep.models import get_family
    from raysweep.tasks import task_for
    from raysweep.training.data import SyntheticRows, limit_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides of configs/train-tiny-relative.yaml")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--pool", default=str(REPO / "configs/data/tower_pool_all.yaml"))
    parser.add_argument("--tower-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=600, help="grounding pre-training steps of the whole model")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--test", type=int, default=300, help="held-out relative scenes the grounding is scored on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(str(REPO / "configs/train-tiny-relative.yaml"), args.overrides)
    family = get_family(cfg.model.family)
    built = family.build(cfg.model, task_for(cfg.data))
    pool_data = load_config(args.pool).data
    pool = SyntheticRows(pool_data)
    rng = np.random.default_rng(args.seed)
    held_out = limit_rows(SyntheticRows(load_config(str(REPO / "configs/data/relative_test.yaml")).data), args.test, 0)
    test_rows = find_rows(held_out.rows(range(len(held_out))), np.random.default_rng(1))
    report = {"overrides": args.overrides, "pool": args.pool, "tower_steps": args.tower_steps, "steps": args.steps, "lr": args.lr}
    started = time.perf_counter()
    report["tower_log"] = pretrain_tower(family, built, pool, list(pool_data.colors), list(pool_data.shapes), args.tower_steps,
                                         seed=args.seed)[-1:]  # fmt: skip
    report["tower_seconds"] = round(time.perf_counter() - started, 1)

    grid = cfg.data.grid_size
    torch.manual_seed(args.seed)
    head = torch.nn.Linear(cfg.model.tiny_hidden, grid * grid)
    built.extras.update(grounding=True, grounding_grid=grid)
    params = [p for p in built.model.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params + list(head.parameters()), lr=args.lr, weight_decay=0.01)
    warmup = 50
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    built.model.train()
    log = []
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        rows = find_rows(pool.rows(rng.choice(len(pool), args.batch_size, replace=False)), rng)
        _, loss = family.grounding_loss(built, family.collate(built, rows, train=True), head)  # the answer's loss is not trained
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            built.model.eval()
            point = {"step": step, "grounding_loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - started, 1),
                     "held_out_grounding_acc": round(grounding_accuracy(family, built, head, test_rows), 4)}  # fmt: skip
            built.model.train()
            log.append(point)
            print(json.dumps(point), flush=True)
    built.model.eval()
    for p in params:
        p.requires_grad_(False)
    report["log"] = log
    built.model.save_pretrained(args.out)
    built.processor.save_pretrained(args.out)
    Path(args.out, "pretrain_tiny_base.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
