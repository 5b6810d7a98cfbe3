"""An interrupted sweep (Ctrl+C) continues with --resume without repeating finished trials (integration)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def _trials(uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("resume")
    if exp is None:
        return client, []
    return client, [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("raysweep.role") == "trial"]


def test_interrupt_then_resume(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [sys.executable, "-m", "raysweep.cli", "sweep", "configs/quickstart.yaml",
           "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
           "model.tiny_layers=2", "train.batch_size=8", "train.steps_per_epoch=8", "train.val_limit=18", "train.epochs=2",
           "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml, limit: 18}]",
           "sweep.space={train.lr: {grid: [1.0e-3, 3.0e-4, 1.0e-4]}}", "sweep.scheduler=fifo", "sweep.max_concurrent=1",
           "sweep.name=resume", f"sweep.storage_path={tmp_path}/sweeps", "mlflow.experiment=resume", f"mlflow.tracking_uri={uri}"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    first = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(3)
        _, trials = _trials(uri)
        done = [t for t in trials if t.data.tags.get("raysweep.trial_status") == "completed"]
        if done:
            first = done[0]
            break
    assert first is not None, "no trial completed before the deadline"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out
    _, trials = _trials(uri)
    assert len([t for t in trials if t.data.tags.get("raysweep.trial_status") == "completed"]) < 3

    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    client, trials = _trials(uri)
    ids = [t.data.tags["raysweep.trial_id"] for t in trials]
    assert len(ids) == 3 == len(set(ids)), "a trial got a second MLflow run"
    assert all(t.data.tags["raysweep.trial_status"] == "completed" for t in trials)
    again = client.get_run(first.info.run_id)
    history = client.get_metric_history(first.info.run_id, "val/loss")
    assert sorted(m.step for m in history) == [1, 2], "the finished trial was trained again"
    assert again.data.metrics["test/civet/acc"] == first.data.metrics["test/civet/acc"]
