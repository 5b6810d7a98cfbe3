"""Registry, configs and the models/eval commands."""

import json
from pathlib import Path

import pytest

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.errors import ConfigError, UserError
from raysweep.models import FAMILIES, get_family, list_families, register

REPO = Path(__file__).resolve().parents[1]


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(UserError, match=r"Unknown model family 'qwen2vl'. Did you mean 'qwen2-vl'\? Available: clip, llava-next, molmo, qwen2-vl"):
        get_family("qwen2vl")
    with pytest.raises(ConfigError, match="model.family"):
        load_config(None, ["model.family=llava"])


def test_duplicate_registration_is_an_error():
    get_family("clip")
    with pytest.raises(ValueError, match="already registered"):
        register("clip")(type("Other", (), {}))


def test_models_module_import_is_light():
    import subprocess
    import sys

    code = "import sys, raysweep.config, raysweep.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_every_model_config_loads_and_names_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# raysweep ") and path.name in first
    cfg = load_config(path)
    assert cfg.model.family in FAMILIES
    if path.name.startswith("tiny-"):
        assert cfg.model.checkpoint == "tiny" and path.name == f"tiny-{cfg.model.family}.yaml"


def test_every_family_with_a_tiny_variant_ships_its_config():
    for name in list_families():
        exists = (REPO / "configs" / "models" / f"tiny-{name}.yaml").is_file()
        assert exists == (name != "molmo")


def test_models_command_lists_families(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, (_, default, _) in FAMILIES.items():
        assert name in out and default in out


def test_eval_command_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["generate", "configs/data/civet_test.yaml", "data.fraction=0.01", "data.canvas_size=84", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = tmp_path / "report"
    assert main(["eval", "configs/models/tiny-llava-next.yaml", "eval.max_new_tokens=3", "--data", str(tmp_path / "d"), "--mode", "both", "--limit", "12", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "choice vs generate: agreement" in text
    for mode in ("choice", "generate"):
        body = json.loads((out / mode / "metrics.json").read_text())
        assert body["n"] == 12 and len(body["confusion"]) == 9 and 0 <= body["acc"] <= 1
        assert (out / mode / "acc_by_area.png").stat().st_size > 0 and (out / mode / "pred_share_by_area.png").is_file()
    assert main(["eval", "configs/models/tiny-llava-next.yaml", "--data", str(tmp_path / "d"), "--adapter", str(tmp_path / "none")]) == 2
