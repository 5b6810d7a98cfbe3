"""Experiment: pre-train the tiny LLaVA-NeXT's vision tower and projector on what stands in each cell.

    python benchmarks/tower_pretrain.py [key=value ...] [--steps 400] [--test 600]

A real VLM's tower comes pre-trained; the tiny one is random, and its image tokens read a new
colour-shape pair's shape at 57-72% (probe_tower_features.py). This stage trains the tower and the
projector (their base weights, before any LoRA) with linear heads on every image token of the base
image: the colour and the shape of the object in that cell (or "none") and the cell's row and column
- on scenes of the training pool only, so the held-out test split's combinations stay unseen. It
then scores the heads on the objects of ``--test`` held-out scenes: whether the tokens now name a
new pair's colour and shape. The heads are dropped; only the tower and projector keep what they
learnt. ``bench_relative_learns.py --tower-pretrain N`` runs it before fine-tuning, and
``pretrain_tiny_base.py`` as the first of its two stages. ``--pool`` pre-trains on another data
config's scenes (configs/data/tower_pool_x5.yaml, tower_pool_all.yaml); ``--freeze`` keeps weights
(e.g. the fixed filters and positions). Appends its line to benchmarks/results/tower_pretrain.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
from relative_by_pair import named_objects  # noqa: E402  benchmarks/, the script's own folder


def cell_labels(rows: list[dict], side: int, colours: list[str], shapes: list[str]) -> dict[str, torch.Tensor]:
    """Per-token targets ``(batch, side * side)``: colour / shape index (``len(vocab)`` = empty cell), row, column."""
    n = len(rows)
    colour = torch.full((n, side * side), len(colours), dtype=torch.long)
    shape = torch.full((n, side * side), len(shapes), dtype=torch.long)
    for i, row in enumerate(rows):
        cells = [(row["cell_row"], row["cell_col"]), (row["ref_row"], row["ref_col"])]
        for (r, c), (col, shp) in zip(cells, named_objects(row["prompt"])):
            colour[i, r * side + c] = colours.index(col)
            shape[i, r * side + c] = shapes.index(shp)
    grid = torch.arange(side * side)
    return {"colour": colour, "shape": shape, "row": (grid // side).expand(n, -1), "col": (grid % side).expand(n, -1)}


def image_tokens(built, pixel_values: torch.Tensor) -> torch.Tensor:
    """The language model's image tokens of the base image, ``(batch, side * side, hidden)``, with gradients."""
    model = built.model.get_base_model().model if hasattr(built.model, "get_base_model") else built.model.model
    hidden = model.vision_tower(pixel_values[:, 0].float(), output_hidden_states=True).hidden_states[-1][:, 1:]
    return model.multi_modal_projector(hidden)


def tower_parameters(built, freeze: tuple[str, ...] = ()) -> list[torch.nn.Parameter]:
    """The base (non-LoRA) weights of the vision tower and the projector, less those whose name holds one of ``freeze``."""
    return [p for name, p in built.model.named_parameters()
            if ("vision_tower" in name or "multi_modal_projector" in name) and "lora_" not in name
            and not any(f in name for f in freeze)]  # fmt: skip


