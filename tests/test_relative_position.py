"""relative_position: the rule, the balance and its control, the pixels, parsing, the configs and the rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.datasets import open_dataset
from raysweep.datasets.audit import audit
from raysweep.errors import ConfigError
from raysweep.scenes import Renderer
from raysweep.tasks import task_for, task_from_config
from raysweep.tasks.relative_position import RELATIONS, feasible_pairs, relation

REPO = Path(__file__).resolve().parents[1]
L, R, A, B = range(4)


def _scenes(path: str = "configs/data/relative_test.yaml", *overrides: str):
    cfg = load_config(str(REPO / path), list(overrides)).data
    return task_for(cfg).scenes(cfg)


@pytest.mark.parametrize("target, anchor, expected", [
    ((4, 2), (4, 4), L), ((4, 6), (4, 4), R), ((2, 4), (4, 4), A), ((6, 4), (4, 4), B),
    ((5, 1), (4, 4), L),  # 3 columns apart, 1 row: the columns decide
    ((4, 3), (4, 4), None),  # 1 cell apart: too close to ask
    ((2, 2), (4, 4), None),  # as far apart in rows as in columns: no answer
    ((1, 3), (4, 4), A), ((0.1, 0.2), (0.5, 0.25), A),  # normalised image coordinates work the same way
])  # fmt: skip
def test_the_rule(target, anchor, expected):
    gap = 0.2 if isinstance(target[0], float) else 2
    assert relation(target, anchor, gap) == expected


def test_every_relation_is_feasible_in_as_many_cells_and_edges_lose_some():
    pairs = feasible_pairs(9)
    assert len(pairs) == 252 and Counter(label for _, label in pairs) == {L: 63, R: 63, A: 63, B: 63}
    per_cell = Counter(cell for cell, _ in pairs)
    assert {label for cell, label in pairs if cell == 0} == {L, A}  # top-left: never right of or below anything
    assert Counter(per_cell.values()) == {4: 25, 3: 40, 2: 16}


def test_a_reference_near_the_centre_makes_the_relation_follow_from_the_target_cell():
    easy = _scenes("configs/data/relative_train.yaml", "data.reference_within=0", "data.fraction=1.0")
    scenes = [easy[i] for i in range(len(easy))]
    assert {(s.ref_row, s.ref_col) for s in scenes} == {(4, 4)}
    assert set(Counter(s.label for s in scenes).values()) == {len(scenes) // 4}  # still balanced per relation
    by_cell = {}
    for s in scenes:
        by_cell.setdefault((s.row, s.col), set()).add(s.label)
    assert len(by_cell) == 60 and all(len(labels) == 1 for labels in by_cell.values())  # one relation per target cell
    near = _scenes("configs/data/relative_train.yaml", "data.reference_within=1")
    cells = {(near[i].ref_row, near[i].ref_col) for i in range(len(near))}
    assert len(cells) > 1 and all(max(abs(r - 4), abs(c - 4)) <= 1 for r, c in cells)
    assert all(relation((near[i].row, near[i].col), (near[i].ref_row, near[i].ref_col)) == near[i].label for i in range(len(near)))
    assert len(feasible_pairs(9, within=1)) == 120 and len(feasible_pairs(9, within=-1)) == 252


def test_a_reference_sharing_colour_or_shape_leaves_one_attribute_to_tell_them_apart():
    scenes = _scenes("configs/data/relative_train.yaml", "data.reference_shares=colour_or_shape")
    plain = _scenes("configs/data/relative_train.yaml")
    assert len(scenes) == len(plain) and (scenes.labels() == plain.labels()).all()  # the same targets and relations
    kinds = Counter()
    for i in range(len(scenes)):
        s, (shape, colour) = scenes[i], scenes[i].anchor_object[:2]
        assert (shape, colour) != (s.shape, s.color) and (shape == s.shape or colour == s.color)
        kinds["colour" if colour == s.color else "shape"] += 1
    assert kinds["colour"] and kinds["shape"]  # white shapes against white shapes, pluses against pluses
    mixed = [plain[i] for i in range(len(plain)) if plain[i].anchor_object[0] != plain[i].shape and plain[i].anchor_object[1] != plain[i].color]
    assert mixed  # without it, most pairs differ in both (a white shape and a coloured plus)


def test_the_test_and_train_splits_are_balanced_held_out_and_sized_like_the_absolute_ones():
    test, train, val = _scenes(), _scenes("configs/data/relative_train.yaml"), _scenes("configs/data/relative_train.yaml", "data.split=val")
    assert (len(test), len(train), len(val)) == (3888, 1296, 324)
    for scenes in (test, train, val):
        assert set(Counter(scenes.labels().tolist()).values()) == {len(scenes) // 4}
    attrs = [{(s.shape, s.color) for i in range(0, len(x), 7) for s in [x[i]]} | {x[i].anchor_object[:2] for i in range(0, len(x), 7)}
             for x in (test, train)]  # fmt: skip
    assert attrs[0] and attrs[1] and not attrs[0] & attrs[1]  # targets and references alike


def test_the_wide_training_pool_adds_shapes_in_other_colours_and_stays_held_out():
    wide, test = _scenes("configs/data/relative_train_wide.yaml"), _scenes()
    assert len(wide) == 25 * 2 * 252 * 4 // 5  # all of the train part of the pool
    assert set(Counter(wide.labels().tolist()).values()) == {len(wide) // 4}
    trained = {pair for i in range(len(wide)) for s in [wide[i]] for pair in ((s.shape, s.color), s.anchor_object[:2])}
    tested = {(s.shape, s.color) for i in range(0, len(test), 5) for s in [test[i]]}
    assert len(trained) == 25 and not trained & tested
    test_colours = {c for _, c in tested}
    assert {shape for shape, colour in trained if colour in test_colours} == {"plus"}  # "red" is still only ever a plus
    assert {colour for shape, colour in trained if shape == "star"} == {"white", "orange", "purple", "grey"}
    # README's NARROW overrides turn the training config back to relative_train.yaml's scenes
    narrow = ["data.combos=[{shapes: [circle, square, triangle, star], colors: [white]}, "
              "{shapes: [plus], colors: [red, green, blue, magenta, yellow, cyan]}]", "data.fraction=0.3215"]  # fmt: skip
    back, plain = _scenes("configs/train-tiny-relative.yaml", *narrow), _scenes("configs/data/relative_train.yaml")
    assert len(back) == len(plain) == 1296 and all(back[i] == plain[i] for i in range(0, len(plain), 5))


def test_the_full_pool_gives_every_cell_each_relation_it_allows_once_per_combination():
    scenes = _scenes("configs/data/relative_test.yaml", "data.fraction=1.0")
    assert len(scenes) == 24 * 2 * 252
    first = [scenes[i] for i in range(252)]  # one (combination, size): every feasible (cell, relation) once
    assert sorted((s.row * 9 + s.col, s.label) for s in first) == sorted(feasible_pairs(9))
    for s in first:
        assert relation((s.row, s.col), (s.ref_row, s.ref_col)) == s.label
        assert (s.anchor_object[0], s.anchor_object[1]) != (s.shape, s.color)


def test_variants_redraw_the_reference_without_distractors_where_the_absolute_task_refuses_them():
    one = _scenes("configs/data/relative_train.yaml", "data.fraction=1.0", "data.split=all")
    four = _scenes("configs/data/relative_train.yaml", "data.fraction=1.0", "data.split=all", "data.variants=4")
    assert len(four) == 4 * len(one)
    assert set(Counter(four.labels().tolist()).values()) == {len(four) // 4}
    by_target = {}
    for i in range(len(four)):
        s = four[i]
        by_target.setdefault((s.shape, s.color, s.size, s.row, s.col, s.label), []).append(s.anchor_object)
    assert all(len(refs) == 4 for refs in by_target.values())
    assert sum(len(set(refs)) > 1 for refs in by_target.values()) > 0.9 * len(by_target)  # the reference differs
    for s in (four[i] for i in range(0, len(four), 97)):
        assert relation((s.row, s.col), (s.ref_row, s.ref_col)) == s.label
    with pytest.raises(ConfigError, match=r"^data.variants: .*distractors > 0"):
        load_config(None, ["data.variants=2"])  # absolute_position: every variant would be the same scene


def test_the_target_cell_baseline_is_reported_next_to_chance():
    task = task_from_config({"task": "relative_position"})
    rows = [{"cell_row": c // 9, "cell_col": c % 9, "label": lab} for c, lab in feasible_pairs(9)]
    assert task.baselines(rows)["target_cell_baseline"] == pytest.approx(81 / 252)  # 32.1% against 25% chance
    corner = [{"cell_row": 0, "cell_col": 0, "label": L}, {"cell_row": 0, "cell_col": 0, "label": A}]
    assert task.baselines(corner)["target_cell_baseline"] == pytest.approx(0.5)


def _components(pixels: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
    """(mean colour, centre row, centre col) of every connected object in a rendered scene."""
    from scipy import ndimage

    mask = pixels.max(axis=2) > 60
    labels, n = ndimage.label(mask)
    out = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(labels == k)
        if len(ys) < 6:
            continue
        out.append((pixels[ys, xs].mean(axis=0), ys.mean(), xs.mean()))
    return out


def test_labels_agree_with_the_pixels():
    scenes = _scenes("configs/data/relative_test.yaml", "data.fraction=0.02", "data.antialias=1")
    renderer = Renderer(scenes.cfg)
    colours = scenes.cfg.colors
    cell_px = scenes.cfg.canvas_size // scenes.cfg.grid_size
    checked = 0
    for i in range(len(scenes)):
        s = scenes[i]
        if s.color == s.anchor_object[1]:
            continue  # same colour: the two objects are not told apart by colour here
        found = _components(renderer.render(s.objects))
        assert len(found) == 2, f"scene {s.scene_id}: {len(found)} objects found"
        target = min(found, key=lambda f: np.abs(f[0] - colours[s.color]).sum())
        anchor = next(f for f in found if f is not target)
        dy, dx = target[1] - anchor[1], target[2] - anchor[2]
        seen = (R if dx > 0 else L) if abs(dx) > abs(dy) else (B if dy > 0 else A)
        assert RELATIONS[seen] == scenes.answer(s), f"scene {s.scene_id}: pixels say {RELATIONS[seen]}"
        assert max(abs(dx), abs(dy)) > 1.5 * cell_px  # at least 2 cells apart on the asked axis
        checked += 1
    assert checked > len(scenes) * 0.7


def test_distractors_keep_the_question_unambiguous():
    scenes = _scenes("configs/data/relative_test.yaml", "data.fraction=0.01", "data.distractors=3")
    for i in range(len(scenes)):
        s = scenes[i]
        named = {(s.shape, s.color), s.anchor_object[:2]}
        cells = [(o[3], o[4]) for o in s.objects]
        assert len(s.distractors) == 3 and len(set(cells)) == 5
        assert all(d[:2] not in named for d in s.distractors)
    with pytest.raises(ConfigError, match=r"data.distractors: 80 distractors cannot fit in the 79 free cells"):
        load_config(str(REPO / "configs/data/relative_test.yaml"), ["data.distractors=80"])


@pytest.mark.parametrize("text, expected", [
    ("left", L), ("Right.", R), ("ABOVE", A), ("below", B), ("It is to the left of the blue circle.", L),
    ("beneath it", B), ("underneath", B), ("on top of the square", A), ("rightwards", R),
    ("left or above", -1), ("up and to the left", -1), ("in the middle", -1), ("", -1),
])  # fmt: skip
def test_generated_answers_parse_with_the_tasks_synonyms(text, expected):
    task = task_from_config({"task": "relative_position"})
    assert task.parse(text) == expected
    assert task.parse("Left.", "exact") == L and task.parse("to the left", "exact") == -1


def test_config_checks_name_the_key():
    with pytest.raises(ConfigError, match=r"data.template: must contain \{anchor\} for task relative_position"):
        load_config(str(REPO / "configs/data/relative_test.yaml"), ["data.template='Where is the {ref}? [{options}]'"])
    with pytest.raises(ConfigError, match=r"data.grid_size: relative_position needs objects 2 cells apart"):
        load_config(None, ["data.task=relative_position", "data.grid_size=2", "data.areas_per_side=1"])
    with pytest.raises(ConfigError, match=r"data.reference_within: no target cell of the 3x3 grid"):
        load_config(None, ["data.task=relative_position", "data.grid_size=3", "data.areas_per_side=1", "data.reference_within=0"])
    with pytest.raises(ConfigError, match=r"data.reference_within: must be -1 \(anywhere\) or"):
        load_config(None, ["data.task=relative_position", "data.reference_within=-2"])
    with pytest.raises(ConfigError, match=r"data.reference_within: only relative_position has a reference object"):
        load_config(None, ["data.reference_within=0"])
    with pytest.raises(ConfigError, match=r"data.reference_shares: only relative_position has a reference object"):
        load_config(None, ["data.reference_shares=colour_or_shape"])
    with pytest.raises(ConfigError, match=r"data.reference_shares: no other combination shares a colour or shape with red star"):
        load_config(None, ["data.task=relative_position", "data.reference_shares=colour_or_shape",
                           "data.combos=[{shapes: [star], colors: [red]}, {shapes: [circle], colors: [blue]}]"])


def test_the_reference_cell_baseline_is_a_leave_one_out_majority_per_reference_cell():
    from raysweep.tasks.relative_position import reference_cell_baseline

    L, R, A, B = range(4)
    rows = [{"ref_row": 0, "ref_col": 8, "label": L}, {"ref_row": 0, "ref_col": 8, "label": L},
            {"ref_row": 0, "ref_col": 8, "label": A}, {"ref_row": 4, "ref_col": 4, "label": B}]  # fmt: skip
    # each "left" row: the others are one left, one above (a tie: 1/2); the "above" row: two lefts (0);
    # the lone (4, 4) row: nothing to learn from (1/4)
    assert reference_cell_baseline(rows, 4) == pytest.approx((0.5 + 0.5 + 0 + 0.25) / 4)
    assert reference_cell_baseline(rows[:2] * 3, 4) == 1.0 and reference_cell_baseline([], 4) == 0.0


def test_the_reference_cell_gives_the_relation_away_where_the_target_cell_does_not():
    """The sets are balanced per target cell, not per reference cell: both controls are reported, and
    the reference's is far above chance (README, Tasks)."""
    from raysweep.training.data import SyntheticRows

    source = SyntheticRows(load_config(str(REPO / "configs/data/relative_test.yaml"), ["data.canvas_size=84"]).data)
    baselines = source.task.baselines(source.rows(range(0, len(source), 3)))
    assert baselines["target_cell_baseline"] == pytest.approx(0.32, abs=0.02)
    assert baselines["reference_cell_baseline"] > 0.6
    assert "reference_cell_baseline" not in source.task.baselines([{"cell_row": 0, "cell_col": 0, "label": 0}])


