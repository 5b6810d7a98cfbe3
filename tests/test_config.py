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


# -- YAML pitfalls: each one line through the real CLI, exit 2 ----------------------------------


def _cli_error(capsys, *argv) -> str:
    from raysweep.cli import main

    assert main(["config", *map(str, argv)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    return lines[0]


def test_a_duplicate_key_names_file_line_and_key(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("data:\n  split: val\n  seed: 1\n  split: test\n")
    line = _cli_error(capsys, path)
    assert f"config file {path} line 4: duplicate key 'data.split' (first on line 2)" in line


def test_a_duplicate_section_is_refused_too(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("lora:\n  rank: 8\ndata:\n  seed: 1\nlora:\n  alpha: 16\n")
    assert "line 5: duplicate key 'lora' (first on line 1)" in _cli_error(capsys, path)


def test_a_duplicate_key_in_an_included_file_names_that_file(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 1e-4\n  lr: 3e-4\n")
    (tmp_path / "run.yaml").write_text("include: [base.yaml]\ndata:\n  seed: 1\n")
    assert f"config file {tmp_path / 'base.yaml'} line 3: duplicate key 'train.lr'" in _cli_error(capsys, tmp_path / "run.yaml")


def test_a_duplicate_key_in_an_override_value(capsys):
    assert "key 'data.parquet.a' appears twice" in _cli_error(capsys, "configs/data/civet_test.yaml", "data.parquet={a: x, a: y}")


def test_yaml_merge_keys_may_repeat_what_they_merge(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("data:\n  parquet:\n    <<: {a: x, b: y}\n    a: z\n")
    assert load_config(path).data.parquet == {"a": "z", "b": "y"}


def test_a_non_utf8_file_is_named(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("data:\n  seed: 1\n  template: 'Où est le {ref} ?'\n".encode("latin-1"))
    line = _cli_error(capsys, path)
    assert f"config file {path} line 3: not UTF-8" in line and "must be UTF-8" in line


def test_a_utf8_file_with_a_bom_and_accents_loads(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("data:\n  template: 'Où est le {ref} ? {options}'\n".encode("utf-8-sig"))
    assert load_config(path).data.template == "Où est le {ref} ? {options}"


@pytest.mark.parametrize("word", ["no", "off", "yes", "on", "No"])
def test_an_unquoted_yes_no_word_for_a_text_key_says_to_quote_it(tmp_path, capsys, word):
    path = tmp_path / "exp.yaml"
    path.write_text(f"mlflow:\n  experiment: {word}\n")
    line = _cli_error(capsys, path)
    assert line.endswith(f"mlflow.experiment: expected a string, got {'true' if word.lower() in ('yes', 'on') else 'false'}: "
                         f"YAML reads an unquoted {word} as {'true' if word.lower() in ('yes', 'on') else 'false'}; quote it: '{word}'")
    path.write_text(f"mlflow:\n  experiment: '{word}'\n")
    assert load_config(path).mlflow.experiment == word


@pytest.mark.parametrize("override, word", [("data.split=no", "no"), ("data.split=off", "off"), ("data.template=on", "on")])
def test_an_unquoted_yes_no_word_in_an_override_says_to_quote_it(capsys, override, word):
    line = _cli_error(capsys, "configs/data/civet_test.yaml", override)
    assert f"{override.split('=')[0]}: " in line and f"quote it: '{word}'" in line


def test_the_quote_hint_follows_the_file_that_wins(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("mlflow:\n  experiment: on\n")
    (tmp_path / "run.yaml").write_text("include: [base.yaml]\nmlflow:\n  experiment: off\n")
    assert "quote it: 'off'" in _cli_error(capsys, tmp_path / "run.yaml")


def test_a_bool_key_still_takes_yes_and_no(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("lora:\n  vision: yes\n  enabled: off\n")
    cfg = load_config(path)
    assert cfg.lora.vision is True and cfg.lora.enabled is False


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n# and another\n", "---\n", "{}\n"])
def test_an_empty_config_file_is_refused(tmp_path, capsys, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    line = _cli_error(capsys, path)
    assert f"config file {path} is empty" in line


def test_an_empty_included_file_is_refused(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("# TODO\n")
    (tmp_path / "run.yaml").write_text("include: [base.yaml]\ndata:\n  seed: 1\n")
    assert f"config file {tmp_path / 'base.yaml'} is empty" in _cli_error(capsys, tmp_path / "run.yaml")


def test_a_self_referencing_alias_is_an_ordinary_type_error(tmp_path, capsys):
    path = tmp_path / "alias.yaml"
    path.write_text("data:\n  parquet: &a {x: *a}\n")
    assert _cli_error(capsys, path).endswith("data.parquet.x: expected a string, got {'x': {...}}")


def test_config_without_a_file_prints_ray_data_as_the_default_loader(capsys):
    from raysweep.cli import main

    assert main(["config"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("train.data_loader "))
    assert "'ray_data'" in line.split("  ", 1)[1][:40]
