"""raysweep stage: a save_pretrained folder staged as a Hub id loads offline from the shared HF_HOME."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.cli import main

REPO = Path(__file__).resolve().parents[1]
REPO_ID = "raysweep-test/tiny-clip"


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """A tiny CLIP written by save_pretrained (model and processor), like a downloaded checkpoint folder."""
    from raysweep.config import load_config
    from raysweep.models import build_model

    folder = tmp_path_factory.mktemp("tiny-clip")
    built = build_model(load_config("configs/models/tiny-clip.yaml").model)
    built.model.save_pretrained(folder)
    built.processor.save_pretrained(folder)
    return folder


def _offline_env(hf_home: Path) -> dict:
    return {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_staged_folder_loads_offline_by_its_hub_id(tmp_path, saved_checkpoint, capsys):
    hf_home = tmp_path / "shared" / "hf"
    assert main(["stage", f"{saved_checkpoint}={REPO_ID}", "--to", str(hf_home)]) == 0
    out = capsys.readouterr().out
    assert f"{REPO_ID}: copied from {saved_checkpoint}" in out and f"HF_HOME={hf_home} HF_HUB_OFFLINE=1" in out
    snapshots = list((hf_home / "hub" / "models--raysweep-test--tiny-clip" / "snapshots").iterdir())
    assert len(snapshots) == 1 and (snapshots[0] / "config.json").is_file()

    # A worker: HF_HOME on the shared folder, no network; the Hub id resolves to the staged files.
    code = ("from raysweep.config import load_config; from raysweep.models import build_model; import torch; "
            f"cfg = load_config('configs/models/tiny-clip.yaml', ['model.checkpoint={REPO_ID}', 'model.seed=7']); "
            "built = build_model(cfg.model); "
            "print(sum(p.numel() for p in built.model.parameters()), "
            "float(next(built.model.parameters()).double().sum()))")  # fmt: skip
    worker = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=_offline_env(hf_home), timeout=300)
    assert worker.returncode == 0, worker.stderr[-3000:]
    from transformers import CLIPModel

    saved = CLIPModel.from_pretrained(saved_checkpoint)
    n_params, first_sum = worker.stdout.split()[-2:]
    assert int(n_params) == sum(p.numel() for p in saved.parameters())
    assert float(first_sum) == pytest.approx(float(next(saved.parameters()).detach().double().sum()))  # the saved weights, not seed 7's

    # Staging the id again, offline, finds it in the shared cache instead of downloading.
    again = subprocess.run([sys.executable, "-m", "raysweep.cli", "stage", REPO_ID, "--to", str(hf_home)], cwd=REPO,
                           capture_output=True, text=True, env=_offline_env(hf_home), timeout=300)  # fmt: skip
    assert again.returncode == 0 and f"{REPO_ID}: already staged" in again.stdout, again.stderr[-2000:]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{folder}", "is a local folder; say which Hub id it stands for: {folder}=ORG/NAME"),
        ("{missing}=org/name", "folder {missing} not found"),
        ("{empty}=org/name", "has no config.json"),
        ("{folder}=not an id", "is not a Hub id"),
    ],
)
def test_bad_checkpoints_are_one_line_and_exit_2(tmp_path, saved_checkpoint, capsys, spec, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    names = {"folder": saved_checkpoint, "missing": tmp_path / "nope", "empty": empty}
    assert main(["stage", spec.format(**names), "--to", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message.format(**names) in err
    assert not (tmp_path / "hf" / "hub").exists()  # nothing is staged when one checkpoint is wrong


def test_hub_download_offline_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "raysweep.cli", "stage", "org/absent-model", "--to", str(tmp_path / "hf")],
                            cwd=REPO, capture_output=True, text=True, env=_offline_env(tmp_path / "hf"), timeout=300)  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "cannot download org/absent-model (HF_HUB_OFFLINE is set)" in line and "a machine that reaches the Hub" in line
