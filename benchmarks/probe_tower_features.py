"""What the tiny LLaVA-NeXT's image tokens carry before any training, read with an oracle (README, Tasks).

    python benchmarks/probe_tower_features.py [key=value ...] [--train 3000] [--test 600]

Builds the base model of configs/train-tiny-relative.yaml (plus ``key=value`` overrides), renders
``--train`` scenes of its training pool and ``--test`` of the held-out relative split, and takes the
projector's output (the language model's image tokens) at the target's and the reference's cells of
the base image. Then, fitted on the training scenes and scored on the held-out ones (colour-shape
pairs never trained on; the relation's accuracy also by distance along the asked axis):

- ``relation_mlp`` / ``relation_linear``: the relation (left, right, above, below) from the two
  cells' features side by side (scikit-learn's MLPClassifier with 256 hidden units / LogisticRegression)
  - what a language model that found both objects could at best read from them;
- ``colour`` / ``shape``: the named object's colour or shape from its cell's feature (LogisticRegression)
  - what binding "red star" to its patch can lean on.

Prints one JSON line and appends it to benchmarks/results/tower_features.jsonl. With the model
knobs it measures (model.tiny_vision_position_norm, tiny_vision_filters, ...) no training runs: a
probe costs a minute or two where a training run costs half an hour.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
from relative_by_pair import DISTANCE_BINS, asked_distance, named_objects  # noqa: E402  benchmarks/, the script's own folder


def cell_features(family, built, source, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Image-token features at both objects' cells of ``n`` scenes of ``source`` (seeded choice).

    Returns ``pair`` (n, 2 * hidden: target's then reference's), ``label`` (n,), and per object
    (2n rows) ``feature``, ``colour`` and ``shape``; ``distance`` (n,) along the asked axis. The base image's tokens are row-major, one per
    cell (image_size / tiny_patch cells a side).
    """
    import torch

    model = built.model.model
    idx = np.random.default_rng(seed).choice(len(source), min(n, len(source)), replace=False)
    out: dict[str, list] = {"pair": [], "label": [], "distance": [], "feature": [], "colour": [], "shape": []}
    for start in range(0, len(idx), 64):
        rows = source.rows(idx[start:start + 64])
        enc = family.collate(built, rows, train=False)
        with torch.no_grad():
            hidden = model.vision_tower(enc["pixel_values"][:, 0].float(), output_hidden_states=True).hidden_states[-1][:, 1:]
            tokens = model.multi_modal_projector(hidden).numpy()
        side = int(round(tokens.shape[1] ** 0.5))
        for row, feats in zip(rows, tokens):
            target = feats[row["cell_row"] * side + row["cell_col"]]
            reference = feats[row["ref_row"] * side + row["ref_col"]]
            out["pair"].append(np.r_[target, reference])
            out["label"].append(row["label"])
            out["distance"].append(asked_distance(row))
            for feat, (colour, shape) in zip((target, reference), named_objects(row["prompt"])):
                out["feature"].append(feat)
                out["colour"].append(colour)
                out["shape"].append(shape)
    return {k: np.asarray(v) for k, v in out.items()}


def main() -> None:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from raysweep.config import load_config
    from raysweep.models import get_family
    from raysweep.tasks import task_for
    from raysweep.training.data import SyntheticRows, limit_rows, train_val_sources

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides of configs/train-tiny-relative.yaml")
    parser.add_argument("--train", type=int, default=3000, help="training-pool scenes the read-outs are fitted on")
    parser.add_argument("--test", type=int, default=600, help="held-out scenes they are scored on")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    cfg = load_config(str(REPO / "configs/train-tiny-relative.yaml"), args.overrides)
    family = get_family(cfg.model.family)
    built = family.build(cfg.model, task_for(cfg.data))
    train, _ = train_val_sources(cfg)
    held_out = limit_rows(SyntheticRows(load_config(str(REPO / "configs/data/relative_test.yaml")).data), args.test, 0)
    fit, score = cell_features(family, built, train, args.train), cell_features(family, built, held_out, args.test)

    result = {"overrides": args.overrides, "train": len(fit["label"]), "test": len(score["label"])}
    readouts = {"relation_mlp": MLPClassifier((256,), max_iter=500, random_state=0),
                "relation_linear": LogisticRegression(max_iter=3000)}  # fmt: skip
    for name, clf in readouts.items():
        clf.fit(fit["pair"], fit["label"])
        result[name] = round(float(clf.score(score["pair"], score["label"])), 3)
        result[name + "_train"] = round(float(clf.score(fit["pair"], fit["label"])), 3)
        right = clf.predict(score["pair"]) == score["label"]
        result[name + "_by_distance"] = {
            kind: round(float(right[(score["distance"] >= lo) & (score["distance"] <= hi)].mean()), 3)
            for kind, (lo, hi) in DISTANCE_BINS.items() if ((score["distance"] >= lo) & (score["distance"] <= hi)).any()
        }  # fmt: skip
    for attribute in ("colour", "shape"):
        clf = LogisticRegression(max_iter=3000).fit(fit["feature"], fit[attribute])
        seen = np.isin(score[attribute], clf.classes_)  # held-out objects whose colour (shape) the pool has
        result[attribute] = round(float(clf.score(score["feature"][seen], score[attribute][seen])), 3)
    result["s"] = round(time.time() - t0)
    line = json.dumps(result)
    print(line)
    with open(REPO / "benchmarks/results/tower_features.jsonl", "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
