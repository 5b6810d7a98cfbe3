"""Concurrent writers on the MLflow server: 4 trials at once (fractional CPUs) lose no metric and no artifact (integration)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_cluster_two_nodes import mlflow_server  # noqa: F401  (PostgreSQL + MLflow server fixture)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
LRS = [1.0e-3, 3.0e-4, 1.0e-4, 3.0e-5]
EPOCHS = 2


def test_four_concurrent_trials_lose_nothing_on_the_server(mlflow_server, tmp_path):  # noqa: F811
    from mlflow import MlflowClient

    cmd = [sys.executable, "-m", "raysweep.cli", "sweep", "configs/quickstart.yaml", "model.tiny_layers=2", "train.batch_size=8",
           "train.steps_per_epoch=4", "train.val_limit=18", f"train.epochs={EPOCHS}", "train.patience=0",
           "train.cpus_per_worker=0.25", "sweep.trial_cpus=0.25", "sweep.max_concurrent=4", "sweep.scheduler=fifo",
           "train.eval_sets=[{name: civet_test, config: configs/data/civet_test.yaml, limit: 18}]",
           f"sweep.space={{train.lr: {{grid: [{', '.join(map(str, LRS))}]}}}}", "sweep.name=concurrent",
           f"sweep.storage_path={tmp_path}/sweeps", "mlflow.experiment=concurrent", f"mlflow.tracking_uri={mlflow_server}"]  # fmt: skip
    ray_tmp = tempfile.mkdtemp(prefix="rsc-", dir="/tmp")  # a Ray of its own, short socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": ray_tmp}
    started = time.monotonic()
    try:
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=1200)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    wall_s = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert "up to 4 at once" in run.stdout

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get("raysweep.role") == "trial"]
    assert len(trials) == len(LRS) == len({t.data.tags["raysweep.trial_id"] for t in trials})
    counted = {"metric points": 0, "artifacts": 0}
    per_epoch = [k for k in trials[0].data.metrics if k.startswith(("train/", "val/"))]
    assert "val/loss" in per_epoch and "train/loss" in per_epoch
    for t in trials:
        for key in per_epoch:  # every per-epoch metric of every trial, once per epoch
            steps = sorted(m.step for m in client.get_metric_history(t.info.run_id, key))
            assert steps == list(range(1, EPOCHS + 1)), (t.data.tags["raysweep.trial_id"], key, steps)
            counted["metric points"] += len(steps)
        files = _artifact_files(client, t.info.run_id)
        assert {"adapter/adapter_config.json", "adapter/run_config.yaml"} <= files, files
        assert any(f.startswith("eval/civet_test/") for f in files)
        counted["artifacts"] += len(files)
    sizes = {len(_artifact_files(client, t.info.run_id)) for t in trials}
    assert len(sizes) == 1, f"trials hold different artifact counts: {sizes}"
    print(f"\n4 concurrent trials: {counted['metric points']} per-epoch metric points and {counted['artifacts']} artifacts "
          f"on the server, none missing; sweep {wall_s:.0f} s")  # fmt: skip


def _artifact_files(client, run_id: str, path: str = "") -> set[str]:
    files = set()
    for item in client.list_artifacts(run_id, path or None):
        files |= _artifact_files(client, run_id, item.path) if item.is_dir else {item.path}
    return files
