"""Held-out relative-position accuracy of an adapter by what tells the two named objects apart.

    python benchmarks/relative_by_pair.py ADAPTER [key=value ...] [--n 900]

Builds the model of configs/train-tiny-relative.yaml (plus overrides), loads ADAPTER, predicts ``--n``
seeded scenes of the held-out split (relative_test.yaml) in ``choice`` mode and prints one JSON line:
accuracy, mirror rate and accuracy per pair kind - ``both_differ`` (colour and shape differ),
``same_colour`` (only the shape tells them apart), ``same_shape`` (only the colour does) - with the
number of scenes of each, per distance along the asked axis (2-3, 4-5, 6-8 cells), and where
guessing from the reference's cell alone is right and wrong (with that guess's accuracy).
:func:`pair_kind` and :func:`accuracy_by_distance` are what bench_relative_variants.py uses too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def named_objects(prompt: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((colour, shape) of the target, (colour, shape) of the reference) of a prompt of the default
    template ("... Where is the red star relative to the blue circle? ...")."""
    named = prompt.split("Where is the ")[1].split("?")[0].split(" relative to the ")
    (c1, s1), (c2, s2) = (tuple(phrase.split()[-2:]) for phrase in named)
    return (c1, s1), (c2, s2)


def pair_kind(prompt: str) -> str:
    """``both_differ``, ``same_colour`` or ``same_shape`` for a prompt of the default template."""
    (c1, s1), (c2, s2) = named_objects(prompt)
    return "same_colour" if c1 == c2 else "same_shape" if s1 == s2 else "both_differ"


def accuracy_by_pair(rows: list[dict], predictions: list[dict]) -> dict[str, tuple[float, int]]:
    """{pair kind: (accuracy, scenes)} of ``predictions`` (``evaluate_rows``'s, in the rows' order)."""
    hits: dict[str, list[bool]] = {}
    for row, pred in zip(rows, predictions):
        hits.setdefault(pair_kind(row["prompt"]), []).append(pred["pred"] == pred["label"])
    return {kind: (round(float(np.mean(v)), 3), len(v)) for kind, v in sorted(hits.items())}


def asked_distance(row: dict) -> int:
    """Cells between the target and the reference along the axis the answer names (2 .. 8)."""
    if row["answer"] in ("left", "right"):
        return abs(row["cell_col"] - row["ref_col"])
    return abs(row["cell_row"] - row["ref_row"])


DISTANCE_BINS = {"2-3": (2, 3), "4-5": (4, 5), "6-8": (6, 8)}


def accuracy_by_distance(rows: list[dict], predictions: list[dict]) -> dict[str, tuple[float, int]]:
    """{distance bin: (accuracy, scenes)} by :func:`asked_distance` - far pairs reach the grid's edges,
    where a position code that wraps reads the order backwards."""
    hits: dict[str, list[bool]] = {}
    for row, pred in zip(rows, predictions):
        d = asked_distance(row)
        kind = next(name for name, (lo, hi) in DISTANCE_BINS.items() if lo <= d <= hi)
        hits.setdefault(kind, []).append(pred["pred"] == pred["label"])
    return {kind: (round(float(np.mean(hits[kind])), 3), len(hits[kind])) for kind in DISTANCE_BINS if kind in hits}


def accuracy_by_reference_rule(rows: list[dict], predictions: list[dict]) -> dict[str, tuple[float, int]]:
    """{``rule_right`` / ``rule_wrong``: (accuracy, scenes)}: the model's accuracy where guessing from
    the reference's cell alone (leave-one-out, :func:`~raysweep.tasks.relative_position.reference_cell_hits`)
    is surely right and where it is surely wrong (ties left out) - how much the model leans on it."""
    from raysweep.tasks.relative_position import RELATIONS, reference_cell_hits

    groups: dict[str, list[bool]] = {"rule_right": [], "rule_wrong": []}
    for row, pred, hit in zip(rows, predictions, reference_cell_hits(rows, len(RELATIONS))):
        if hit in (0.0, 1.0):
            groups["rule_right" if hit else "rule_wrong"].append(pred["pred"] == pred["label"])
    return {k: (round(float(np.mean(v)), 3), len(v)) for k, v in groups.items() if v}


def main() -> None:
    import torch

    from raysweep.config import load_config
    from raysweep.evaluate import evaluate_rows
    from raysweep.models import get_family
    from raysweep.tasks import task_for
    from raysweep.training.data import SyntheticRows, limit_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--n", type=int, default=900)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(str(REPO / "configs/train-tiny-relative.yaml"), args.overrides)
    family = get_family(cfg.model.family)
    built = family.load_adapter(family.build(cfg.model, task_for(cfg.data)), args.adapter)
    held_out = limit_rows(SyntheticRows(load_config(str(REPO / "configs/data/relative_test.yaml")).data), args.n, 0)
    rows = held_out.rows(range(len(held_out)))
    result = evaluate_rows(built, rows, "choice", 64)
    print(json.dumps({"acc": result["acc"], "mirror_rate": result.get("mirror_rate"),
                      "by_pair": accuracy_by_pair(rows, result["predictions"]),
                      "by_distance": accuracy_by_distance(rows, result["predictions"]),
                      "by_reference_rule": accuracy_by_reference_rule(rows, result["predictions"]),
                      "reference_cell_baseline": result.get("reference_cell_baseline")}))  # fmt: skip


if __name__ == "__main__":
    main()
