"""COCO Absolute Position: questions about real photos from COCO instance annotations.

A category is asked about only when it appears exactly once in its image; crowd annotations count as
appearances but are never asked about. The answer is the 3x3 area (by thirds of the image width and
height) of the box centre. Rows use the Parquet layout of the synthetic sets, with the original file
bytes as ``image``, or PNG bytes re-encoded in the annotated frame when the file has an EXIF
orientation tag (see :mod:`raysweep.images` for the frame rule).

Bad input stops with one line naming the file and the item (a malformed file or annotation, a repeated
id), or is a counted skip recorded in the manifest (an annotation whose image or category is missing,
a zero-size or out-of-image box, an image file that is missing, damaged, blank, of neither annotated
frame's size, or outside a supported family's input limits); ``strict`` turns every skip into an error.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from raysweep.config import DataConfig
from raysweep.datasets._coco_annotations import CocoIndex, SkipLog, load_annotations
from raysweep.datasets.store import DatasetWriter, rows_to_table, sha256_file
from raysweep.errors import UserError, did_you_mean
from raysweep.images import (
    DECODE_ERRORS,
    MIN_STD,
    InputLimits,
    choose_frame,
    displayed_size,
    encode_png,
    family_input_limits,
    load_rgb,
    open_image,
    orientation,
    pixel_std,
)
from raysweep.scenes.layout import area_of_point

TEMPLATE = "Where is the {category}? Choose from [{options}]."
PROMPT_PREFIX = DataConfig().prompt_prefix
CELLS_PER_AREA = 3  # cell_row/cell_col: the box centre's cell on a grid of 3 x 3 cells per area (9x9 for 3x3)
BOX_TOLERANCE_PX = 1.0  # COCO boxes overshoot the image border by rounding; more than this is an error.
NEAR_LINE_MARGINS = (0.01, 0.02, 0.05)
_TAG_OPTIONS, _TAG_CAPS, _TAG_LIMIT = 4, 5, 6  # 1-3 are taken by the synthetic sets



@dataclass
class CocoOptions:
    """What to ask about and how many; every field is a ``raysweep coco`` option."""

    split: str | None = None  # None: from the annotation file name (instances_val2017.json -> val2017)
    task: str = "absolute_position"  # the question type (raysweep tasks); relative_position pairs two objects
    seed: int = 42
    min_separation: float = 0.1  # relative_position: box centres at least this far apart (fraction of the side)
    areas_per_side: int = 3  # the answer grid of the absolute_position task (3: the paper's nine areas)
    min_box_frac: float = 0.0
    line_margin: float = 0.0
    categories: list[str] = field(default_factory=list)
    exclude_categories: list[str] = field(default_factory=list)
    per_area_cap: int | None = None
    per_category_cap: int | None = None
    balanced: bool = False
    limit: int | None = None
    strict: bool = False
    rows_per_part: int = 500

    def validate(self) -> None:
        if not 0.0 <= self.min_box_frac < 1.0:
            raise UserError(f"--min-box-frac must lie in [0, 1), got {self.min_box_frac}")
        if not 2 <= self.areas_per_side <= 12:
            raise UserError(f"--areas-per-side must lie in 2..12, got {self.areas_per_side}")
        if not 0.0 <= self.line_margin < 1 / (2 * self.areas_per_side):
            raise UserError(f"--line-margin must lie in [0, 1/{2 * self.areas_per_side}) of the width/height, got {self.line_margin}")
        for flag, value in (("--per-area-cap", self.per_area_cap), ("--per-category-cap", self.per_category_cap), ("--limit", self.limit)):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be >= 1, got {value}")
        if self.rows_per_part < 1:
            raise UserError(f"--rows-per-part must be >= 1, got {self.rows_per_part}")
        both = set(self.categories) & set(self.exclude_categories)
        if both:
            raise UserError(f"category {sorted(both)[0]!r} is both asked about (--categories/--category) and excluded (--exclude-categories/--exclude-category)")


@dataclass(frozen=True)
class Question:
    """One selected annotation: the object asked about and where its box centre lies."""

    ann_id: int
    image_id: int
    category: str
    bbox: tuple[float, float, float, float]
    area: int
    cell_row: int
    cell_col: int


def default_split(annotations: str | Path) -> str:
    """``val2017`` for ``instances_val2017.json``; the file stem for other names."""
    stem = Path(annotations).stem
    match = re.fullmatch(r"instances_(.+)", stem)
    return match.group(1) if match else stem


def resolve_categories(names: list[str], known: dict[int, str], flag: str, path: Path) -> set[str]:
    """The given category names, each checked against the file's categories."""
    known_names = sorted(known.values())
    for name in names:
        if name not in known_names:
            shown = ", ".join(known_names[:12]) + (", ..." if len(known_names) > 12 else "")
            with_comma = [k for k in known_names if "," in k and name in (part.strip() for part in k.split(","))]
            hint = f"A name with a comma needs the one-name flag: {flag.split('/')[1]} {with_comma[0]!r}. " if with_comma else ""
            raise UserError(f"unknown category {name!r} in {flag}. {hint}{did_you_mean(name, known_names)}Known in {path.name}: {shown}")
    return set(names)


