"""Pre-flight: what only failed late (in a trial, a worker, after training) fails before Ray starts.

Run-lifecycle issue, item 1 (the driver-side stage): the whole sweep space over its range and type,
files named by the config, device strings, LoRA targets on the model's module names, MLflow's name
rules and a reachable tracking server.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.errors import UserError
from raysweep.preflight import check_checkpoint_folder, check_lora_targets, check_run_inputs
from raysweep.sweep.space import check_points, grid_points, trial_count

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TRAIN = str(CONFIGS / "train-tiny.yaml")


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if a command gets as far as starting training or a sweep."""
    import raysweep.launch.sweep as sweep_launch
    import raysweep.launch.train as train_launch

    def started(*args, **kwargs):
        raise AssertionError("Ray work started before the bad input was found")

    monkeypatch.setattr(train_launch, "run_training", started)
    monkeypatch.setattr(sweep_launch, "run_sweep", started)


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_sampled_axes_are_samples_not_grid_points():
    space = {"lora.rank": {"choice": [8, 16]}, "train.lr": {"grid": [1e-3, 1e-4, 1e-5]}, "train.weight_decay": {"uniform": [0.0, 0.1]}}
    assert len(grid_points(space)) == 3 and trial_count(space, 2) == 6
    assert trial_count({"lora.rank": {"choice": [8, 16]}}, 2) == 2  # the README's own example shape
    points = check_points(space)
    assert {p["lora.rank"] for p in points} == {8, 16} and {p["train.lr"] for p in points} == {1e-3, 1e-4, 1e-5}
    decay = sorted({p["train.weight_decay"] for p in points})
    assert decay[0] == 0.0 and decay[-1] == 0.1 and len(decay) == 3


def test_a_sampled_range_is_checked_over_its_whole_range_and_type(capsys, no_ray):
    line = _fails(capsys, ["sweep", str(CONFIGS / "quickstart.yaml"), "sweep.space={lora.rank: {uniform: [4, 41]}}"],
                  "sweep point", "lora.rank", "expected an integer")  # fmt: skip
    assert "lora.rank from uniform [4, 41]" in line
    _fails(capsys, ["sweep", str(CONFIGS / "quickstart.yaml"), "sweep.space={data.distractors: {randint: [0, 200]}}"],
           "'data.distractors': 199")  # fmt: skip


def test_every_choice_value_is_checked(capsys, no_ray):
    _fails(capsys, ["sweep", str(CONFIGS / "quickstart.yaml"), "sweep.space={data.distractors: {choice: [0, 100]}}"],
           "'data.distractors': 100", "distractors")  # fmt: skip


def test_files_named_by_the_config(capsys, no_ray, tmp_path):
    _fails(capsys, ["train", TRAIN, f"train.deepspeed_config={tmp_path}/nosuch.json"], "train.deepspeed_config", "not found")
    (tmp_path / "bad.json").write_text("{zero: ")
    _fails(capsys, ["train", TRAIN, f"train.deepspeed_config={tmp_path}/bad.json"], "not valid JSON")


def test_device_strings(capsys, no_ray):
    _fails(capsys, ["train", TRAIN, "model.device=gpu0"], "model.device", "not a torch device")
    _fails(capsys, ["train", TRAIN, "model.device=cuda", "train.use_gpu=false"], "model.device=cuda", "train.use_gpu")
    cfg = load_config(TRAIN, ["model.device=cuda:1"])
    assert cfg.model.device == "cuda:1"


def test_eval_checks_the_device_on_this_machine(capsys, no_ray, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: model.device=cuda is fine here")
    _fails(capsys, ["eval", str(CONFIGS / "models/tiny-llava-next.yaml"), "--data", str(tmp_path), "model.device=cuda"],
           "model.device=cuda", "no CUDA GPU is visible here")  # fmt: skip


def test_lora_targets_that_match_no_module(capsys, no_ray):
    _fails(capsys, ["train", TRAIN, "lora.targets=[q_proj, vv_proj]"], "lora.targets", "'vv_proj'", "Did you mean 'v_proj'")
    _fails(capsys, ["train", TRAIN, "lora.targets=[.*attention.*qkv_proj$]"], "matches no module")
    cfg = load_config(TRAIN, ["lora.targets=[q_proj, v_proj]"])
    assert check_lora_targets(cfg.model, cfg.lora) is None


def test_lora_targets_of_a_checkpoint_folder_are_read_on_the_meta_device(tmp_path):
    """A real-checkpoint path: the architecture comes from config.json, no weights are read."""
    from raysweep.models import get_family

    cfg = load_config(TRAIN, [])
    built = get_family("llava-next").build(cfg.model)
    built.model.config.save_pretrained(tmp_path)  # config.json only
    good = load_config(TRAIN, [f"model.checkpoint={tmp_path}"])
    assert check_lora_targets(good.model, good.lora) is None
    bad = load_config(TRAIN, [f"model.checkpoint={tmp_path}", "lora.targets=[q_prj]"])
    with pytest.raises(UserError, match="'q_prj' matches no module"):
        check_lora_targets(bad.model, bad.lora)


def test_a_checkpoint_folder_without_weights_is_not_told_to_hf_download(tmp_path, capsys, no_ray):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_next"}))
    line = _fails(capsys, ["train", TRAIN, f"model.checkpoint={tmp_path}"], "no weights", "*.safetensors")
    assert "hf download" not in line
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_checkpoint_folder(load_config(TRAIN, [f"model.checkpoint={tmp_path}"]).model)


def test_a_hub_checkpoint_not_available_offline_is_a_note(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(TRAIN, ["model.checkpoint=llava-hf/no-such-model-anywhere"])
    note = check_lora_targets(cfg.model, cfg.lora)
    assert "not available offline" in note and "not checked" in note


def test_mlflow_names(capsys, no_ray):
    _fails(capsys, ["train", TRAIN, "mlflow.alias=v2"], "mlflow.alias='v2'", "reserved")
    _fails(capsys, ["train", TRAIN, "mlflow.alias=latest"], "mlflow.alias='latest'")
    _fails(capsys, ["train", TRAIN, "mlflow.registered_model=team/model"], "mlflow.registered_model")


def test_an_unreachable_tracking_server_fails_in_seconds(capsys, no_ray):
    started = time.time()
    _fails(capsys, ["train", TRAIN, "mlflow.tracking_uri=http://127.0.0.1:9"], "http://127.0.0.1:9", "does not answer")
    assert time.time() - started < 120  # not Ray's start-up plus minutes of MLflow retries


def test_a_sweep_point_with_a_bad_lora_target_in_an_included_family(capsys, no_ray, tmp_path):
    """Sweeps over families check each family's targets (the same list cannot fit CLIP and LLaVA alike)."""
    cfg = load_config(CONFIGS / "families-tiny.yaml", [])
    notes = check_run_inputs(cfg, sweep=True, configs_root=CONFIGS)
    assert notes == []
    _fails(capsys, ["sweep", str(CONFIGS / "families-tiny.yaml"), "lora.targets=[qkv]"], "lora.targets", "'qkv'")


def test_an_unreachable_hub_is_a_warning_in_seconds_not_an_error(monkeypatch):
    import requests

    from raysweep.preflight import hub_note

    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("no route")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(requests, "head", unreachable)
    cfg = load_config(TRAIN, ["model.checkpoint=llava-hf/no-such-model-anywhere"])
    assert "does not answer (ConnectionError)" in hub_note(cfg.model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE is set" in hub_note(cfg.model)
    assert hub_note(load_config(TRAIN, []).model) is None  # tiny: nothing to fetch
