"""The open-question sweep configs (issue 16) at tiny scale: every grid point builds its training rows,
and each arm's rows differ from the reference in exactly the factor it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raysweep._configlib import to_dict
from raysweep.config import load_config
from raysweep.sweep.space import check_space
from raysweep.training.data import train_val_sources



@pytest.fixture(scope="module")
def coco_train(tinycoco, tmp_path_factory) -> Path:
    """The tinycoco train2017 questions as a COCO set (what the tiny configs call coco-full)."""
    from raysweep.datasets.coco import CocoOptions, build_coco

    out = tmp_path_factory.mktemp("coco") / "coco_train2017"
    build_coco(tinycoco / "annotations/instances_train2017.json", tinycoco / "images/train2017", out, CocoOptions(), progress=False)
    return out


def points(path: str):
    cfg = load_config(path)
    trials: list = []
    check_space(to_dict(cfg), cfg.sweep.space, Path("configs"), trials)
    return cfg, trials


@pytest.mark.parametrize("path, n", [("configs/paper/coco_collapse.yaml", 20), ("configs/paper/mixing.yaml", 6),
                                     ("configs/paper/clip_head.yaml", 5), ("configs/paper/tiny/coco_collapse.yaml", 12),
                                     ("configs/paper/tiny/mixing.yaml", 3), ("configs/paper/tiny/clip_head.yaml", 5)])  # fmt: skip
def test_every_grid_point_is_a_valid_trial(path, n):
    _, trials = points(path)
    assert len(trials) == n


def test_collapse_arms_each_change_their_factor_and_both_budgets_exist():
    _, trials = points("configs/paper/coco_collapse.yaml")
    arms = {(t.data.source, str(t.data.area_distribution), t.data.size, t.data.label_noise, t.data.label_noise_to,
             t.data.answer_format_noise) for t in trials}  # fmt: skip
    assert len(arms) == 10
    assert {t.train.steps_per_epoch for t in trials} == {0, 41}
    assert ("coco-full", "uniform", 1296, 0.0, "uniform", 0.0) in arms and ("coco-full", "", 1296, 0.0, "uniform", 0.0) in arms


def _tiny_rows(trial, coco: Path):
    trial.data.canvas_size, trial.data.antialias = 84, 1  # the rows, not the pixels, are under test
    trial.data.parquet["coco-full"] = str(coco)
    return train_val_sources(trial)


def test_tiny_collapse_arms_build_the_rows_they_promise(coco_train):
    _, trials = points("configs/paper/tiny/coco_collapse.yaml")
    seen = {}
    for t in trials:
        if t.train.steps_per_epoch:
            continue
        train, val = _tiny_rows(t, coco_train)
        rows = train.rows(range(len(train)))
        assert len(rows) == 36
        name = (t.data.source, str(t.data.area_distribution), t.data.label_noise, t.data.answer_format_noise)
        seen[name] = rows
        relabelled = sum(r["label"] != r["true_label"] for r in rows)
        assert relabelled == round(36 * t.data.label_noise)
        assert sum(r["answer"] not in train.task.answer_names for r in rows) == round(36 * t.data.answer_format_noise)
    skew = np.bincount([r["label"] for r in seen[("synthetic", "coco", 0.0, 0.0)]], minlength=9)
    assert skew[0] == 0 and skew.argmax() in (4, 7)  # tinycoco: no top-left box; the most boxes are centre / bottom centre
    assert all(isinstance(r["image"], bytes) for r in seen[("coco-full", "", 0.0, 0.0)])  # the photos themselves


def test_tiny_mixing_points_take_their_share_of_photos(coco_train):
    _, trials = points("configs/paper/tiny/mixing.yaml")
    for t in trials:
        train, _ = _tiny_rows(t, coco_train)
        rows = train.rows(range(len(train)))
        assert sum(isinstance(r["image"], bytes) for r in rows) == round(144 * t.data.mix.ratio)