def pretrain_tower(family, built, source, colours: list[str], shapes: list[str], steps: int,
                   batch_size: int = 32, lr: float = 1e-3, seed: int = 0, log_every: int = 50,
                   freeze: tuple[str, ...] = ()) -> list[dict]:
    """Train the tower and projector of ``built`` in place for ``steps`` steps on ``source``'s scenes.

    Returns the loss log. The weights' ``requires_grad`` is restored afterwards (frozen under LoRA).
    """
    params = tower_parameters(built, freeze)
    was = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    side = None
    heads = None
    rng = np.random.default_rng(seed)
    log = []
    for step in range(1, steps + 1):
        rows = source.rows(rng.choice(len(source), batch_size, replace=False))
        enc = family.collate(built, rows, train=False)
        tokens = image_tokens(built, enc["pixel_values"])
        if heads is None:
            side = int(round(tokens.shape[1] ** 0.5))
            torch.manual_seed(seed)
            heads = torch.nn.ModuleDict({"colour": torch.nn.Linear(tokens.shape[-1], len(colours) + 1),
                                         "shape": torch.nn.Linear(tokens.shape[-1], len(shapes) + 1),
                                         "row": torch.nn.Linear(tokens.shape[-1], side),
                                         "col": torch.nn.Linear(tokens.shape[-1], side)})  # fmt: skip
            opt = torch.optim.AdamW(params + list(heads.parameters()), lr=lr, weight_decay=0.0)
        labels = cell_labels(rows, side, colours, shapes)
        occupied = (labels["shape"] < len(shapes)).flatten()
        losses = {}
        for k, head in heads.items():
            ce = torch.nn.functional.cross_entropy(head(tokens).flatten(0, 1), labels[k].flatten(), reduction="none")
            # objects and empty cells weigh alike: 2 objects among 81 cells would otherwise hardly count
            losses[k] = ce[occupied].mean() + ce[~occupied].mean() if k in ("colour", "shape") else ce.mean()
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps:
            log.append({"step": step} | {k: round(v.item(), 4) for k, v in losses.items()})
            print(json.dumps({"tower_pretrain": log[-1]}), flush=True)
    for p, w in zip(params, was):
        p.requires_grad_(w)
    built.extras["tower_heads"] = heads
    return log


def score_objects(family, built, rows: list[dict], colours: list[str], shapes: list[str]) -> dict[str, float]:
    """The pre-training heads' accuracy on the named objects of ``rows`` (colour, shape, both)."""
    heads = built.extras["tower_heads"]
    right = {"colour": 0, "shape": 0, "both": 0}
    n = 0
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            tokens = image_tokens(built, family.collate(built, chunk, train=False)["pixel_values"])
            side = int(round(tokens.shape[1] ** 0.5))
            labels = cell_labels(chunk, side, colours, shapes)
            pred = {k: heads[k](tokens).argmax(-1) for k in ("colour", "shape")}
            for i, row in enumerate(chunk):
                for r, c in ((row["cell_row"], row["cell_col"]), (row["ref_row"], row["ref_col"])):
                    ok = {k: bool(pred[k][i, r * side + c] == labels[k][i, r * side + c]) for k in ("colour", "shape")}
                    right["colour"] += ok["colour"]
                    right["shape"] += ok["shape"]
                    right["both"] += ok["colour"] and ok["shape"]
                    n += 1
    return {k: round(v / n, 4) for k, v in right.items()}


def main() -> None:
    from raysweep.config import load_config
    from raysweep.models import get_family
    from raysweep.tasks import task_for
    from raysweep.training.data import SyntheticRows, limit_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides of configs/train-tiny-relative.yaml")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--freeze", default="", help="comma-separated name parts of weights to keep (e.g. patch_embedding)")
    parser.add_argument("--pool", default="", help="a data config whose scenes to pre-train on instead of the training pool")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(str(REPO / "configs/train-tiny-relative.yaml"), args.overrides)
    family = get_family(cfg.model.family)
    built = family.build(cfg.model, task_for(cfg.data))
    train = SyntheticRows(cfg.data)
    pool_data = load_config(str(REPO / args.pool)).data if args.pool else cfg.data
    pool = SyntheticRows(pool_data) if args.pool else train
    colours, shapes = list(pool_data.colors), list(cfg.data.shapes)
    held_out = limit_rows(SyntheticRows(load_config(str(REPO / "configs/data/relative_test.yaml")).data), args.test, 0)
    started = time.perf_counter()
    log = pretrain_tower(family, built, pool, colours, shapes, args.steps, lr=args.lr,
                         freeze=tuple(f for f in args.freeze.split(",") if f))
    seconds = time.perf_counter() - started
    train_rows = limit_rows(train, args.test, 1)
    result = {"overrides": args.overrides, "steps": args.steps, "lr": args.lr, "freeze": args.freeze, "pool": args.pool, "seconds": round(seconds, 1),
              "held_out": score_objects(family, built, held_out.rows(range(len(held_out))), colours, shapes),
              "train": score_objects(family, built, train_rows.rows(range(len(train_rows))), colours, shapes),
              "last": log[-1]}  # fmt: skip
    print(json.dumps(result), flush=True)
    with open(REPO / "benchmarks/results/tower_pretrain.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
