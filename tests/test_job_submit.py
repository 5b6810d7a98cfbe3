"""`ray job submit` of the quickstart sweep against a real local Ray head (integration, ~3-4 min)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def ray_head(tmp_path):
    # Ray >= 2.59 starts local clusters with token auth; the job client must then send the token
    # (~/.ray/auth_token), which it does only with RAY_AUTH_MODE=token.
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    temp = Path("/tmp") / f"rs-{os.getpid()}"  # Ray's socket paths must stay short
    start = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", "--port=6391", "--num-cpus=2",
             "--dashboard-host=127.0.0.1", "--dashboard-port=8265", f"--temp-dir={temp}", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=180)
    try:
        yield env
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_quickstart_sweep_as_a_ray_job(ray_head, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = [
        "train.steps_per_epoch=10", "train.epochs=2", "train.val_limit=18", "train.batch_size=8",
        "sweep.space={train.lr: {grid: [1.0e-3, 1.0e-5]}}", "sweep.name=job", f"sweep.storage_path={tmp_path}/sweeps",
        "train.eval_sets=[{name: civet_test, config: configs/data/civet_test.yaml, limit: 18}]", f"mlflow.tracking_uri={uri}",
    ]  # fmt: skip
    cmd = [str(BIN / "ray"), "job", "submit", "--address", "http://127.0.0.1:8265", "--working-dir", str(REPO), "--",
           "raysweep", "sweep", "configs/quickstart.yaml", *overrides]  # fmt: skip
    proc = subprocess.run(cmd, env=ray_head, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "succeeded" in (proc.stdout + proc.stderr)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("raysweep-quickstart").experiment_id])
    roles = sorted(r.data.tags.get("raysweep.role") for r in runs)
    assert roles == ["sweep", "trial", "trial"]
    assert any("test/civet_test/acc" in r.data.metrics for r in runs)
