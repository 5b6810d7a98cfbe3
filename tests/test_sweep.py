"""Sweeps: trial configs from a space, the summary, and a small ASHA sweep through the CLI."""

from pathlib import Path

import pytest

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.errors import ConfigError, UserError
from raysweep.sweep.space import check_space, grid_points, group_key, trial_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_trial_config_applies_includes_then_keys():
    from raysweep._configlib import to_dict

    base = to_dict(load_config(CONFIGS / "quickstart.yaml"))
    cfg = trial_config(base, {"include": "models/tiny-clip.yaml", "lora.rank": 8, "train.lr": 3e-4}, CONFIGS)
    assert (cfg.model.family, cfg.lora.rank, cfg.train.lr) == ("clip", 8, 3e-4)
    assert cfg.sweep.space == {}  # trials do not carry the sweep


def test_space_points_and_groups():
    space = {"train.lr": {"grid": [1e-3, 1e-4]}, "lora.rank": {"grid": [4, 8, 16]}, "train.weight_decay": {"uniform": [0.0, 0.1]}}
    points = grid_points(space)
    assert len(points) == 6 and {"train.lr": 1e-3, "lora.rank": 8} in points
    assert group_key({"lora.rank": "8", "data.distractors": "3"}, ["data.distractors", "lora.rank"]) == "data.distractors=3,lora.rank=8"
    assert group_key({}, []) == "all"


def test_bad_space_values_fail_before_any_trial():
    from raysweep._configlib import to_dict

    base = to_dict(load_config(CONFIGS / "quickstart.yaml"))
    with pytest.raises(UserError, match=r"sweep point \{'data.distractors': 100\}: data.distractors: 100 distractors"):
        check_space(base, {"data.distractors": {"grid": [0, 100]}}, CONFIGS)
    with pytest.raises(UserError, match="not found"):
        check_space(base, {"include": {"grid": ["models/nosuch.yaml"]}}, CONFIGS)
    with pytest.raises(ConfigError, match=r"sweep.space.lora.rank: expected one of"):
        load_config(CONFIGS / "quickstart.yaml", ["sweep.space={lora.rank: {grd: [1]}}"])


def test_sweep_without_space_is_refused(capsys):
    assert main(["sweep", str(CONFIGS / "train-tiny.yaml")]) == 2
    assert "sweep.space is empty" in capsys.readouterr().err


def test_summary_statuses_and_best_per_group(tmp_path):
    from raysweep.config import RunConfig
    from raysweep.sweep.summary import collect_trials, format_summary
    from raysweep.tracking import RunLogger

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = RunLogger.start(uri, "exp", "s", tags={"raysweep.role": "sweep"})
    specs = [("t0", "completed", 4, [0.2, 0.5, 0.9]), ("t1", "running", 4, [0.1]), ("t2", "running", 8, [0.3, 0.95]),
             ("t3", "completed", 8, [0.4, 0.6])]  # fmt: skip
    for trial, status, rank, accs in specs:
        run = RunLogger.start(uri, "exp", trial, parent.run_id, {"raysweep.trial_id": trial, "raysweep.trial_status": status,
                                                                  "raysweep.space.lora.rank": str(rank)})  # fmt: skip
        run.log_params({"lora.rank": rank, "family": "llava-next"})
        for epoch, acc in enumerate(accs, 1):
            run.log_metrics({"val/acc": acc}, step=epoch)
        if status == "completed":
            run.log_metrics({"test/civet/acc": accs[-1] - 0.05, "base/civet/acc": 0.11})
            run.end()
    sweep = load_config(None, ["sweep.space={lora.rank: {grid: [4, 8]}}", "sweep.group_by=[lora.rank]"]).sweep
    from raysweep.sweep.ledger import Ledger

    ledger = Ledger(str(tmp_path / "ledger"))  # the record: t2 was stopped by the scheduler, t1 raised
    for trial, status, _, accs in specs:
        ledger.record(trial, "started", values={"lora.rank": _})
        for epoch, acc in enumerate(accs, 1):
            ledger.record(trial, "epoch", epoch=epoch, metrics={"val/acc": acc})
    ledger.record("t0", "completed")
    ledger.record("t3", "completed")
    ledger.record("t1", "errored", error="boom", user_error=False)
    ledger.record("t2", "stopped_early", epoch=2)
    ledger.record("t2", "epoch", epoch=2, metrics={"val/acc": 0.95})  # reported again after a resume: counts once
    summary = collect_trials(uri, parent.run_id, sweep, max_epochs=3, states=ledger.states())
    status = {t["trial_id"]: t["status"] for t in summary["trials"]}
    assert status == {"t0": "completed", "t1": "errored", "t2": "stopped_early", "t3": "completed"}
    # the completed trial wins its group even when a stopped one peaked higher (no adapter, no test)
    assert summary["groups"]["lora.rank=4"]["trial_id"] == "t0"
    assert summary["groups"]["lora.rank=8"]["trial_id"] == "t3"
    m = summary["parent_metrics"]
    assert (m["trials"], m["trial_epochs"], m["grid_trial_epochs"], m["stopped_early"], m["errored"]) == (4, 8, 12, 1, 1)
    assert m["best/lora.rank_4/test/civet/acc"] == pytest.approx(0.85)
    cfg = RunConfig()
    cfg.train.eval_sets = []
    text = format_summary(summary, sweep, cfg.train.eval_sets)
    assert "| t2 | stopped_early | 2 | 0.9500 | 8 |" in text
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = {r.data.tags["raysweep.trial_id"]: r for r in client.search_runs([client.get_experiment_by_name("exp").experiment_id])
            if "raysweep.trial_id" in r.data.tags}  # fmt: skip
    assert runs["t2"].info.status == "KILLED" and runs["t2"].data.tags["raysweep.trial_status"] == "stopped_early"
    assert runs["t2"].data.tags["raysweep.status"] == "stopped_early"
    assert runs["t1"].info.status == "FAILED"


