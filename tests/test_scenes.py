import hashlib
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.datasets import read_dataset, read_manifest
from raysweep.datasets.synthetic import generate
from raysweep.scenes import Layout, Renderer, SceneSet
from raysweep.tasks import task_for

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"


def data_cfg(*overrides, path=None):
    return load_config(path, list(overrides)).data


def test_paper_split_sizes_and_exact_balance():
    test = SceneSet(data_cfg(path=CONFIGS / "civet_test.yaml"))
    assert len(test) == 3888
    scenes = [test[i] for i in range(len(test))]
    assert set(Counter(s.area for s in scenes).values()) == {432}
    assert set(Counter(s.shape for s in scenes).values()) == {972}
    assert set(Counter(s.color for s in scenes).values()) == {648}
    assert set(Counter(s.size for s in scenes).values()) == {1944}
    assert set(Counter((s.row, s.col) for s in scenes).values()) == {48}

    train = SceneSet(data_cfg(path=CONFIGS / "civet_train.yaml"))
    val = SceneSet(data_cfg("data.split=val", path=CONFIGS / "civet_train.yaml"))
    assert train.pool_size == 1620 and len(train) + len(val) == 1620
    assert len(val) == 324
    for part in (train, val):
        assert len(set(Counter(part[i].area for i in range(len(part))).values())) == 1


def test_splits_are_disjoint_by_attribute_combination():
    test = SceneSet(data_cfg(path=CONFIGS / "civet_test.yaml"))
    train = SceneSet(data_cfg(path=CONFIGS / "civet_train.yaml"))
    val = SceneSet(data_cfg("data.split=val", path=CONFIGS / "civet_train.yaml"))
    test_combos = {(test[i].shape, test[i].color) for i in range(len(test))}
    train_combos = {(s.shape, s.color) for part in (train, val) for s in (part[i] for i in range(len(part)))}
    assert test_combos.isdisjoint(train_combos)
    assert len(test_combos) == 24 and len(train_combos) == 10
    assert set(train.ids).isdisjoint(val.ids)