def test_reference_weights_draw_every_reference_slot_equally_and_keep_every_target_slot():
    from raysweep.tasks.relative_position import feasible_pairs, reference_weights

    weights = reference_weights(9)
    assert sorted(weights) == sorted(feasible_pairs(9))
    counts = np.zeros((81, 4))
    for (cell, label), (cells, p) in weights.items():
        assert p.sum() == pytest.approx(1.0) and (p > 0).all()
        assert all(relation(divmod(cell, 9), divmod(int(a), 9)) == label for a in cells)
        np.add.at(counts, (cells, label), p)
    reference_slots = counts[counts > 1e-9]
    assert len(reference_slots) == 252 and np.abs(reference_slots - 1).max() < 0.002  # as many as target slots, each drawn once
    # the price of exact balance on a bounded grid: the pairs are 2 cells apart on the asked axis
    gap2 = sum(p[[abs(divmod(cell, 9)[label < 2] - divmod(int(a), 9)[label < 2]) == 2 for a in cells]].sum()
               for (cell, label), (cells, p) in weights.items())  # fmt: skip
    assert gap2 / len(weights) > 0.99


def test_reference_balance_takes_the_reference_cells_shortcut_away_and_leaves_the_default_scenes_alone():
    from raysweep.tasks import task_for

    def scene_set(*overrides):
        cfg = load_config(str(REPO / "configs/data/relative_test.yaml"), list(overrides)).data
        return task_for(cfg), task_for(cfg).scenes(cfg)

    task, default = scene_set()
    # the default draw is what it was before reference_balance existed (the splits' scenes, README's numbers)
    assert [(default.scene(i).ref_row, default.scene(i).ref_col) for i in (0, 1, 777, 5000, 12095)] == [(2, 5), (7, 4), (1, 0), (2, 6), (1, 5)]
    _, balanced = scene_set("data.reference_balance=target_and_reference")
    for name, scenes in (("default", default), ("balanced", balanced)):
        rows = []
        for i in range(0, scenes.pool_size, 5):  # 5 is coprime to the 252 (cell, relation) slots: every slot is visited
            sc = scenes.scene(i)
            assert relation((sc.row, sc.col), (sc.ref_row, sc.ref_col)) == sc.label
            rows.append({"cell_row": sc.row, "cell_col": sc.col, "ref_row": sc.ref_row, "ref_col": sc.ref_col, "label": sc.label})
        baselines = task.baselines(rows)
        assert baselines["target_cell_baseline"] == pytest.approx(0.321, abs=0.01)
        if name == "default":
            assert baselines["reference_cell_baseline"] > 0.6
        else:
            assert baselines["reference_cell_baseline"] < 0.36
    with pytest.raises(ConfigError, match=r"data.reference_balance: only relative_position has a reference object"):
        load_config(None, ["data.reference_balance=target_and_reference"])