SMALL = [
    "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
    "data.sizes={large: 0.86}",
    "model.tiny_layers=2",
    "train.batch_size=8",
    "train.steps_per_epoch=15",
    "train.val_limit=18",
    "train.epochs=3",
    "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml, limit: 18}, {name: civet9, config: configs/data/civet_test.yaml, limit: 9}]",
    "sweep.space={train.lr: {grid: [1.0e-3, 1.0e-6, 1.0e-7]}}",
    "sweep.grace_period=1",
    "sweep.reduction_factor=2",
    "sweep.max_concurrent=1",
]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def test_small_asha_sweep_end_to_end(tmp_path, local_ray, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["sweep", str(CONFIGS / "quickstart.yaml"), *SMALL, f"mlflow.tracking_uri={uri}", f"sweep.storage_path={tmp_path}/sweeps",
            "sweep.name=mini", "mlflow.experiment=mini"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "### Sweep mini: trials" in out and "registered models:/raysweep-llava-next@" in out

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mini")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raysweep.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("raysweep.role") == "trial"]
    assert len(parents) == 1 and len(trials) == 3
    assert all(t.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for t in trials)
    by_lr = {t.data.params["train.lr"]: t for t in trials}
    assert by_lr["0.001"].data.tags["raysweep.trial_status"] == "completed"
    assert "test/civet/acc" in by_lr["0.001"].data.metrics and "base/civet/acc" in by_lr["0.001"].data.metrics
    # ASHA (grace 1, factor 2, one trial at a time): the tiny learning rates lose at epoch 1
    stopped = [t for t in trials if t.data.tags["raysweep.trial_status"] == "stopped_early"]
    assert stopped and all(len(client.get_metric_history(t.info.run_id, "val/loss")) < 3 for t in stopped)
    assert parents[0].data.metrics["trials"] == 3 and parents[0].data.metrics["stopped_early"] == len(stopped)
    # one base model, two eval sets: two base evaluations for the whole sweep, served to the trial from the cache
    assert parents[0].data.metrics["sweep/base_evaluations"] == 2
    assert by_lr["0.001"].data.tags["raysweep.base_from"].count("cache:") == 2
    assert "base/civet9/acc" in by_lr["0.001"].data.metrics
    assert client.get_model_version_by_alias("raysweep-llava-next", "champion").run_id == by_lr["0.001"].info.run_id

    # --resume of a finished sweep repeats nothing
    assert main(args + ["--resume"]) == 0
    assert len([r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("raysweep.role") == "trial"]) == 3


def test_resume_without_state_is_a_clear_error(tmp_path, capsys):
    args = ["sweep", str(CONFIGS / "quickstart.yaml"), f"sweep.storage_path={tmp_path}/none", "--resume",
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", "train.eval_sets=[]"]  # fmt: skip
    assert main(args) == 2
    assert "no sweep state" in capsys.readouterr().err
