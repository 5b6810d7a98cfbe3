"""COCO Absolute Position sets: the real tinycoco photos, plus small COCO files made here for edge cases."""

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raysweep.cli import main
from raysweep.tasks import default_task
from raysweep.datasets.audit import audit
from raysweep.datasets.contact_sheet import contact_sheet
from raysweep.datasets.store import read_dataset, read_manifest

TINYCOCO = Path(__file__).parents[2] / "shared" / "data" / "tinycoco"
PREFIX = "Answer using as few words as possible. "

AREA_NAMES = list(default_task().answer_names)


def build(capsys, annotations, images, out, *extra) -> tuple[int, str, str]:
    rc = main(["coco", "--annotations", str(annotations), "--images", str(images), "--out", str(out), "--quiet", *map(str, extra)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("raysweep coco: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def expected_questions(annotation_file: Path) -> dict[int, tuple]:
    """ann id -> (image_id, category, answer, cell_row, cell_col), computed here from the raw JSON."""
    data = json.loads(annotation_file.read_text())
    images = {im["id"]: im for im in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    appearances = Counter((a["image_id"], a["category_id"]) for a in data["annotations"])
    expected = {}
    for a in data["annotations"]:
        if appearances[(a["image_id"], a["category_id"])] != 1 or a["iscrowd"]:
            continue
        im = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        cx, cy = x + w / 2, y + h / 2
        col = sum(cx * 3 >= k * im["width"] for k in (1, 2))
        row = sum(cy * 3 >= k * im["height"] for k in (1, 2))
        cell_col = min(int(cx * 9 / im["width"]), 8)
        cell_row = min(int(cy * 9 / im["height"]), 8)
        expected[a["id"]] = (a["image_id"], names[a["category_id"]], AREA_NAMES[row * 3 + col], cell_row, cell_col)
    return expected


# --- the real photos -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tinycoco_sets(tmp_path_factory):
    if not TINYCOCO.is_dir():
        pytest.skip(f"{TINYCOCO} not found (the shared tinycoco sample lies beside the repo)")
    root = tmp_path_factory.mktemp("tinycoco")
    for split in ("val2017", "train2017"):
        rc = main(["coco", "--quiet", "--annotations", str(TINYCOCO / "annotations" / f"instances_{split}.json"),
                   "--images", str(TINYCOCO / "images" / split), "--out", str(root / split)])  # fmt: skip
        assert rc == 0
    return root


def test_tinycoco_gives_the_66_questions_with_independently_computed_areas(tinycoco_sets):
    total = 0
    for split in ("val2017", "train2017"):
        table = read_dataset(tinycoco_sets / split).to_pylist()
        expected = expected_questions(TINYCOCO / "annotations" / f"instances_{split}.json")
        assert len(table) == len(expected)
        data = json.loads((TINYCOCO / "annotations" / f"instances_{split}.json").read_text())
        boxes = {a["id"]: a["bbox"] for a in data["annotations"]}
        by_box = {(a["image_id"], tuple(a["bbox"])): a["id"] for a in data["annotations"]}
        for row in table:
            ann_id = by_box[(row["image_id"], tuple(row["bbox"]))]
            assert (row["image_id"], row["category"], row["answer"], row["cell_row"], row["cell_col"]) == expected[ann_id]
            assert row["bbox"] == boxes[ann_id]
            assert AREA_NAMES[row["area"]] == row["answer"]
            assert row["split"] == split and row["source"] == "coco"
            assert (row["shape"], row["color"], row["size"], row["n_distractors"], row["distractors"]) == ("", "", "", 0, "[]")
        total += len(table)
    assert total == 66


def test_tinycoco_rows_hold_the_original_jpeg_and_a_well_formed_question(tinycoco_sets):
    table = read_dataset(tinycoco_sets / "val2017").to_pylist()
    data = json.loads((TINYCOCO / "annotations" / "instances_val2017.json").read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    assert [r["scene_id"] for r in table] == list(range(len(table)))
    for row in table:
        original = (TINYCOCO / "images" / "val2017" / files[row["image_id"]]).read_bytes()
        assert row["image"] == original
        assert Image.open(TINYCOCO / "images" / "val2017" / files[row["image_id"]]).size == (row["width"], row["height"])
        head, options = row["question"].split(" Choose from [")
        assert head == f"Where is the {row['category']}?"
        assert options.endswith("].")
        assert sorted(options[:-2].split(", ")) == sorted(AREA_NAMES)
        assert row["prompt"] == PREFIX + row["question"]
    assert len({r["question"].split("[")[1] for r in table}) > 1  # option order differs between questions


def test_tinycoco_manifest_heatmap_audit_and_contact_sheet(tinycoco_sets):
    path = tinycoco_sets / "val2017"
    manifest = read_manifest(path)
    assert manifest["kind"] == "coco" and manifest["rows"] == 13
    assert manifest["counts"]["annotations"] == 136 and manifest["counts"]["images"] == 6
    assert sum(manifest["area_counts"]) == 13
    assert manifest["skipped"] == {}
    assert (path / "area_distribution.png").is_file()
    assert Image.open(path / "area_distribution.png").format == "PNG"
    report = audit(path)
    assert report["area"]["counts"] == manifest["area_counts"]
    assert sum(report["attributes"]["category"]["counts"].values()) == 13
    sheet = contact_sheet(path, n=4, tile=64)
    assert sheet.size == (128, 2 * (64 + 30))


def test_same_inputs_give_the_same_rows_and_a_new_seed_reorders_options(tinycoco_sets, tmp_path, capsys):
    ann, images = TINYCOCO / "annotations" / "instances_val2017.json", TINYCOCO / "images" / "val2017"
    assert build(capsys, ann, images, tmp_path / "again")[0] == 0
    assert read_dataset(tmp_path / "again").equals(read_dataset(tinycoco_sets / "val2017"))
    assert build(capsys, ann, images, tmp_path / "seed7", "--seed", 7)[0] == 0
    a = read_dataset(tinycoco_sets / "val2017").column("question").to_pylist()
    b = read_dataset(tmp_path / "seed7").column("question").to_pylist()
    assert a != b and [q.split("?")[0] for q in a] == [q.split("?")[0] for q in b]


def test_existing_output_needs_overwrite(tinycoco_sets, tmp_path, capsys):
    ann, images = TINYCOCO / "annotations" / "instances_val2017.json", TINYCOCO / "images" / "val2017"
    assert build(capsys, ann, images, tmp_path / "o")[0] == 0
    rc, _, err = build(capsys, ann, images, tmp_path / "o")
    assert_one_line_error(rc, err, "--overwrite")
    assert build(capsys, ann, images, tmp_path / "o", "--overwrite")[0] == 0


# --- small COCO files made here --------------------------------------------------------------------

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "cat"}]


def ramp(size=(90, 60)) -> Image.Image:
    """An RGB image with content (a flat one is skipped as blank)."""
    w, h = size
    return Image.fromarray(np.stack([np.add.outer(np.arange(h) * 2, np.arange(w) * 2) % 256] * 3, -1).astype(np.uint8))


def write_coco(tmp_path: Path, images: list[dict], annotations: list[dict], categories=CATEGORIES, jpeg_size=(90, 60)) -> tuple[Path, Path]:
    """A COCO file plus one JPEG per distinct file name (of ``jpeg_size``) in tmp_path/images."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for im in images:
        ramp(jpeg_size).save(folder / im["file_name"], format="JPEG")
    for i, a in enumerate(annotations):
        a.setdefault("id", i + 1)
        a.setdefault("iscrowd", 0)
        a.setdefault("category_id", 1)
    path = tmp_path / "instances_mini2017.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, folder


def image(i: int, w: int = 90, h: int = 60) -> dict:
    return {"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h}


def box_at(cx: float, cy: float, w: float = 6, h: float = 6) -> list[float]:
    return [cx - w / 2, cy - h / 2, w, h]


def test_crowd_counts_as_an_appearance_but_is_never_asked_about(tmp_path, capsys):
    ann, images = write_coco(tmp_path, [image(1), image(2)], [
        {"image_id": 1, "category_id": 1, "bbox": box_at(10, 10), "iscrowd": 1},
        {"image_id": 1, "category_id": 1, "bbox": box_at(80, 50)},  # person twice with the crowd: not asked
        {"image_id": 1, "category_id": 2, "bbox": box_at(45, 30)},  # one dog: asked
        {"image_id": 2, "category_id": 3, "bbox": box_at(45, 30), "iscrowd": 1},  # a lone crowd: not asked
    ])  # fmt: skip
    rc, out, _ = build(capsys, ann, images, tmp_path / "out")
    assert rc == 0 and "wrote 1 questions (mini2017)" in out
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert [(r["category"], r["answer"]) for r in rows] == [("dog", "center")]
    filtered = read_manifest(tmp_path / "out")["filtered"]
    assert filtered["not_single"] == 2 and filtered["crowd"] == 1


def test_bad_boxes_and_missing_images_are_counted_skips_with_ids(tmp_path, capsys):
    images_list = [image(1), image(2), image(3), image(4, w=91)]
    ann, folder = write_coco(tmp_path, images_list, [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 5]},  # zero width
        {"image_id": 1, "category_id": 2, "bbox": [80, 10, 30, 5]},  # past the right border
        {"image_id": 1, "category_id": 3, "bbox": box_at(15, 10)},  # fine: top left
        {"image_id": 2, "category_id": 1, "bbox": box_at(45, 30)},  # its file is deleted below
        {"image_id": 9, "category_id": 1, "bbox": box_at(45, 30)},  # no such image
        {"image_id": 3, "category_id": 7, "bbox": box_at(45, 30)},  # no such category
        {"image_id": 4, "category_id": 1, "bbox": box_at(45, 30)},  # the JPEG is 90 wide, annotated 91
    ])  # fmt: skip
    (folder / images_list[1]["file_name"]).unlink()
    rc, _, _ = build(capsys, ann, folder, tmp_path / "out")
    assert rc == 0
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert [(r["category"], r["answer"]) for r in rows] == [("cat", "top left")]
    skipped = read_manifest(tmp_path / "out")["skipped"]
    assert skipped == {
        "annotation_image_missing": {"count": 1, "first_ids": [5]},
        "annotation_category_unknown": {"count": 1, "first_ids": [6]},
        "zero_size_box": {"count": 1, "first_ids": [1]},
        "box_outside_image": {"count": 1, "first_ids": [2]},
        "image_file_missing": {"count": 1, "first_ids": [2]},
        "image_size_mismatch": {"count": 1, "first_ids": [4]},
    }


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5]}, "image_id 9 is not in 'images'"),
        ({"image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 5]}, "zero or negative"),
        ({"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]}, "not found"),
    ],
)
def test_strict_turns_a_skip_into_a_one_line_error(tmp_path, capsys, bad, needle):
    ann, folder = write_coco(tmp_path, [image(1), image(2)], [{"image_id": 1, "category_id": 2, "bbox": box_at(45, 30)}, bad])
    (folder / image(2)["file_name"]).unlink()
    rc, _, err = build(capsys, ann, folder, tmp_path / "out", "--strict")
    assert_one_line_error(rc, err, needle, "--strict")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


@pytest.mark.parametrize(
    "content, needles",
    [
        ("{not json", ["not valid JSON", "line 1"]),
        ("[1, 2]", ["not a COCO instances file", "list"]),
        ('{"images": [], "annotations": []}', ["no 'categories' list"]),
        ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 0, "height": 5}], "annotations": [], "categories": []}',
         ["images[0] (id 1)", "'width' must be a positive integer"]),
        ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 5}], '
         '"annotations": [{"id": 4, "image_id": 1, "category_id": 1}], "categories": [{"id": 1, "name": "dog"}]}',
         ["annotations[0] (id 4)", "missing 'bbox'"]),
        ('{"images": [], "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}], "categories": []}',
         ["annotations[0] (id 4)", "'bbox' must be 4 finite numbers"]),
        ('{"images": [], "annotations": [], "categories": [{"id": 1}]}', ["categories[0] (id 1)", "'name'"]),
    ],
)  # fmt: skip
def test_malformed_annotation_files_give_one_line_naming_file_and_item(tmp_path, capsys, content, needles):
    path = tmp_path / "instances_bad.json"
    path.write_text(content)
    (tmp_path / "images").mkdir()
    rc, _, err = build(capsys, path, tmp_path / "images", tmp_path / "out")
    assert_one_line_error(rc, err, str(path), *needles)


def test_missing_files_and_folders_give_one_line(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    rc, _, err = build(capsys, tmp_path / "nope.json", tmp_path / "images", tmp_path / "out")
    assert_one_line_error(rc, err, "nope.json", "not found")
    ann, _ = write_coco(tmp_path, [image(1)], [{"image_id": 1, "bbox": box_at(45, 30)}])
    rc, _, err = build(capsys, ann, tmp_path / "no_images", tmp_path / "out")
    assert_one_line_error(rc, err, "no_images")


def test_unknown_category_names_suggest_the_closest(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [image(1)], [{"image_id": 1, "bbox": box_at(45, 30)}])
    rc, _, err = build(capsys, ann, folder, tmp_path / "out", "--categories", "persn")
    assert_one_line_error(rc, err, "'persn'", "--categories", "Did you mean 'person'?")
    rc, _, err = build(capsys, ann, folder, tmp_path / "out", "--exclude-categories", "horse")
    assert_one_line_error(rc, err, "'horse'", "--exclude-categories")


def grid_coco(tmp_path: Path, n_images: int = 90) -> tuple[Path, Path]:
    """One box per image, centres spread over the areas unevenly (more in the centre), 3 categories."""
    images, anns = [], []
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": "shared.jpg", "width": 90, "height": 60})
        area = [4, 4, 4, *range(9)][i % 12]
        row, col = divmod(area, 3)
        cx, cy = 15 + 30 * col + (i % 5) - 2, 10 + 20 * row + (i % 3) - 1
        size = 4 + (i % 4) * 3
        anns.append({"image_id": i + 1, "category_id": 1 + i % 3, "bbox": box_at(cx, cy, size, size)})
    folder = tmp_path / "images"
    folder.mkdir()
    ramp((90, 60)).save(folder / "shared.jpg", format="JPEG")
    for k, a in enumerate(anns):
        a.update(id=k + 1, iscrowd=0)
    path = tmp_path / "instances_grid.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path, folder


def areas_of(path: Path) -> Counter:
    return Counter(read_dataset(path).column("area").to_pylist())


def test_caps_and_balanced_subsets(tmp_path, capsys):
    ann, folder = grid_coco(tmp_path)
    assert build(capsys, ann, folder, tmp_path / "full")[0] == 0
    full = areas_of(tmp_path / "full")
    assert sum(full.values()) == 90 and full[4] > full[0]  # centre bias
    assert build(capsys, ann, folder, tmp_path / "cap", "--per-area-cap", 5)[0] == 0
    assert all(v <= 5 for v in areas_of(tmp_path / "cap").values())
    assert build(capsys, ann, folder, tmp_path / "bal", "--balanced")[0] == 0
    balanced = areas_of(tmp_path / "bal")
    assert sorted(balanced) == list(range(9)) and len(set(balanced.values())) == 1
    manifest = read_manifest(tmp_path / "bal")
    assert manifest["filtered"]["capped"] == 90 - sum(balanced.values())
    assert manifest["area_counts_before_caps"] == [full[a] for a in range(9)]
    assert build(capsys, ann, folder, tmp_path / "cat", "--per-category-cap", 4)[0] == 0
    assert max(Counter(read_dataset(tmp_path / "cat").column("category").to_pylist()).values()) == 4
    # The seed picks which questions fill a cap.
    assert build(capsys, ann, folder, tmp_path / "bal7", "--balanced", "--seed", 7)[0] == 0
    ids = lambda p: read_dataset(p).column("image_id").to_pylist()  # noqa: E731
    assert ids(tmp_path / "bal7") != ids(tmp_path / "bal")
    assert build(capsys, ann, folder, tmp_path / "lim", "--limit", 10)[0] == 0
    assert read_manifest(tmp_path / "lim")["rows"] == 10


def test_box_size_line_margin_and_category_filters(tmp_path, capsys):
    ann, folder = grid_coco(tmp_path)
    assert build(capsys, ann, folder, tmp_path / "big", "--min-box-frac", 0.02)[0] == 0
    table = read_dataset(tmp_path / "big").to_pylist()
    assert table and all(r["bbox"][2] * r["bbox"][3] >= 0.02 * 90 * 60 for r in table)
    assert read_manifest(tmp_path / "big")["filtered"]["below_min_box_frac"] == 90 - len(table)
    assert build(capsys, ann, folder, tmp_path / "dogs", "--categories", "dog,cat")[0] == 0
    assert set(read_dataset(tmp_path / "dogs").column("category").to_pylist()) == {"dog", "cat"}
    assert build(capsys, ann, folder, tmp_path / "nocat", "--exclude-categories", "cat")[0] == 0
    assert set(read_dataset(tmp_path / "nocat").column("category").to_pylist()) == {"dog", "person"}
    rc, _, err = build(capsys, ann, folder, tmp_path / "both", "--categories", "cat", "--exclude-categories", "cat")
    assert_one_line_error(rc, err, "'cat'", "both")


def test_centres_near_a_third_line_are_counted_and_left_out_on_request(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [image(1)], [
        {"image_id": 1, "category_id": 1, "bbox": box_at(31, 10)},  # 1 px (0.011 of the width) right of the line
        {"image_id": 1, "category_id": 2, "bbox": box_at(75, 50)},  # far from every line
    ])  # fmt: skip
    assert build(capsys, ann, folder, tmp_path / "off")[0] == 0
    manifest = read_manifest(tmp_path / "off")
    assert manifest["rows"] == 2 and manifest["near_third_line_by_margin"] == {"0.01": 0, "0.02": 1, "0.05": 1}
    assert read_dataset(tmp_path / "off").column("answer").to_pylist() == ["top center", "bottom right"]
    assert build(capsys, ann, folder, tmp_path / "on", "--line-margin", 0.02)[0] == 0
    manifest = read_manifest(tmp_path / "on")
    assert manifest["rows"] == 1 and manifest["filtered"]["near_third_line"] == 1


def test_nothing_left_is_an_error_not_an_empty_set(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [image(1)], [{"image_id": 1, "bbox": box_at(45, 30)}, {"image_id": 1, "bbox": box_at(10, 10)}])
    rc, _, err = build(capsys, ann, folder, tmp_path / "out")
    assert_one_line_error(rc, err, "no questions left", "not_single")


def test_area_heatmap_is_general(tmp_path):
    from raysweep.plots import area_heatmap

    path = area_heatmap([0.1, 0.5, 1.0] * 3, "accuracy per area", tmp_path / "acc.png", fmt="{:.0%}", cbar_label="accuracy", vmin=0, vmax=1)
    assert Image.open(path).format == "PNG"
    with pytest.raises(ValueError, match="square number"):
        area_heatmap([1, 2, 3], "bad", tmp_path / "bad.png")


# --- images: frames, modes, damage, sizes (inputs built here with PIL) --------------------------------


def tagged_photo(folder: Path, name: str, displayed: Image.Image, orient: int) -> None:
    """A JPEG whose raw pixels are ``displayed`` turned so that EXIF ``orient`` shows it as ``displayed``."""
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orient]
    exif = Image.Exif()
    exif[0x0112] = orient
    displayed.transpose(undo).save(folder / name, format="JPEG", quality=95, exif=exif)


def photo_with_block(size=(120, 60), block=(0, 0, 30, 15)) -> Image.Image:
    """A textured photo with a white block (where the box is)."""
    photo = ramp(size).point(lambda v: v // 3)
    photo.paste((255, 255, 255), block)
    return photo


def decoded_rows(path: Path) -> list[tuple[dict, Image.Image]]:
    return [(r, Image.open(io.BytesIO(r["image"]))) for r in read_dataset(path).to_pylist()]


def test_photo_annotated_as_displayed_is_kept_in_the_displayed_frame(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [], [])
    tagged_photo(folder, "rot.jpg", photo_with_block(), 6)  # raw pixels 60x120, displayed 120x60
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "rot.jpg", "width": 120, "height": 60}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 30, 15], "iscrowd": 0}],
                               "categories": CATEGORIES}))  # fmt: skip
    rc, _, _ = build(capsys, ann, folder, tmp_path / "out")
    assert rc == 0  # was dropped as a size mismatch
    [(row, stored)] = decoded_rows(tmp_path / "out")
    assert row["answer"] == "top left" and (row["width"], row["height"]) == (120, 60)
    assert stored.format == "PNG" and 0x0112 not in stored.getexif()  # re-encoded in the frame, tag gone
    assert stored.size == (120, 60) and min(stored.getpixel((5, 5))) > 200  # the box holds the white block
    images = read_manifest(tmp_path / "out")["images"]["orientation_tagged"]
    assert images == {"displayed_frame": 1, "stored_frame": 0, "ambiguous_took_displayed": 0, "reencoded_png": 1}
    sheet = contact_sheet(tmp_path / "out", n=1, tile=120)
    assert min(sheet.getpixel((5, 30 + 5))) > 200  # the contact sheet shows the same frame (tile centred vertically)


def test_photo_annotated_in_its_raw_frame_keeps_its_raw_pixels(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [], [])
    tagged_photo(folder, "rot.jpg", photo_with_block(), 6)  # the raw frame (60x120) has the block at bottom left
    raw = Image.open(folder / "rot.jpg")
    assert raw.size == (60, 120) and min(raw.convert("RGB").getpixel((5, 115))) > 200
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "rot.jpg", "width": 60, "height": 120}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 90, 15, 30], "iscrowd": 0}],
                               "categories": CATEGORIES}))  # fmt: skip
    assert build(capsys, ann, folder, tmp_path / "out")[0] == 0
    [(row, stored)] = decoded_rows(tmp_path / "out")
    assert row["answer"] == "bottom left"
    # Without the tag every viewer and model sees the raw frame, in which the answer was computed.
    assert 0x0112 not in stored.getexif() and stored.size == (60, 120) and min(stored.getpixel((5, 115))) > 200
    assert read_manifest(tmp_path / "out")["images"]["orientation_tagged"]["stored_frame"] == 1


@pytest.mark.parametrize("orient, size", [(6, (60, 60)), (3, (120, 60))])
def test_frames_of_the_same_size_take_the_displayed_one_and_are_counted(tmp_path, capsys, orient, size):
    ann, folder = write_coco(tmp_path, [], [])
    tagged_photo(folder, "amb.jpg", photo_with_block(size), orient)
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "amb.jpg", "width": size[0], "height": size[1]}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 30, 15], "iscrowd": 0}],
                               "categories": CATEGORIES}))  # fmt: skip
    assert build(capsys, ann, folder, tmp_path / "out")[0] == 0
    [(row, stored)] = decoded_rows(tmp_path / "out")
    assert row["answer"] == "top left" and min(stored.getpixel((5, 5))) > 200
    tagged = read_manifest(tmp_path / "out")["images"]["orientation_tagged"]
    assert tagged["ambiguous_took_displayed"] == 1 and tagged["displayed_frame"] == 1


def test_tagged_photo_of_neither_size_is_a_mismatch_that_names_both_frames(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [image(1)], [{"image_id": 1, "category_id": 2, "bbox": box_at(45, 30)}])
    tagged_photo(folder, "rot.jpg", photo_with_block(), 6)
    ann.write_text(json.dumps({"images": [image(1), {"id": 2, "file_name": "rot.jpg", "width": 121, "height": 60}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": box_at(45, 30), "iscrowd": 0},
                                               {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 30, 15], "iscrowd": 0}],
                               "categories": CATEGORIES}))  # fmt: skip
    assert build(capsys, ann, folder, tmp_path / "out")[0] == 0
    assert read_manifest(tmp_path / "out")["skipped"] == {"image_size_mismatch": {"count": 1, "first_ids": [2]}}
    rc, _, err = build(capsys, ann, folder, tmp_path / "strict", "--strict")
    assert_one_line_error(rc, err, "rot.jpg is 60x120 (120x60 displayed, EXIF orientation 6), annotated 121x60")


def test_high_bit_depth_and_alpha_images_are_kept_and_flat_ones_skipped(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [], [])
    values = (np.add.outer(np.arange(60), np.arange(90)) * 100 + 20000).astype(np.uint16)
    Image.fromarray(values).save(folder / "deep.png")  # 16-bit grey: all white after a bare convert("RGB")
    alpha = np.zeros((60, 90, 4), np.uint8)
    alpha[:, 45:, 3] = 255
    Image.fromarray(alpha, "RGBA").save(folder / "alpha.png")  # content in alpha only: all black after convert("RGB")
    Image.new("RGB", (90, 60), (90, 120, 200)).save(folder / "flat.png")
    Image.fromarray(np.full((60, 90), 40000, np.uint16)).save(folder / "flat16.png")
    names = ["deep.png", "alpha.png", "flat.png", "flat16.png"]
    ann.write_text(json.dumps({"images": [{"id": i + 1, "file_name": n, "width": 90, "height": 60} for i, n in enumerate(names)],
                               "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 2, "bbox": box_at(45, 30), "iscrowd": 0} for i in range(4)],
                               "categories": CATEGORIES}))  # fmt: skip
    assert build(capsys, ann, folder, tmp_path / "out")[0] == 0
    manifest = read_manifest(tmp_path / "out")
    assert manifest["rows"] == 2 and manifest["skipped"] == {"image_blank": {"count": 2, "first_ids": [3, 4]}}
    assert read_dataset(tmp_path / "out").column("image_id").to_pylist() == [1, 2]
    sheet = np.asarray(contact_sheet(tmp_path / "out", n=2, columns=2, tile=90))
    assert sheet[15:75, :90].std() > 10  # the 16-bit tile has its ramp, not a white square
    assert sheet[40, 100].min() == 255 and sheet[40, 170].max() == 0  # alpha tile: white left half, black right


def test_a_truncated_jpeg_is_a_counted_skip_not_a_crash_later(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [image(1), image(2)], [
        {"image_id": 1, "category_id": 2, "bbox": box_at(45, 30)},
        {"image_id": 2, "category_id": 2, "bbox": box_at(45, 30)},
    ])  # fmt: skip
    path = folder / image(2)["file_name"]
    ramp().save(path, format="JPEG", quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    assert Image.open(path).size == (90, 60)  # the header is intact
    assert build(capsys, ann, folder, tmp_path / "out")[0] == 0
    skipped = read_manifest(tmp_path / "out")["skipped"]
    assert list(skipped) == ["image_damaged"] and skipped["image_damaged"]["first_ids"] == [2]
    assert main(["show", str(tmp_path / "out"), "--n", "1", "--out", str(tmp_path / "sheet.png")]) == 0
    rc, _, err = build(capsys, ann, folder, tmp_path / "strict", "--strict")
    assert_one_line_error(rc, err, "images id 2", "does not decode fully", "truncated")


def test_images_outside_a_family_limit_are_skipped_for_every_family(tmp_path, capsys):
    sizes = {"wide.png": (300, 1), "tall.png": (1, 250), "ok.png": (300, 2), "edge.png": (200, 1)}
    ann, folder = write_coco(tmp_path, [], [])
    for name, size in sizes.items():
        ramp(size).save(folder / name)
    ann.write_text(json.dumps({"images": [{"id": i + 1, "file_name": n, "width": w, "height": h} for i, (n, (w, h)) in enumerate(sizes.items())],
                               "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 2, "bbox": [0, 0, 1, 1], "iscrowd": 0} for i in range(4)],
                               "categories": CATEGORIES}))  # fmt: skip
    rc, out, _ = build(capsys, ann, folder, tmp_path / "out")
    assert rc == 0 and "wrote 2 questions" in out
    manifest = read_manifest(tmp_path / "out")
    assert manifest["skipped"] == {"image_outside_family_limits": {"count": 2, "first_ids": [1, 2]}}
    assert manifest["images"]["family_input_limits"]["max_aspect_ratio"] == 200
    assert manifest["images"]["family_input_limits"]["set_by"] == {"max_aspect_ratio": "qwen2-vl"}
    rc, _, err = build(capsys, ann, folder, tmp_path / "strict", "--strict")
    assert_one_line_error(rc, err, "wide.png (300x1)", "aspect ratio 300 is over 200", "qwen2-vl")


# --- duplicate ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "images, annotations, categories, needles",
    [
        ([image(1)], [{"id": 7, "image_id": 1, "bbox": box_at(45, 30)}, {"id": 7, "image_id": 1, "bbox": box_at(10, 10)}], CATEGORIES,
         ["annotations[1] (id 7)", "duplicate annotation id 7"]),
        ([image(1), {**image(1), "file_name": "other.jpg"}], [{"id": 1, "image_id": 1, "bbox": box_at(45, 30)}], CATEGORIES,
         ["images[1] (id 1)", "duplicate image id 1"]),
        ([image(1)], [{"id": 1, "image_id": 1, "bbox": box_at(45, 30)}], [*CATEGORIES, {"id": 2, "name": "horse"}],
         ["categories[3] (id 2)", "duplicate category id 2"]),
    ],
)  # fmt: skip
def test_duplicate_ids_are_one_line_errors_naming_file_and_id(tmp_path, capsys, images, annotations, categories, needles):
    ann, folder = write_coco(tmp_path, images, annotations, categories)
    rc, _, err = build(capsys, ann, folder, tmp_path / "out")
    assert_one_line_error(rc, err, str(ann), *needles, "its own id")
    assert not (tmp_path / "out").exists()


def test_duplicate_annotation_id_is_an_error_even_when_its_image_is_missing(tmp_path, capsys):
    ann, folder = write_coco(tmp_path, [image(1)], [{"id": 3, "image_id": 1, "bbox": box_at(45, 30)}, {"id": 3, "image_id": 9, "bbox": box_at(45, 30)}])
    rc, _, err = build(capsys, ann, folder, tmp_path / "out")
    assert_one_line_error(rc, err, "duplicate annotation id 3")


# --- category names with commas --------------------------------------------------------------------------


def test_a_category_name_with_a_comma_can_be_selected_and_excluded(tmp_path, capsys):
    cats = [{"id": 1, "name": "pot, plant"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "cat"}]
    ann, folder = write_coco(tmp_path, [image(1)], [
        {"image_id": 1, "category_id": 1, "bbox": box_at(15, 10)},
        {"image_id": 1, "category_id": 2, "bbox": box_at(45, 30)},
        {"image_id": 1, "category_id": 3, "bbox": box_at(75, 50)},
    ], categories=cats)  # fmt: skip
    categories = lambda p: read_dataset(p).column("category").to_pylist()  # noqa: E731
    assert build(capsys, ann, folder, tmp_path / "pot", "--category", "pot, plant")[0] == 0
    assert categories(tmp_path / "pot") == ["pot, plant"]
    assert build(capsys, ann, folder, tmp_path / "two", "--category", "pot, plant", "--category", "cat")[0] == 0
    assert categories(tmp_path / "two") == ["pot, plant", "cat"]
    assert build(capsys, ann, folder, tmp_path / "mix", "--categories", "dog,cat", "--category", "pot, plant")[0] == 0
    assert len(categories(tmp_path / "mix")) == 3
    assert build(capsys, ann, folder, tmp_path / "nopot", "--exclude-category", "pot, plant")[0] == 0
    assert categories(tmp_path / "nopot") == ["dog", "cat"]
    rc, _, err = build(capsys, ann, folder, tmp_path / "split", "--categories", "pot, plant")
    assert_one_line_error(rc, err, "unknown category 'pot'", "--category 'pot, plant'")
    rc, _, err = build(capsys, ann, folder, tmp_path / "both", "--category", "pot, plant", "--exclude-category", "pot, plant")
    assert_one_line_error(rc, err, "'pot, plant'", "both")