def third_line_distance(cx: float, cy: float, width: float, height: float, side: int = 3) -> float:
    """Distance of a point to the nearest dividing line of the side x side areas (thirds for 3), as a
    fraction of the image side."""
    fx, fy = cx / width, cy / height
    return min(abs(f - k / side) for f in (fx, fy) for k in range(1, side))


def locate(cx: float, cy: float, width: int, height: int, side: int = 3) -> tuple[int, int, int]:
    """(area, cell_row, cell_col) of a point: the area by n-ths (thirds for 3), and the cell of the
    grid of 3 x 3 cells per area (9x9 for 3x3) inside that area."""
    grid = side * CELLS_PER_AREA
    area = area_of_point(cx, cy, width, height, side)
    row, col = divmod(area_of_point(cx, cy, width, height, grid), grid)
    # Rounding at a third line could put the cell in the neighbouring area: keep it inside `area`.
    k = CELLS_PER_AREA
    area_row, area_col = divmod(area, side)
    row = min(max(row, area_row * k), area_row * k + k - 1)
    col = min(max(col, area_col * k), area_col * k + k - 1)
    return area, row, col


def select_candidates(index: CocoIndex, opts: CocoOptions, skips: SkipLog, filtered: Counter) -> list[Question]:
    """Every question the annotations allow under the options, before image checks and caps."""
    allow = resolve_categories(opts.categories, index.categories, "--categories/--category", index.path)
    deny = resolve_categories(opts.exclude_categories, index.categories, "--exclude-categories/--exclude-category", index.path)
    coco = index.coco
    questions = []
    for image_id in sorted(index.images):
        anns = coco.imgToAnns.get(image_id, [])
        if not anns:
            continue
        image = index.images[image_id]
        width, height = image["width"], image["height"]
        appearances = Counter(a["category_id"] for a in anns)
        for ann in sorted(anns, key=lambda a: a["id"]):
            name = index.categories[ann["category_id"]]
            if appearances[ann["category_id"]] > 1:
                filtered["not_single"] += 1
                continue
            if ann.get("iscrowd", 0):
                filtered["crowd"] += 1
                continue
            if (allow and name not in allow) or name in deny:
                filtered["category_excluded"] += 1
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            item = f"annotation {ann['id']} (image {image_id})"
            if w <= 0 or h <= 0:
                skips.add("zero_size_box", item, ann["id"], ann["bbox"])
                continue
            tol = BOX_TOLERANCE_PX
            if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
                skips.add("box_outside_image", item, ann["id"], f"{ann['bbox']} in a {width}x{height} image")
                continue
            if w * h < opts.min_box_frac * width * height:
                filtered["below_min_box_frac"] += 1
                continue
            cx, cy = x + w / 2, y + h / 2
            if opts.line_margin and third_line_distance(cx, cy, width, height, opts.areas_per_side) < opts.line_margin:
                filtered["near_third_line"] += 1
                continue
            area, row, col = locate(cx, cy, width, height, opts.areas_per_side)
            questions.append(Question(ann["id"], image_id, name, (x, y, w, h), area, row, col))
    return questions


@dataclass(frozen=True)
class ImageCheck:
    """How a kept image is stored: in which frame, and whether as re-encoded PNG bytes."""

    frame: str  # "stored" (the raw pixels) or "displayed" (EXIF orientation applied)
    reencode: bool  # the file carries an orientation tag: the row holds PNG bytes in `frame`, tag-free
    ambiguous: bool = False  # both frames have the annotated size; the displayed one was taken


