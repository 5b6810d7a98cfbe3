"""Reading and validating a COCO instances file (the input of ``raysweep coco``).

Malformed content (not JSON, missing lists, an entry of the wrong shape) stops with one line naming
the file and the item; an annotation whose image or category is missing is a counted skip
(:class:`SkipLog`), or an error in strict mode. Segmentation polygons are dropped while parsing so
that peak memory stays near the size of the boxes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from raysweep.errors import UserError

EXAMPLES_KEPT = 20  # ids listed per skip reason in the manifest

SKIP_REASONS = {
    "annotation_image_missing": "image_id {detail} is not in 'images'",
    "annotation_category_unknown": "category_id {detail} is not in 'categories'",
    "zero_size_box": "bbox {detail} has zero or negative width or height",
    "box_outside_image": "bbox {detail} lies outside the image",
    "image_file_missing": "image file {detail} not found",
    "image_unreadable": "image file {detail} is not a readable image",
    "image_damaged": "image file {detail} does not decode fully (damaged or truncated)",
    "image_size_mismatch": "image file {detail}",
    "image_blank": "image file {detail} is blank: pixel standard deviation under 1 (0-255) after conversion",
    "image_outside_family_limits": "image file {detail}",
}


@dataclass
class CocoIndex:
    """The validated content of an annotation file."""

    path: Path
    images: dict[int, dict]  # id -> {"file_name", "width", "height"}
    categories: dict[int, str]  # id -> name
    coco: object  # pycocotools.coco.COCO over the kept annotations (imgToAnns, cats, imgs)
    n_annotations: int


class SkipLog:
    """Counted skips with the first ids of each reason; in strict mode the first skip is an error."""

    def __init__(self, path: Path, strict: bool):
        self.path, self.strict = path, strict
        self.counts: Counter = Counter()
        self.examples: dict[str, list] = {}

    def add(self, reason: str, item: str, ident, detail, n: int = 1) -> None:
        if self.strict:
            hint = "run without --strict to skip and count such items"
            raise UserError(f"{self.path}: {item}: {SKIP_REASONS[reason].format(detail=detail)} ({hint})")
        self.counts[reason] += n
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_KEPT:
            kept.append(ident)

    def report(self) -> dict:
        return {r: {"count": self.counts[r], "first_ids": self.examples.get(r, [])} for r in SKIP_REASONS if self.counts[r]}


def _drop_segmentation(obj: dict) -> dict:
    # Polygons are most of a COCO file; dropping them while parsing keeps peak memory near the boxes.
    obj.pop("segmentation", None)
    return obj


def load_annotations(path: str | Path, skips: SkipLog | None = None) -> CocoIndex:
    """Parse and validate a COCO instances file; malformed content stops with one line naming the item."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"annotation file {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with open(path, "rb") as fh:
            data = json.load(fh, object_hook=_drop_segmentation)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 JSON text") from None
    except (OSError, RecursionError, ValueError) as err:
        raise UserError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a COCO instances file (the top level is a {type(data).__name__}, not an object)")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        found = ", ".join(sorted(map(str, data))) or "none"
        raise UserError(f"{path}: not a COCO instances file: no '{missing[0]}' list (keys found: {found})")
    skips = skips or SkipLog(path, strict=False)
    images = _check_images(path, data["images"])
    categories = _check_categories(path, data["categories"])
    n_annotations = len(data["annotations"])
    data["annotations"] = _check_annotations(path, data["annotations"], images, categories, skips)
    return CocoIndex(path, images, categories, _pycocotools_index(data), n_annotations)


def _pycocotools_index(data: dict):
    import contextlib
    import io

    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _item(kind: str, i: int, entry) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{kind}[{i}]" + (f" (id {ident})" if ident is not None else "")


def _check_images(path: Path, entries: list) -> dict[int, dict]:
    images: dict[int, dict] = {}
    for i, img in enumerate(entries):
        where = f"{path}: {_item('images', i, img)}"
        if not isinstance(img, dict):
            raise UserError(f"{where}: expected an object, got {type(img).__name__}")
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise UserError(f"{where}: missing '{key}'")
        if not _is_int(img["id"]):
            raise UserError(f"{where}: 'id' must be an integer, got {img['id']!r}")
        if not isinstance(img["file_name"], str) or not img["file_name"]:
            raise UserError(f"{where}: 'file_name' must be a non-empty string, got {img['file_name']!r}")
        for key in ("width", "height"):
            if not _is_int(img[key]) or img[key] <= 0:
                raise UserError(f"{where}: '{key}' must be a positive integer, got {img[key]!r}")
        if img["id"] in images:
            raise UserError(f"{where}: duplicate image id {img['id']} (already used by another image); give every image its own id")
        images[img["id"]] = {"file_name": img["file_name"], "width": img["width"], "height": img["height"]}
    return images


def _check_categories(path: Path, entries: list) -> dict[int, str]:
    categories: dict[int, str] = {}
    for i, cat in enumerate(entries):
        where = f"{path}: {_item('categories', i, cat)}"
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str) or not cat["name"]:
            raise UserError(f"{where}: expected an object with an integer 'id' and a non-empty 'name'")
        if cat["id"] in categories:
            raise UserError(f"{where}: duplicate category id {cat['id']} (already used by another category); give every category its own id")
        if cat["name"] in categories.values():
            raise UserError(f"{where}: duplicate category name {cat['name']!r}; give every category its own name")
        categories[cat["id"]] = cat["name"]
    return categories


def _check_annotations(path: Path, entries: list, images: dict, categories: dict, skips: SkipLog) -> list[dict]:
    """The annotations whose image and category exist; malformed ones and repeated ids are errors."""
    kept, seen = [], set()
    for i, ann in enumerate(entries):
        if not isinstance(ann, dict):
            raise UserError(f"{path}: annotations[{i}]: expected an object, got {type(ann).__name__}")
        for key in ("id", "image_id", "category_id", "bbox"):
            if key not in ann:
                raise UserError(f"{path}: {_item('annotations', i, ann)}: missing '{key}'")
        if not (_is_int(ann["id"]) and _is_int(ann["image_id"]) and _is_int(ann["category_id"])):
            raise UserError(f"{path}: {_item('annotations', i, ann)}: 'id', 'image_id' and 'category_id' must be integers")
        if ann["id"] in seen:
            raise UserError(f"{path}: {_item('annotations', i, ann)}: duplicate annotation id {ann['id']} (already used by another annotation); give every annotation its own id")
        seen.add(ann["id"])
        box = ann["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise UserError(f"{path}: {_item('annotations', i, ann)}: 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}")
        if ann.get("iscrowd", 0) not in (0, 1, False, True):
            raise UserError(f"{path}: {_item('annotations', i, ann)}: 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
        item = _item("annotations", i, ann)
        if ann["image_id"] not in images:
            skips.add("annotation_image_missing", item, ann["id"], ann["image_id"])
            continue
        if ann["category_id"] not in categories:
            skips.add("annotation_category_unknown", item, ann["id"], ann["category_id"])
            continue
        kept.append(ann)
    return kept
