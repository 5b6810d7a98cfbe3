"""The paper's open questions, data side: corruptions, resampling, size and mixing of training rows
(issue 16). Each knob is checked against the scenes themselves, not against its own bookkeeping."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from raysweep.config import load_config
from raysweep.errors import ConfigError, UserError
from raysweep.training.data import train_val_sources

SMALL = ["data.canvas_size=84", "data.antialias=1", "data.split=train", "data.fraction=0.1"]  # 450 training scenes
ONE_COMBO = ["data.canvas_size=84", "data.antialias=1", "data.split=train", "data.shapes=[circle]",
             "data.colors={red: [255, 0, 0]}"]  # 126 training scenes, 14 per area; no data.fraction  # fmt: skip


def sources(*overrides, base=SMALL):
    cfg = load_config(None, base + list(overrides))
    return cfg, *train_val_sources(cfg)


def scene_area(cfg, scene_id: int) -> int:
    """The area of a scene computed from the scene set again (the ground truth)."""
    from raysweep.tasks import task_for

    return task_for(cfg.data).scenes(cfg.data).scene(scene_id).area


def test_label_noise_relabels_exactly_that_share_of_training_rows_and_keeps_the_geometry():
    cfg, train, val = sources("data.label_noise=0.2")
    rows = train.rows(range(len(train)))
    assert len(rows) == 450
    differ = [r for r in rows if r["label"] != scene_area(cfg, r["scene_id"])]
    assert len(differ) == round(450 * 0.2) == 90
    for r in rows:  # area is the true geometry, answer and label what is trained on
        assert r["area"] == scene_area(cfg, r["scene_id"]) == r["true_label"]
        assert r["answer"] == train.task.answer_names[r["label"]]
        assert (r["corruption"] == "label_noise") == (r["label"] != r["area"])
    assert set(Counter(r["area"] for r in rows).values()) == {50}  # the rows themselves are the same scenes
    # validation stays clean
    val_rows = val.rows(range(len(val)))
    assert all(r["label"] == scene_area(cfg, r["scene_id"]) for r in val_rows) and "corruption" not in val_rows[0]


def test_noisy_rows_are_fixed_per_row_and_chosen_by_the_seed():
    _, a, _ = sources("data.label_noise=0.3")
    _, b, _ = sources("data.label_noise=0.3")
    _, c, _ = sources("data.label_noise=0.3", "data.seed=7")
    positions = [5, 0, 17, 400, 5]
    assert [r["label"] for r in a.rows(positions)] == [r["label"] for r in b.rows(positions)]
    assert a.rows([5])[0]["label"] == a.rows(positions)[4]["label"]  # same row, same label, any batch
    noisy = lambda src: {r["scene_id"] for r in src.rows(range(len(src))) if r["corruption"]}  # noqa: E731
    assert len(noisy(a)) == len(noisy(c)) == 135 and noisy(a) != noisy(c)


def test_neighbouring_label_noise_picks_an_adjacent_area():
    _, train, _ = sources("data.label_noise=1.0", "data.label_noise_to=neighbor")
    for r in train.rows(range(len(train))):
        (tr, tc), (nr, nc) = divmod(r["area"], 3), divmod(r["label"], 3)
        assert abs(tr - nr) + abs(tc - nc) == 1


def test_uniform_label_noise_reaches_every_other_area():
    _, train, _ = sources("data.label_noise=1.0")
    rows = train.rows(range(len(train)))
    assert all(r["label"] != r["area"] for r in rows)
    assert {r["label"] for r in rows if r["area"] == 4} == set(range(9)) - {4}


def test_size_is_exact_and_refused_with_fraction():
    _, train, _ = sources("data.size=123", base=ONE_COMBO)
    assert len(train) == 123 == len({r["scene_id"] for r in train.rows(range(123))})  # no repeats
    with pytest.raises(ConfigError, match="data.size: give data.size .* or data.fraction .*not both"):
        load_config(None, ["data.size=100", "data.fraction=0.5"])
    with pytest.raises(UserError, match="data.size: 5000 training questions asked of data.source 'synthetic', which has 126"):
        sources("data.size=5000", base=ONE_COMBO)


def test_area_distribution_explicit_vector_and_uniform():
    weights = [1, 1, 1, 1, 12, 1, 1, 1, 1]  # a centre-biased set, as photos are
    _, train, _ = sources("data.size=200", f"data.area_distribution={weights}", base=ONE_COMBO)
    rows = train.rows(range(len(train)))
    counts = np.bincount([r["area"] for r in rows], minlength=9)
    assert counts.sum() == 200 and counts[4] == 120 and set(counts[[0, 1, 2, 3, 5, 6, 7, 8]]) == {10}
    assert train.summary["repeated"] == 106  # 120 centre rows from the 14 the source holds
    assert len({r["scene_id"] for r in rows if r["area"] == 4}) == 14
    _, uniform, _ = sources("data.size=180", "data.area_distribution=uniform", base=ONE_COMBO)
    assert set(np.bincount(uniform.labels(), minlength=9)) == {20}


def test_area_distribution_coco_reads_the_manifest(tmp_path):
    coco = tmp_path / "coco"
    coco.mkdir()
    before_caps = [10, 20, 10, 20, 60, 20, 10, 20, 10]
    (coco / "manifest.json").write_text(json.dumps({"rows": 180, "area_counts_before_caps": before_caps}))
    _, train, _ = sources("data.size=90", "data.area_distribution=coco", f"data.area_distribution_from={coco}", base=ONE_COMBO)
    assert np.bincount(train.labels(), minlength=9).tolist() == [5, 10, 5, 10, 30, 10, 5, 10, 5]
    with pytest.raises(ConfigError, match="area_distribution_from: data.area_distribution=coco needs"):
        load_config(None, ["data.area_distribution=coco"])


def test_answer_format_noise_rewrites_exactly_that_share_as_phrases_the_parser_reads_back():
    _, train, _ = sources("data.answer_format_noise=0.25")
    rows = train.rows(range(len(train)))
    task = train.task
    rephrased = [r for r in rows if r["answer"] not in task.answer_names]
    assert len(rephrased) == round(450 * 0.25)
    assert all(task.parse(r["answer"]) == r["label"] == r["area"] for r in rephrased)
    assert len({r["answer"].replace(task.answer_names[r["label"]], "{}") for r in rephrased}) >= 3  # several phrasings


@pytest.mark.parametrize("task_overrides", [["data.areas_per_side=2", "data.grid_size=8"], ["data.task=relative_position", "data.distractors=0"]])
def test_corruptions_use_the_task_classes(task_overrides):
    _, train, _ = sources(*task_overrides, "data.label_noise=0.5", "data.answer_format_noise=0.5")
    rows = train.rows(range(len(train)))
    task = train.task
    assert all(0 <= r["label"] < task.n_classes for r in rows)
    assert sum(r["label"] != r["true_label"] for r in rows) == round(len(rows) * 0.5)
    assert all(task.parse(r["answer"]) == r["label"] for r in rows)


@pytest.mark.parametrize("override, message", [
    ("data.label_noise=1.5", "data.label_noise: is a fraction of the training rows and must lie in [0, 1], got 1.5"),
    ("data.area_distribution=skewed", "data.area_distribution: 'skewed' is not allowed; use uniform, coco, or one weight per class"),
    ("data.area_distribution=[1,2,3]", "data.area_distribution: needs one weight per class of task absolute_position (9:"),
    ("data.size=-3", "data.size: must be >= 0"),
    ("data.mix.ratio=0.5", "data.mix.source: data.mix.ratio and data.curriculum need the second source"),
    ("data.mix.source=coco", "data.mix.source: unknown source 'coco'; known: synthetic"),
    ("data.label_noise_to=near", "data.label_noise_to: 'near' is not allowed."),
])  # fmt: skip
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(message)


def test_bad_value_on_the_command_line_is_one_line_exit_2():
    done = subprocess.run([sys.executable, "-m", "raysweep.cli", "config", "configs/train-tiny.yaml", "data.answer_format_noise=2"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "data.answer_format_noise" in done.stderr


# -- mixing and curriculum -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_set(tmp_path_factory):
    """A small Parquet set of other scenes (the 'real' source at tiny scale)."""
    from raysweep.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("mix") / "other"
    cfg = load_config(None, ["data.canvas_size=84", "data.antialias=1", "data.fraction=0.05", "data.seed=3"]).data
    generate(cfg, out, progress=False)
    return out


def test_mix_takes_exactly_the_ratio_from_the_second_source_training_part(second_set):
    _, train, val = sources(f"data.parquet={{other: {second_set}}}", "data.mix.source=other", "data.mix.ratio=0.25")
    rows = train.rows(range(len(train)))
    assert len(rows) == 450
    parquet_rows = [r for r in rows if isinstance(r["image"], (bytes, bytearray))]
    assert len(parquet_rows) == round(450 * 0.25) == train.summary["from_mix"]
    from raysweep.training.data import ParquetRows, stratified_split

    full = ParquetRows(second_set)
    _, other_val = stratified_split(full.labels(), 0.2, 42)
    held_out = {full.rows([int(p)])[0]["scene_id"] for p in other_val}
    assert not held_out & {r["scene_id"] for r in parquet_rows}  # never the second source's validation part
    assert all(not isinstance(r["image"], bytes) for r in val.rows(range(len(val))))  # validation: the primary's only


def test_curriculum_gives_each_epoch_its_phase(second_set):
    cfg, train, _ = sources(f"data.parquet={{other: {second_set}}}", "data.mix.source=other", "data.size=90",
                            "data.curriculum=[{epochs: 2, mix_ratio: 0.0}, {epochs: 1, mix_ratio: 0.5}]", base=ONE_COMBO)  # fmt: skip
    from_mix = [train.for_epoch(e).summary["from_mix"] for e in range(5)]
    assert from_mix == [0, 0, 45, 45, 45] and len(train) == 90
    with pytest.raises(UserError, match="data.curriculum: the training launcher must take each epoch's rows"):
        train.rows([0])


def test_without_any_knob_the_sources_are_untouched():
    from raysweep.training.data import SyntheticRows

    _, train, _ = sources()
    assert type(train) is SyntheticRows and train.for_epoch(3) is train


@pytest.mark.parametrize("override, message", [
    ("data.size=5000", "data.size: 5000 training questions asked of data.source 'synthetic', which has 1296"),
    ("data.area_distribution=coco", "data.area_distribution_from: 'nowhere' is not a readable dataset"),
])  # fmt: skip
def test_preflight_refuses_impossible_training_rows_before_ray(tmp_path, override, message):
    from raysweep.preflight import check_run_inputs

    cfg = load_config("configs/train-tiny.yaml", [override, "data.area_distribution_from=nowhere",
                                                             f"train.storage_path={tmp_path}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"])  # fmt: skip
    with pytest.raises(UserError, match=message):
        check_run_inputs(cfg)


def test_preflight_lets_a_curriculum_through_now_that_the_launcher_switches_phases(tmp_path, second_set):
    import raysweep.launch.train as launcher
    from raysweep.preflight import check_run_inputs

    assert launcher.SWITCHES_CURRICULUM_PHASES
    cfg = load_config("configs/train-tiny.yaml", [f"data.parquet={{other: {second_set}}}", "data.mix.source=other",
                                                  "data.curriculum=[{epochs: 1, mix_ratio: 0.0}, {epochs: 1, mix_ratio: 0.5}]",
                                                  f"train.storage_path={tmp_path}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"])  # fmt: skip
    check_run_inputs(cfg)


def test_generate_writes_the_corrupted_training_rows_with_the_truth_and_the_manifest(tmp_path):
    from raysweep.datasets import open_dataset
    from raysweep.datasets.synthetic import generate
    from raysweep.training.data import ParquetRows

    cfg = load_config(None, ONE_COMBO + ["data.label_noise=0.25", "data.answer_format_noise=0.5"])
    manifest = generate(cfg.data, tmp_path / "noisy", progress=False, rows_per_part=50)
    assert manifest["rows"] == 126 and manifest["corruption"]["relabelled"] == round(126 * 0.25) == 32
    table = open_dataset(tmp_path / "noisy").read()
    labels, truth, area = (table.column(c).to_pylist() for c in ("label", "true_label", "area"))
    assert sum(a != b for a, b in zip(labels, truth)) == 32 and truth == area  # the geometry is the truth
    same = train_val_sources(cfg)[0].rows(range(126))
    assert [r["label"] for r in same] == labels and [r["answer"] for r in same] == table.column("answer").to_pylist()
    assert all(ParquetRows(tmp_path / "noisy", clean=True).labels() == np.asarray(area))  # evaluation reads the truth
    # trained from that set: its training rows keep the noise, its validation rows are clean
    trained = load_config(None, ONE_COMBO + [f"data.parquet={{noisy: {tmp_path / 'noisy'}}}", "data.source=noisy"])
    train, val = train_val_sources(trained)
    assert any(r["label"] != r["area"] for r in train.rows(range(len(train))))
    assert all(r["label"] == r["area"] and r["answer"] in val.task.answer_names for r in val.rows(range(len(val))))
    with pytest.raises(UserError, match="data.split=test: corruptions apply to training rows only"):
        generate(load_config(None, ONE_COMBO + ["data.split=test", "data.label_noise=0.1"]).data, tmp_path / "t", progress=False)


def test_mix_into_a_parquet_source_with_synthetic_scenes(second_set):
    _, train, val = sources(f"data.parquet={{other: {second_set}}}", "data.source=other", "data.mix.source=synthetic",
                            "data.mix.ratio=0.5", base=ONE_COMBO)  # fmt: skip
    rows = train.rows(range(len(train)))
    rendered = [r for r in rows if not isinstance(r["image"], bytes)]
    assert len(rendered) == round(len(rows) * 0.5) and len(rows) == len(train)
    assert all(isinstance(r["image"], bytes) for r in val.rows(range(len(val))))  # validation: the Parquet set's own
