"""COCO Absolute Position sets: the real tinycoco photos, plus small COCO files made here for edge cases."""

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from raysweep.cli import main
from raysweep.config import AREA_NAMES
from raysweep.datasets.audit import audit
from raysweep.datasets.contact_sheet import contact_sheet
from raysweep.datasets.store import read_dataset, read_manifest

TINYCOCO = Path(__file__).parents[2] / "shared" / "data" / "tinycoco"
PREFIX = "Answer using as few words as possible. "


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


def write_coco(tmp_path: Path, images: list[dict], annotations: list[dict], categories=CATEGORIES, jpeg_size=(90, 60)) -> tuple[Path, Path]:
    """A COCO file plus one JPEG per distinct file name (of ``jpeg_size``) in tmp_path/images."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for im in images:
        Image.new("RGB", jpeg_size, (90, 120, 200)).save(folder / im["file_name"], format="JPEG")
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
    Image.new("RGB", (90, 60)).save(folder / "shared.jpg", format="JPEG")
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
