"""The MLflow side of the run lifecycle: a new SQLite store opened by several processes at once."""

import subprocess
import sys

_OPEN_STORE = r"""
import sys
from raysweep.tracking import RunLogger
RunLogger.start(sys.argv[1], "exp", sys.argv[2])
"""


def test_concurrent_first_writers_of_a_new_sqlite_store_all_succeed(tmp_path):
    """Without the lock, 5 of 6 processes failed on schema creation (duplicate column / alembic version)."""
    from raysweep.tracking import _client

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_STORE, uri, f"run{i}"], stderr=subprocess.PIPE, text=True) for i in range(6)]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    assert not errors, errors[0][-2000:]
    exp = _client(uri).get_experiment_by_name("exp")
    runs = _client(uri).search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(6)]


import pytest


@pytest.mark.parametrize("where", ["final evaluation", "trainer constructor", "ray_data input", "on_trained"])
def test_a_run_that_fails_after_its_mlflow_run_started_ends_failed_not_running(tmp_path, monkeypatch, where):
    """Whatever raises once the MLflow run exists - building the TorchTrainer or the Ray Data input
    (before, the run stayed RUNNING), the on_trained hook, the final evaluation - ends it FAILED."""
    import raysweep.launch.train as launch
    from raysweep.config import load_config
    from raysweep.tracking import _client

    class FakeResult:
        best_checkpoints, checkpoint = [], None

    def broken(*args, **kwargs):
        raise RuntimeError(f"{where} broke")

    class FakeTrainer:
        def __init__(self, *args, **kwargs):
            if where == "trainer constructor":
                broken()

        def fit(self):
            return FakeResult()

    def evaluate(*args, **kwargs):
        if where == "final evaluation":
            broken()
        return {}

    monkeypatch.setattr(launch, "init_ray", lambda: None)
    monkeypatch.setattr(launch, "TorchTrainer", FakeTrainer)
    monkeypatch.setattr(launch, "_final_eval", evaluate)
    monkeypatch.setattr(launch, "_ray_data_input", broken)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    loader = "ray_data" if where == "ray_data input" else "worker"
    cfg = load_config("configs/train-tiny.yaml", [f"mlflow.tracking_uri={uri}", f"train.storage_path={tmp_path}/runs", "train.name=r",
                                                  f"train.data_loader={loader}"])  # fmt: skip
    with pytest.raises(RuntimeError, match=f"{where} broke"):
        launch.run_training(cfg, quiet=True, on_trained=broken if where == "on_trained" else None)
    runs = _client(uri).search_runs([_client(uri).get_experiment_by_name(cfg.mlflow.experiment).experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
