"""COCO Relative Position: "Where is the dog relative to the bench?" on real photos.

The same selection as the absolute COCO set (:mod:`raysweep.datasets.coco`: categories that appear
exactly once in their image, crowd annotations never asked about, bad boxes and unusable images
counted as skips), then every ordered pair of two such objects in one image whose box centres obey
the relative-position rule (:func:`raysweep.tasks.relative_position.relation`) in image coordinates
normalised to 0..1: at least ``min_separation`` apart along the asked axis, strictly less far apart
along the other. The set is balanced per relation: each keeps as many pairs (a seeded choice) as the
rarest has. Rows carry the target's box in ``bbox`` and its 9x9 cell, the reference's cell in
``ref_row``/``ref_col`` and its category and box in ``distractors`` (role ``reference``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from raysweep.datasets._coco_annotations import SkipLog, load_annotations
from raysweep.datasets.coco import (
    PROMPT_PREFIX,
    _image_counts,
    append_image,
    check_image_files,
    default_split,
    image_bytes,
    select_candidates,
)
from raysweep.datasets.store import sha256_file
from raysweep.datasets.store import DatasetWriter, rows_to_table
from raysweep.errors import UserError
from raysweep.images import family_input_limits
from raysweep.tasks.relative_position import relation

_TAG_OPTIONS, _TAG_BALANCE = 8, 9


@dataclass(frozen=True)
class Pair:
    """One question: the target (asked about) and the reference object, in one image."""

    image_id: int
    category: str
    anchor: str
    bbox: tuple[float, float, float, float]
    anchor_bbox: tuple[float, float, float, float]
    label: int
    area: int
    cell_row: int
    cell_col: int
    ref_row: int
    ref_col: int


def select_pairs(questions: list, index, min_separation: float) -> list[Pair]:
    """Every ordered pair of single-instance objects of one image that the rule gives a relation."""
    by_image: dict[int, list] = {}
    for q in questions:
        by_image.setdefault(q.image_id, []).append(q)
    pairs = []
    for image_id, qs in sorted(by_image.items()):
        image = index.images[image_id]
        w, h = image["width"], image["height"]

        def centre(q):
            x, y, bw, bh = q.bbox
            return (y + bh / 2) / h, (x + bw / 2) / w

        for a in qs:
            for b in qs:
                label = relation(centre(a), centre(b), min_separation) if a is not b else None
                if label is not None:
                    pairs.append(Pair(image_id, a.category, b.category, a.bbox, b.bbox, label, a.area,
                                      a.cell_row, a.cell_col, b.cell_row, b.cell_col))  # fmt: skip
    return pairs


def balance(pairs: list[Pair], n_classes: int, seed: int, limit: int | None) -> list[Pair]:
    """A seeded subset with the same count per relation (the rarest relation's, lower with ``limit``)."""
    counts = Counter(p.label for p in pairs)
    per = min(counts.get(k, 0) for k in range(n_classes))
    if limit:
        per = min(per, limit // n_classes)
    rng = np.random.default_rng([seed, _TAG_BALANCE])
    kept = []
    for k in range(n_classes):
        members = [p for p in pairs if p.label == k]
        kept += [members[i] for i in sorted(rng.permutation(len(members))[:per])]
    return sorted(kept, key=lambda p: (p.image_id, p.category, p.anchor))


def _columns(pairs: list[Pair], first_id: int, index, images_dir: Path, checks: dict, split: str, seed: int, cache: dict, task) -> dict:
    cols: dict[str, list] = {k: [] for k in (
        "scene_id", "split", "source", "image", "width", "height", "question", "prompt", "answer", "label", "area",
        "cell_row", "cell_col", "ref_row", "ref_col", "n_distractors", "distractors", "seed", "category", "image_id", "bbox",
    )}  # fmt: skip
    names = task.answer_names
    for offset, p in enumerate(pairs):
        order = np.random.default_rng([seed, _TAG_OPTIONS, first_id + offset]).permutation(len(names))
        question = task.template.format(ref=p.category, anchor=p.anchor, options=", ".join(names[i] for i in order))
        append_image(cols, first_id + offset, split, image_bytes(p.image_id, index, images_dir, checks, cache), index.images[p.image_id])
        for key, value in (("question", question), ("prompt", PROMPT_PREFIX + question), ("answer", names[p.label]),
                           ("label", p.label), ("area", p.area), ("cell_row", p.cell_row), ("cell_col", p.cell_col),
                           ("ref_row", p.ref_row), ("ref_col", p.ref_col), ("n_distractors", 0), ("seed", seed),
                           ("category", p.category), ("image_id", p.image_id), ("bbox", list(p.bbox))):  # fmt: skip
            cols[key].append(value)
        cols["distractors"].append(json.dumps([{"role": "reference", "category": p.anchor, "bbox": list(p.anchor_bbox)}]))
    return cols


def build_relative_coco(task, annotations, images_dir, out_dir, opts, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the COCO Relative Position set of an annotation file to ``out_dir``; returns the manifest."""
    opts.validate()
    if not 0.0 < opts.min_separation < 1.0:
        raise UserError(f"--min-separation must lie in (0, 1) of the image side, got {opts.min_separation}")
    annotations, images_dir = Path(annotations), Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"--images {images_dir} is not a folder of images")
    split = opts.split or default_split(annotations)
    skips, filtered = SkipLog(annotations, opts.strict), Counter()
    index = load_annotations(annotations, skips)
    limits = family_input_limits()
    candidates, checks = check_image_files(select_candidates(index, opts, skips, filtered), index, images_dir, skips, progress, limits)
    pairs = select_pairs(candidates, index, opts.min_separation)
    before = Counter(p.label for p in pairs)
    kept = balance(pairs, task.n_classes, opts.seed, opts.limit)
    if not kept:
        rare = task.answer_names[min(range(task.n_classes), key=lambda k: before.get(k, 0))]
        raise UserError(f"{annotations}: no balanced pairs left (no pair says {rare!r}; pairs per relation "
                        f"{[before.get(k, 0) for k in range(task.n_classes)]}); lower --min-separation or add images")  # fmt: skip
    with DatasetWriter(out_dir, overwrite=overwrite) as writer:
        cache: dict = {}
        starts = range(0, len(kept), opts.rows_per_part)
        for part, start in enumerate(starts):
            chunk = kept[start : start + opts.rows_per_part]
            writer.write_part(part, rows_to_table(_columns(chunk, start, index, images_dir, checks, split, opts.seed, cache, task)))
        counts = Counter(p.label for p in kept)
        manifest = {
            "kind": "coco",
            "rows": len(kept),
            "parts": len(starts),
            "split": split,
            "inputs": {"annotations": str(annotations.resolve()), "annotations_bytes": annotations.stat().st_size,
                       "annotations_sha256": sha256_file(annotations), "images": str(images_dir.resolve())},  # fmt: skip
            "options": asdict(opts),
            "config": {"task": task.name, "template": task.template, "prompt_prefix": PROMPT_PREFIX, "grid_size": 9, "areas_per_side": 3},
            "counts": {"images": len(index.images), "annotations": index.n_annotations, "single_objects": len(candidates),
                       "pairs_before_balance": len(pairs), "questions": len(kept),
                       "images_asked_about": len({p.image_id for p in kept})},  # fmt: skip
            "skipped": skips.report(),
            "images": _image_counts([checks[i] for i in sorted({p.image_id for p in kept})], limits),
            "filtered": dict(filtered),
            "relation_counts": [counts.get(k, 0) for k in range(task.n_classes)],
            "relation_counts_before_balance": [before.get(k, 0) for k in range(task.n_classes)],
        }
        return writer.publish(manifest)
