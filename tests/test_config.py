from pathlib import Path

import pytest

from raysweep.config import RunConfig, load_config
from raysweep.errors import ConfigError, UserError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1] if p.parent.name != "configs" else p.parent)))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# raysweep "), f"{path} must start with the command that runs it"


def test_there_are_configs():
    assert any(p.name == "civet_test.yaml" for p in CONFIGS)


def test_override_types_and_paths():
    cfg = load_config(None, ["data.distractors=3", "data.fraction=0.5", "data.split=val", "lora.rank=8"])
    assert (cfg.data.distractors, cfg.data.fraction, cfg.data.split, cfg.lora.rank) == (3, 0.5, "val", 8)


@pytest.mark.parametrize(
    "override, key, words",
    [
        ("data.distractor=3", "data.distractor", "Did you mean 'distractors'"),
        ("data.split=tets", "data.split", "Did you mean 'test'"),
        ("data.distractors=three", "data.distractors", "expected an integer"),
        ("data.fraction=0", "data.fraction", "(0, 1]"),
        ("data.distractors=80", "data.distractors", "cannot fit"),
        ("data.variants=3", "data.variants", "distractors > 0"),
        ("data.areas_per_side=4", "data.areas_per_side", "must divide"),
        ("data.combos=[{shapes: [hexagon], colors: [red]}]", "data.combos[0].shapes", "hexagon"),
        ("data.colors.red=[300,0,0]", "data.colors.red", "0..255"),
        ("nosuch.key=1", "nosuch", "unknown key"),
    ],
)
def test_bad_values_name_their_key(override, key, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(key + ":")
    assert words in str(err.value)


def test_include_and_override(tmp_path):
    (tmp_path / "base.yaml").write_text("data:\n  distractors: 1\n  seed: 7\n")
    (tmp_path / "run.yaml").write_text("include: [base.yaml]\ndata:\n  distractors: 2\n")
    cfg = load_config(tmp_path / "run.yaml", ["data.seed=9"])
    assert (cfg.data.distractors, cfg.data.seed) == (2, 9)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="key=value"):
        load_config(None, ["data.seed"])
