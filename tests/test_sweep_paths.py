"""Trial configs hold paths relative to the working directory, resolved in each trial's own (no Ray).

A resumed sweep (or a trial on another node) runs from another folder than the first driver: the
paths Tune stored must not point into the first one.
"""

from pathlib import Path

from raysweep._configlib import to_dict
from raysweep.commands.sweep import _trial_paths
from raysweep.config import load_config
from raysweep.sweep.paths import portable_path
from raysweep.sweep.space import trial_config

REPO = Path(__file__).resolve().parents[1]


def test_portable_path_relative_inside_absolute_outside(tmp_path):
    inside = tmp_path / "work"
    (inside / "configs").mkdir(parents=True)
    assert portable_path(str(inside / "configs" / "a.yaml"), inside) == "configs/a.yaml"
    assert portable_path("configs/../configs/a.yaml", Path.cwd()) == "configs/a.yaml"
    assert portable_path(str(tmp_path / "data"), inside) == str(tmp_path / "data")  # shared data outside stays absolute
    assert portable_path("s3://bucket/data", inside) == "s3://bucket/data"
    assert portable_path("", inside) == ""


def _driver_config(workdir: Path, monkeypatch, outside: Path):
    """What `raysweep sweep` hands to Tune when started in ``workdir`` (a copy of the configs)."""
    monkeypatch.chdir(workdir)
    cfg = load_config("configs/quickstart.yaml", [
        "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml}]",
        f"data.parquet={{coco: {outside}}}", "sweep.storage_path=sweeps", "mlflow.tracking_uri=sqlite:///x.db"])  # fmt: skip
    return to_dict(_trial_paths(cfg))


def _copy_configs(dest: Path) -> Path:
    import shutil

    shutil.copytree(REPO / "configs", dest / "configs")
    return dest


def test_a_trial_resolves_paths_in_its_own_working_directory(tmp_path, monkeypatch):
    first = _copy_configs(tmp_path / "first")
    outside = tmp_path / "shared" / "coco"
    base = _driver_config(first, monkeypatch, outside)
    assert base["train"]["eval_sets"][0]["config"] == "configs/data/civet_test.yaml"  # stored relative
    assert base["data"]["parquet"] == {"coco": str(outside)}
    assert base["sweep"]["storage_path"] == str(first / "sweeps")  # storage is shared: absolute

    # The resume runs in another folder, the first one is gone; Tune moved the trial into its trial folder.
    second = tmp_path / "second"
    first.rename(second)
    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    monkeypatch.chdir(trial_dir)
    monkeypatch.setenv("TUNE_ORIG_WORKING_DIR", str(second))
    cfg = trial_config(base, {"include": "models/tiny-llava-next.yaml", "train.lr": 0.01}, Path("configs"))
    assert cfg.train.eval_sets[0].config == str(second / "configs/data/civet_test.yaml")
    assert Path(cfg.train.eval_sets[0].config).is_file()
    assert cfg.data.parquet == {"coco": str(outside)} and cfg.train.lr == 0.01


def test_outside_a_trial_relative_paths_stay_relative(tmp_path, monkeypatch):
    """The driver (and a plain Ray task on another node) read them from their own working directory."""
    workdir = _copy_configs(tmp_path / "work")
    base = _driver_config(workdir, monkeypatch, tmp_path / "coco")
    monkeypatch.delenv("TUNE_ORIG_WORKING_DIR", raising=False)
    cfg = trial_config(base, {"include": "models/tiny-llava-next.yaml"}, Path("configs"))
    assert cfg.train.eval_sets[0].config == "configs/data/civet_test.yaml"
