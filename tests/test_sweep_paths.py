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


def test_local_checkpoint_tells_a_folder_from_a_hub_id(tmp_path):
    from raysweep.sweep.paths import local_checkpoint

    (tmp_path / "runs" / "tiny-base").mkdir(parents=True)
    assert local_checkpoint("runs/tiny-base", tmp_path)  # a bare relative name, where that folder exists
    assert not local_checkpoint("runs/tiny-base", tmp_path / "elsewhere")
    assert not local_checkpoint("Qwen/Qwen2-VL-2B-Instruct", tmp_path)  # a Hub id looks relative: left alone
    assert local_checkpoint("./missing", tmp_path) and local_checkpoint("/abs/path", tmp_path) and local_checkpoint("~/w", tmp_path)
    for name in ("tiny", "shape:Qwen/Qwen2-VL-2B-Instruct", "s3://bucket/ckpt", ""):
        assert not local_checkpoint(name, tmp_path), name


def test_a_relative_local_checkpoint_travels_like_the_other_input_paths(tmp_path, monkeypatch):
    """model.checkpoint=runs/tiny-base is stored relative by the sweep's driver and resolved by each trial;
    a Hub id stays a Hub id on both sides."""
    from raysweep.sweep.paths import portable_paths, resolve_paths

    (tmp_path / "runs" / "tiny-base").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["model.checkpoint=runs/tiny-base"])
    assert portable_paths(cfg, tmp_path).model.checkpoint == "runs/tiny-base"
    assert resolve_paths(cfg, tmp_path).model.checkpoint == str(tmp_path / "runs" / "tiny-base")
    hub = load_config(None, ["model.checkpoint=Qwen/Qwen2-VL-2B-Instruct"])
    assert resolve_paths(portable_paths(hub, tmp_path), tmp_path).model.checkpoint == "Qwen/Qwen2-VL-2B-Instruct"


def test_run_training_hands_its_workers_absolute_input_paths(tmp_path, monkeypatch):
    """`raysweep train model.checkpoint=runs/tiny-base`: Ray Train's workers start in folders of their own,
    where the relative name read as a Hub id (one clear line, but after the workers were placed). The
    driver makes it absolute before the workers get the config; the caller's config is left as it was."""
    import raysweep.launch.train as launch

    (tmp_path / "runs" / "tiny-base").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    seen = {}

    class Stop(Exception):
        pass

    class FakeTrainer:
        def __init__(self, loop, train_loop_config, **kwargs):
            seen.update(train_loop_config["run"])
            raise Stop

    monkeypatch.setattr(launch, "init_ray", lambda: None)
    monkeypatch.setattr(launch, "TorchTrainer", FakeTrainer)
    cfg = load_config(str(REPO / "configs/quickstart.yaml"), [
        "model.checkpoint=runs/tiny-base", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"train.storage_path={tmp_path}/out",
        "train.data_loader=worker", "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml}]"])  # fmt: skip
    try:
        launch.run_training(cfg)
    except Stop:
        pass
    assert seen["model"]["checkpoint"] == str(tmp_path / "runs" / "tiny-base")
    assert seen["train"]["eval_sets"][0]["config"] == str(tmp_path / "configs/data/civet_test.yaml")
    assert cfg.model.checkpoint == "runs/tiny-base"  # the caller's config is unchanged