def check_image_files(
    questions: list[Question], index: CocoIndex, images_dir: Path, skips: SkipLog, progress: bool, limits: InputLimits,
) -> tuple[list[Question], dict[int, ImageCheck]]:
    """Keep the questions whose image is usable; returns them and one :class:`ImageCheck` per image.

    Each image is decoded fully, once (a truncated file fails here, not in a model). Skipped (counted)
    are images that are missing, unreadable or damaged, have the annotated width/height in neither
    frame (:func:`raysweep.images.choose_frame`), are blank after conversion, or lie outside the
    input limits of a supported family.
    """
    from PIL import Image, UnidentifiedImageError

    by_image: dict[int, list[Question]] = {}
    for q in questions:
        by_image.setdefault(q.image_id, []).append(q)
    kept, checks = [], {}
    for image_id, qs in _progress(by_image.items(), len(by_image), "check images", progress, "img"):
        image = index.images[image_id]
        file = images_dir / image["file_name"]
        item = f"images id {image_id}"
        annotated = (image["width"], image["height"])
        try:
            with open_image(file) as im:
                stored, orient = im.size, orientation(im)
                frame, ambiguous = choose_frame(annotated, stored, orient)
                if frame is None:
                    shown = f"{stored[0]}x{stored[1]}"
                    if orient != 1:
                        shown += " ({}x{} displayed, EXIF orientation {})".format(*displayed_size(stored, orient), orient)
                    skips.add("image_size_mismatch", item, image_id, f"{file} is {shown}, annotated {annotated[0]}x{annotated[1]}", n=len(qs))
                    continue
                rgb = load_rgb(im, frame)
        except FileNotFoundError:
            skips.add("image_file_missing", item, image_id, file, n=len(qs))
            continue
        except (UnidentifiedImageError, PermissionError, IsADirectoryError, Image.DecompressionBombError) as err:
            skips.add("image_unreadable", item, image_id, f"{file} ({type(err).__name__})", n=len(qs))
            continue
        except DECODE_ERRORS as err:
            skips.add("image_damaged", item, image_id, f"{file} ({type(err).__name__}: {err})", n=len(qs))
            continue
        std = pixel_std(rgb)
        if std < MIN_STD:
            skips.add("image_blank", item, image_id, f"{file} (standard deviation {std:.2f})", n=len(qs))
            continue
        problem = limits.problem(*rgb.size)
        if problem:
            skips.add("image_outside_family_limits", item, image_id, f"{file} ({rgb.size[0]}x{rgb.size[1]}): {problem}", n=len(qs))
            continue
        checks[image_id] = ImageCheck(frame, reencode=orient != 1, ambiguous=ambiguous)
        kept.extend(qs)
    return kept, checks


def apply_caps(questions: list[Question], opts: CocoOptions, filtered: Counter, task) -> list[Question]:
    """Seeded subset: at most ``per_category_cap`` per category, then ``per_area_cap`` per area
    (``balanced``: the smallest area count, so every area ends equal), then a seeded ``limit``.
    The result is ordered by image id and annotation id."""
    order = np.random.default_rng([opts.seed, _TAG_CAPS]).permutation(len(questions))
    picked = [questions[i] for i in order]
    if opts.per_category_cap:
        picked = _greedy_cap(picked, lambda q: q.category, opts.per_category_cap)
    cap = opts.per_area_cap
    if opts.balanced:
        counts = Counter(q.area for q in picked)
        smallest = min(counts.get(a, 0) for a in range(task.n_classes))
        if smallest == 0:
            empty = [task.answer_names[a] for a in range(task.n_classes) if not counts.get(a)]
            raise UserError(f"--balanced: no questions left in area {empty[0]!r}, so a balanced set would be empty; use --per-area-cap instead")
        cap = min(cap, smallest) if cap else smallest
    if cap:
        picked = _greedy_cap(picked, lambda q: q.area, cap)
    filtered["capped"] += len(questions) - len(picked)
    if opts.limit and len(picked) > opts.limit:
        keep = np.sort(np.random.default_rng([opts.seed, _TAG_LIMIT]).choice(len(picked), size=opts.limit, replace=False))
        filtered["limit"] += len(picked) - opts.limit
        picked = [picked[i] for i in keep]
    return sorted(picked, key=lambda q: (q.image_id, q.ann_id))