def test_generate_writes_rows_with_label_and_the_reference_cell(tmp_path):
    out = tmp_path / "rel"
    assert main(["generate", str(REPO / "configs/data/relative_test.yaml"), "data.fraction=0.01", "data.canvas_size=84",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    dataset = open_dataset(out)
    assert dataset.task.name == "relative_position"
    rows = dataset.read().to_pylist()
    assert len(rows) == 120
    for r in rows:
        assert r["answer"] == RELATIONS[r["label"]] and "relative to the" in r["question"]
        assert relation((r["cell_row"], r["cell_col"]), (r["ref_row"], r["ref_col"])) == r["label"]
        assert r["area"] == (r["cell_row"] // 3) * 3 + r["cell_col"] // 3  # area: the target's 3x3 area
        assert json.loads(r["distractors"])[0]["role"] == "reference" and r["n_distractors"] == 0
    report = audit(out)
    assert report["answer_names"] == list(RELATIONS) and report["area"]["counts"] == [30, 30, 30, 30]


def test_training_rows_carry_the_reference_cell_rendered_or_read_from_parquet(tmp_path):
    """The rows the loop and evaluation see keep ``ref_row``/``ref_col`` (benchmarks/relative_by_pair.py
    groups accuracy by the distance along the asked axis); an absolute set's rows carry None."""
    from raysweep.training.data import ParquetRows, SyntheticRows

    cfg = load_config(str(REPO / "configs/data/relative_test.yaml"), ["data.fraction=0.01", "data.canvas_size=84"]).data
    rendered = SyntheticRows(cfg).rows(range(40))
    for r in rendered:
        assert relation((r["cell_row"], r["cell_col"]), (r["ref_row"], r["ref_col"])) == r["label"]
    out = tmp_path / "rel"
    assert main(["generate", str(REPO / "configs/data/relative_test.yaml"), "data.fraction=0.01", "data.canvas_size=84",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    read = ParquetRows(out).rows(range(40))
    assert [(r["scene_id"], r["ref_row"], r["ref_col"]) for r in read] == [(r["scene_id"], r["ref_row"], r["ref_col"]) for r in rendered]
    absolute = SyntheticRows(load_config(None, ["data.fraction=0.01", "data.canvas_size=84"]).data).rows(range(3))
    assert [(r["ref_row"], r["ref_col"]) for r in absolute] == [(None, None)] * 3


# --- COCO Relative Position ------------------------------------------------------------------------


def _pairs_coco(tmp_path):
    """Images with two single objects each, at known places (90x60 images), plus pairs the rule refuses."""
    from tests.test_coco import box_at, image, write_coco

    layouts = [  # (person centre, dog centre) -> where the person is relative to the dog, and the reverse
        ((10, 30), (80, 30)),  # person left of dog
        ((80, 28), (10, 32)),  # person right of dog
        ((45, 5), (47, 55)),  # person above dog
        ((44, 55), (46, 5)),  # person below dog
        ((40, 30), (46, 30)),  # 6 px apart of 90: under --min-separation 0.1, no question
        ((20, 10), (65, 40)),  # 50% apart across, 50% down: as far along both axes, no question
    ]
    images, anns = [], []
    for i, (person, dog) in enumerate(layouts, start=1):
        images.append(image(i))
        anns += [{"image_id": i, "category_id": 1, "bbox": box_at(*person)}, {"image_id": i, "category_id": 2, "bbox": box_at(*dog)}]
    anns.append({"image_id": 1, "category_id": 3, "bbox": box_at(12, 33)})  # a cat by the person
    anns.append({"image_id": 1, "category_id": 3, "bbox": box_at(60, 50)})  # ... and a second cat: cats not asked
    return write_coco(tmp_path, images, anns)


def test_the_coco_relative_builder_asks_about_pairs_by_the_rule_balanced_per_relation(tmp_path, capsys):
    ann, folder = _pairs_coco(tmp_path)
    out = tmp_path / "rel"
    rc = main(["coco", "--task", "relative_position", "--annotations", str(ann), "--images", str(folder), "--out", str(out), "--quiet"])
    assert rc == 0 and "per relation [2, 2, 2, 2]" in capsys.readouterr().out
    dataset = open_dataset(out)
    assert dataset.task.name == "relative_position"
    rows = dataset.read().to_pylist()
    got = sorted((r["image_id"], r["category"], json.loads(r["distractors"])[0]["category"], r["answer"]) for r in rows)
    assert got == [(1, "dog", "person", "right"), (1, "person", "dog", "left"), (2, "dog", "person", "left"), (2, "person", "dog", "right"),
                   (3, "dog", "person", "below"), (3, "person", "dog", "above"), (4, "dog", "person", "above"), (4, "person", "dog", "below")]
    for r in rows:
        assert r["question"].startswith(f"Where is the {r['category']} relative to the ") and r["label"] == RELATIONS.index(r["answer"])
        assert r["ref_row"] is not None and r["ref_col"] is not None
    manifest = dataset.manifest
    assert manifest["relation_counts"] == [2, 2, 2, 2] and manifest["counts"]["pairs_before_balance"] == 8
    # a looser separation admits image 5's pair, which unbalances the relations: the balance trims them back
    rc = main(["coco", "--task", "relative_position", "--min-separation", "0.05", "--annotations", str(ann), "--images", str(folder),
               "--out", str(tmp_path / "loose"), "--quiet"])  # fmt: skip
    loose = open_dataset(tmp_path / "loose").manifest
    assert rc == 0 and loose["relation_counts_before_balance"] == [3, 3, 2, 2] and loose["relation_counts"] == [2, 2, 2, 2]


def test_the_coco_relative_builder_refuses_what_cannot_be_balanced(tmp_path, capsys):
    from tests.test_coco import box_at, image, write_coco

    ann, folder = write_coco(tmp_path, [image(1)], [
        {"image_id": 1, "category_id": 1, "bbox": box_at(10, 30)}, {"image_id": 1, "category_id": 2, "bbox": box_at(80, 30)},
    ])  # fmt: skip
    rc = main(["coco", "--task", "relative_position", "--annotations", str(ann), "--images", str(folder), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no balanced pairs left (no pair says 'above'" in err
    rc = main(["coco", "--task", "relative_positon", "--annotations", str(ann), "--images", str(folder), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and "Did you mean 'relative_position'?" in capsys.readouterr().err


def test_the_tiny_relative_training_config_trains_on_relative_and_tests_on_the_held_out_split():
    from raysweep.preflight import check_run_inputs
    from raysweep.tasks import training_task

    cfg = load_config(str(REPO / "configs/train-tiny-relative.yaml"))
    assert training_task(cfg.data).name == "relative_position" and cfg.data.split == "train"
    test_sets = [s for s in cfg.train.eval_sets if s.config == "configs/data/relative_test.yaml"]
    assert len(test_sets) == 1 and task_for(load_config(str(REPO / test_sets[0].config)).data).name == "relative_position"
    assert check_run_inputs(cfg) == []  # the pre-flight (LoRA targets against the tiny model's modules included) passes


def test_the_eval_table_shows_the_bias_index_and_the_baseline_next_to_the_accuracy():
    from raysweep import metrics
    from raysweep.evaluate import format_table

    task = task_from_config({"task": "relative_position"})
    rows = [{"cell_row": 0, "cell_col": 0, "label": L}, {"cell_row": 4, "cell_col": 4, "label": R},
            {"cell_row": 4, "cell_col": 4, "label": A}, {"cell_row": 4, "cell_col": 4, "label": B}]  # fmt: skip
    result = metrics.summary([L, R, A, B], [L, R, B, A], task) | task.baselines(rows) | {"mode": "choice", "rows_per_s": 1.0}
    text = format_table(result, task)
    assert "acc 50.0%" in text and "mirror rate 50.0%" in text  # above and below swapped
    assert f"target cell baseline {(0.5 + 3 * 0.25) / 4:.1%}" in text
    assert "left 100.0%  right 100.0%  above 0.0%  below 0.0%" in text