@pytest.mark.parametrize("fraction, size", [(0.01, 36), (0.05, 198), (1 / 9, 432)])
def test_balanced_subsets(fraction, size):
    scenes = SceneSet(data_cfg(f"data.fraction={fraction}", path=CONFIGS / "civet_test.yaml"))
    assert len(scenes) == size
    rows = [scenes[i] for i in range(len(scenes))]
    assert set(Counter(s.area for s in rows).values()) == {size // 9}
    for attr, n_values in (("shape", 4), ("color", 6), ("size", 2)):
        counts = Counter(getattr(s, attr) for s in rows)
        assert len(counts) == n_values, attr
        assert max(counts.values()) - min(counts.values()) <= 2, (attr, counts)
        if size % (48 * 9) == 0:  # a whole number of scenes per (combination, size, area)
            assert len(set(counts.values())) == 1
    # another seed picks other scenes, with the same balance
    other = SceneSet(data_cfg(f"data.fraction={fraction}", "data.seed=7", path=CONFIGS / "civet_test.yaml"))
    assert len(other) == size and list(other.ids) != list(scenes.ids)


def _target_pixels_cell(image: np.ndarray, rgb, layout: Layout):
    match = np.all(image == np.asarray(rgb, np.uint8), axis=-1)
    ys, xs = np.nonzero(match)
    assert len(ys), "target colour not found in the image"
    cy, cx = ys.mean(), xs.mean()
    return int((cy - layout.margin) // layout.cell_px), int((cx - layout.margin) // layout.cell_px)


def test_labels_agree_with_pixels():
    cfg = data_cfg(path=CONFIGS / "civet_test.yaml")
    scenes, renderer = SceneSet(cfg), Renderer(cfg)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(scenes), size=60, replace=False):
        scene = scenes[int(pos)]
        image = renderer.render(scene.objects)
        row, col = _target_pixels_cell(image, cfg.colors[scene.color], renderer.layout)
        assert (row, col) == (scene.row, scene.col)
        assert renderer.layout.area_of_cell(row, col) == scene.area
        assert scenes.answer(scene) == scenes.task.answer_names[scene.area]
        # background elsewhere
        assert image[0, 0].tolist() == cfg.background


def test_rendering_is_antialiased_and_sized():
    cfg = data_cfg()
    renderer = Renderer(cfg)
    img = renderer.render([("circle", "red", "large", 4, 4)])
    reds = np.unique(img[..., 0])
    assert len(reds) > 3, "edges should blend with the background"
    big = (renderer.render([("square", "red", "large", 0, 0)])[..., 0] > 127).sum()
    small = (renderer.render([("square", "red", "small", 0, 0)])[..., 0] > 127).sum()
    cell = renderer.layout.cell_px
    assert abs(big / cell**2 - 0.86**2) < 0.05 and abs(small / cell**2 - 0.5**2) < 0.05


def test_distractor_rules():
    cfg = data_cfg("data.distractors=5", "data.variants=3", path=CONFIGS / "civet_train.yaml")
    scenes = SceneSet(cfg)
    assert len(scenes) == 1296 * 3
    layouts = set()
    for pos in range(0, len(scenes), 7):
        s = scenes[pos]
        assert len(s.distractors) == 5
        cells = [(r, c) for *_, r, c in s.distractors]
        assert len(set(cells)) == 5 and (s.row, s.col) not in cells
        for shape, color, size, r, c in s.distractors:
            assert scenes.layout.area_of_cell(r, c) != s.area
            assert (shape, color) != (s.shape, s.color)
            assert size in cfg.sizes
        layouts.add((s.shape, s.color, s.size, s.row, s.col, tuple(cells)))
    assert len(layouts) > 1


def test_question_prompt_and_option_shuffle():
    scenes = SceneSet(data_cfg(path=CONFIGS / "civet_test.yaml"))
    s0, s1 = scenes[0], scenes[1]
    q = scenes.question(s0)
    assert q.startswith(f"Where is the {s0.color} {s0.shape}? Choose from [") and q.endswith("].")
    assert scenes.prompt(s0) == "Answer using as few words as possible. " + q
    assert sorted(s0.options) == sorted(scenes.task.answer_names)
    assert s0.options != s1.options or scenes[2].options != s0.options


_HASH_SNIPPET = """
import hashlib, sys
from raysweep.config import load_config
from raysweep.scenes import SceneSet, Renderer, encode_png
cfg = load_config(None, ["data.distractors=3", "data.variants=2", "data.fraction=0.1"]).data
s, r = SceneSet(cfg), Renderer(cfg)
ids = [int(x) for x in sys.argv[1:]]
for i in ids:
    sc = s.scene(i)
    print(i, hashlib.sha256(encode_png(r.render(sc.objects)) + repr(sc).encode()).hexdigest())
"""


def test_scene_is_a_pure_function_of_config_and_id():
    ids = ["5", "77", "1234", "3"]
    a = subprocess.run([sys.executable, "-c", _HASH_SNIPPET, *ids], capture_output=True, text=True, check=True).stdout
    b = subprocess.run([sys.executable, "-c", _HASH_SNIPPET, *reversed(ids)], capture_output=True, text=True, check=True).stdout
    assert sorted(a.splitlines()) == sorted(b.splitlines()) and len(a.splitlines()) == 4


def _multiset(path):
    t = read_dataset(path, columns=["scene_id", "image"])
    return Counter(zip(t.column("scene_id").to_pylist(), (hashlib.sha256(b).hexdigest() for b in t.column("image").to_pylist())))


def test_generate_cli_end_to_end_and_sharding(tmp_path, capsys):
    args = ["configs/data/civet_train.yaml", "data.distractors=3", "data.fraction=0.1", "--quiet", "--rows-per-part", "50"]
    cfg_path = str(CONFIGS / "civet_train.yaml")
    args[0] = cfg_path
    assert main(["generate", *args, "--out", str(tmp_path / "one")]) == 0
    assert main(["generate", *args, "--out", str(tmp_path / "three"), "--workers", "3"]) == 0
    assert _multiset(tmp_path / "one") == _multiset(tmp_path / "three")
    manifest = read_manifest(tmp_path / "one")
    assert manifest["rows"] == 126 and manifest["config"]["distractors"] == 3
    table = read_dataset(tmp_path / "one")
    required = {"scene_id", "split", "image", "width", "height", "question", "prompt", "answer", "area", "cell_row",
                "cell_col", "shape", "color", "size", "n_distractors", "distractors", "seed"}  # fmt: skip
    assert required <= set(table.column_names)
    row = table.slice(0, 1).to_pylist()[0]
    assert Image.open(io.BytesIO(row["image"])).size == (336, 336)
    assert len(json.loads(row["distractors"])) == 3 == row["n_distractors"]
    assert row["answer"] == task_for(load_config(None).data).answer_names[row["label"]]
    assert row["split"] == "train"

    # an existing dataset is not overwritten by accident; nothing half-written remains
    assert main(["generate", *args, "--out", str(tmp_path / "one")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial*"))

    assert main(["audit", str(tmp_path / "one")]) == 0
    out = capsys.readouterr().out
    assert "14       14       14" in out and "chi-square p (uniform): 1" in out
    assert main(["show", str(tmp_path / "one"), "--n", "4"]) == 0
    assert Image.open(tmp_path / "one" / "contact_sheet.png").size[0] > 0


def test_incomplete_dataset_is_refused(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "part-00000.parquet").write_bytes(b"")
    assert main(["audit", str(tmp_path / "half")]) == 2
    err = capsys.readouterr().err
    assert "no manifest.json" in err and len(err.strip().splitlines()) == 1


def test_bad_config_exits_2_before_writing(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["generate", str(CONFIGS / "civet_test.yaml"), "data.distractors=100", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "data.distractors" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["generate", str(tmp_path / "missing.yaml"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    import raysweep.datasets.synthetic as syn

    calls = {"n": 0}
    real = syn._write_part

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*a, **k)

    monkeypatch.setattr(syn, "_write_part", flaky)
    cfg = data_cfg("data.fraction=0.1", path=CONFIGS / "civet_train.yaml")
    with pytest.raises(RuntimeError):
        generate(cfg, tmp_path / "ds", rows_per_part=20, progress=False)
    assert not (tmp_path / "ds").exists()
    assert not list(tmp_path.iterdir())