def _greedy_cap(questions: list[Question], key, cap: int) -> list[Question]:
    seen: Counter = Counter()
    kept = []
    for q in questions:
        if seen[key(q)] < cap:
            seen[key(q)] += 1
            kept.append(q)
    return kept


def question_text(category: str, seed: int, question_index: int, task) -> str:
    """``Where is the {category}? Choose from [...]`` with the task's answers in a seeded order."""
    names = task.answer_names
    order = np.random.default_rng([seed, _TAG_OPTIONS, question_index]).permutation(len(names))
    return TEMPLATE.format(category=category, options=", ".join(names[i] for i in order))


def coco_task(opts: CocoOptions):
    """The absolute_position task of a COCO set: the options' answer grid."""
    from raysweep.tasks import task_from_config

    return task_from_config({"task": "absolute_position", "areas_per_side": opts.areas_per_side})


def image_bytes(image_id: int, index: CocoIndex, images_dir: Path, checks: dict[int, ImageCheck], cache: dict) -> bytes:
    """The bytes a row of ``image_id`` stores: the file, or PNG in the annotated frame when the file
    has an orientation tag. ``cache`` keeps the last image (rows come sorted by image)."""
    if cache.get("id") != image_id:
        file = images_dir / index.images[image_id]["file_name"]
        try:
            data = file.read_bytes()
            if checks[image_id].reencode:  # in the annotated frame, with no orientation tag left
                data = encode_png(load_rgb(data, checks[image_id].frame))
        except DECODE_ERRORS as err:
            raise UserError(f"{file}: cannot read image ({getattr(err, 'strerror', None) or err}); it was readable moments ago") from None
        cache.update(id=image_id, bytes=data)
    return cache["bytes"]


def append_image(cols: dict, scene_id: int, split: str, data: bytes, image: dict) -> None:
    """The columns every COCO row shares: id, split, source, image bytes and size."""
    cols["scene_id"].append(scene_id)
    cols["split"].append(split)
    cols["source"].append("coco")
    cols["image"].append(data)
    cols["width"].append(image["width"])
    cols["height"].append(image["height"])


def _columns(questions: list[Question], first_id: int, index: CocoIndex, images_dir: Path, checks: dict[int, ImageCheck], split: str, seed: int, cache: dict, task) -> dict:
    cols: dict[str, list] = {k: [] for k in (
        "scene_id", "split", "source", "image", "width", "height", "question", "prompt", "answer", "label", "area",
        "cell_row", "cell_col", "shape", "color", "size", "n_distractors", "distractors", "seed",
        "category", "image_id", "bbox",
    )}  # fmt: skip
    for offset, q in enumerate(questions):
        image = index.images[q.image_id]
        question = question_text(q.category, seed, first_id + offset, task)
        append_image(cols, first_id + offset, split, image_bytes(q.image_id, index, images_dir, checks, cache), image)
        cols["question"].append(question)
        cols["prompt"].append(PROMPT_PREFIX + question)
        cols["answer"].append(task.answer_names[q.area])
        cols["label"].append(q.area)
        cols["area"].append(q.area)
        cols["cell_row"].append(q.cell_row)
        cols["cell_col"].append(q.cell_col)
        for key in ("shape", "color", "size"):
            cols[key].append("")
        cols["n_distractors"].append(0)
        cols["distractors"].append("[]")
        cols["seed"].append(seed)
        cols["category"].append(q.category)
        cols["image_id"].append(q.image_id)
        cols["bbox"].append(list(q.bbox))
    return cols


def build_coco_set(annotations, images_dir, out_dir, opts: CocoOptions, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the COCO set of ``opts.task`` (its builder is the task's :meth:`build_coco`)."""
    from raysweep.tasks import task_from_config

    task = task_from_config({"task": opts.task, "areas_per_side": opts.areas_per_side})
    return task.build_coco(annotations, images_dir, out_dir, opts, overwrite, progress)


def build_coco(annotations, images_dir, out_dir, opts: CocoOptions | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the COCO Absolute Position set of an annotation file to ``out_dir``; returns the manifest."""
    from raysweep.plots import area_heatmap

    opts = opts or CocoOptions()
    opts.validate()
    task = coco_task(opts)
    annotations, images_dir = Path(annotations), Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"--images {images_dir} is not a folder of images")
    split = opts.split or default_split(annotations)
    skips = SkipLog(annotations, opts.strict)
    filtered: Counter = Counter()
    index = load_annotations(annotations, skips)
    candidates = select_candidates(index, opts, skips, filtered)
    limits = family_input_limits()
    candidates, checks = check_image_files(candidates, index, images_dir, skips, progress, limits)
    before_caps = Counter(q.area for q in candidates)
    questions = apply_caps(candidates, opts, filtered, task)
    if not questions:
        raise UserError(f"{annotations}: no questions left after selection (skipped: {dict(skips.counts)}, filtered out: {dict(filtered)})")
    area_counts = Counter(q.area for q in questions)
    distribution = [area_counts.get(a, 0) for a in range(task.n_classes)]
    with DatasetWriter(out_dir, overwrite=overwrite) as writer:
        cache: dict = {}
        starts = range(0, len(questions), opts.rows_per_part)
        bar = _progress(None, len(questions), f"write {split}", progress, "q")
        for part, start in enumerate(starts):
            chunk = questions[start : start + opts.rows_per_part]
            writer.write_part(part, rows_to_table(_columns(chunk, start, index, images_dir, checks, split, opts.seed, cache, task)))
            bar.update(len(chunk))
        bar.close()
        area_heatmap(distribution, f"COCO {split}: questions per area (n={len(questions)})", writer.staging / "area_distribution.png",
                     cbar_label="questions", area_names=list(task.answer_names))  # fmt: skip
        manifest = {
            "kind": "coco",
            "rows": len(questions),
            "parts": len(starts),
            "split": split,
            "inputs": {
                "annotations": str(annotations.resolve()),
                "annotations_bytes": annotations.stat().st_size,
                "annotations_sha256": sha256_file(annotations),
                "images": str(images_dir.resolve()),
            },
            "options": asdict(opts),
            "config": {"task": task.name, "template": TEMPLATE, "prompt_prefix": PROMPT_PREFIX, "area_names": list(task.answer_names),
                       "grid_size": opts.areas_per_side * CELLS_PER_AREA, "areas_per_side": opts.areas_per_side},  # fmt: skip
            "counts": {
                "images": len(index.images),
                "annotations": index.n_annotations,
                "categories": len(index.categories),
                "questions_before_caps": len(candidates),
                "questions": len(questions),
                "images_asked_about": len({q.image_id for q in questions}),
            },
            "skipped": skips.report(),
            "images": _image_counts([checks[i] for i in sorted({q.image_id for q in questions})], limits),
            "filtered": {k: filtered[k] for k in ("not_single", "crowd", "category_excluded", "below_min_box_frac", "near_third_line", "capped", "limit")},
            "area_counts": distribution,
            "area_counts_before_caps": [before_caps.get(a, 0) for a in range(task.n_classes)],
            "category_counts": dict(sorted(Counter(q.category for q in questions).items())),
            "near_third_line_by_margin": _near_line_counts(questions, index, opts.areas_per_side),
        }
        return writer.publish(manifest)


def _image_counts(checks: list[ImageCheck], limits: InputLimits) -> dict:
    """Frames of the kept images that carry an orientation tag, and the limits they were screened with."""
    tagged = [c for c in checks if c.reencode]
    return {
        "orientation_tagged": {
            "displayed_frame": sum(c.frame == "displayed" for c in tagged),
            "stored_frame": sum(c.frame == "stored" for c in tagged),
            "ambiguous_took_displayed": sum(c.ambiguous for c in tagged),
            "reencoded_png": len(tagged),
        },
        "family_input_limits": limits.as_dict(),
    }


def _near_line_counts(questions: list[Question], index: CocoIndex, side: int) -> dict[str, int]:
    """How many kept questions have their box centre within each margin of a third line (ambiguity)."""
    counts = {f"{m:g}": 0 for m in NEAR_LINE_MARGINS}
    for q in questions:
        image = index.images[q.image_id]
        x, y, w, h = q.bbox
        d = third_line_distance(x + w / 2, y + h / 2, image["width"], image["height"], side)
        for m in NEAR_LINE_MARGINS:
            counts[f"{m:g}"] += d < m
    return counts


def _progress(iterable, total: int, desc: str, enabled: bool, unit: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False)
