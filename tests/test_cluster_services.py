"""cluster/local-services.sh: PostgreSQL 15 + `mlflow server`, and a `raysweep train` run tracked over HTTP.

The integration test is what a cluster's tracking looks like from a trial: the run, its metrics and
its artifacts go through the MLflow server's REST API into PostgreSQL and the served artifact store.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_train_ray import SMALL as TRAIN_RAY_SMALL

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "cluster" / "local-services.sh"
PG_BIN = Path(os.environ.get("RAYSWEEP_PG_BIN", "/usr/lib/postgresql/15/bin"))

# The small tiny-model run of tests/test_train_ray.py, on one DDP worker for two epochs.
SMALL = [*TRAIN_RAY_SMALL, "train.epochs=2", "train.patience=0", "train.num_workers=1", "train.cpus_per_worker=1",
         "train.strategy=ddp", "train.eval_sets=[{name: civet_test, config: configs/data/civet_test.yaml, limit: 27}]"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _services(action: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, env=env, timeout=300)


def test_script_syntax_and_usage():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2 and "start|stop|status" in result.stderr
    assert subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True).returncode == 0


def test_missing_postgres_binaries_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "RAYSWEEP_SERVICES_DIR": str(tmp_path / "svc"), "RAYSWEEP_PG_BIN": str(tmp_path / "nope")}
    result = _services("start", env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "RAYSWEEP_PG_BIN" in result.stderr


@pytest.mark.integration
def test_train_logs_to_mlflow_server_on_postgres(tmp_path):
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    pytest.importorskip("psycopg")
    import requests
    from mlflow import MlflowClient

    pg_port, mlflow_port = _free_port(), _free_port()
    state = tmp_path / "services"
    env = {**os.environ, "RAYSWEEP_SERVICES_DIR": str(state), "RAYSWEEP_PG_PORT": str(pg_port),
           "RAYSWEEP_MLFLOW_PORT": str(mlflow_port), "MLFLOW": str(Path(sys.executable).parent / "mlflow")}  # fmt: skip
    ray_tmp = None
    started = time.monotonic()
    result = _services("start", env)
    assert result.returncode == 0, result.stderr + result.stdout
    start_s = time.monotonic() - started
    uri = f"http://127.0.0.1:{mlflow_port}"
    try:
        assert f"MLFLOW_TRACKING_URI={uri}" in result.stdout
        assert _services("status", env).returncode == 0

        args = [sys.executable, "-m", "raysweep.cli", "train", "configs/train-tiny.yaml", *SMALL, f"mlflow.tracking_uri={uri}",
                f"train.storage_path={tmp_path}/runs", "train.name=pg-run", "--register"]  # fmt: skip
        # A Ray of its own: a fresh RAY_TMPDIR (short, for Ray's socket paths) hides any `ray start` cluster.
        ray_tmp = tempfile.mkdtemp(prefix="rs-ray-", dir="/tmp")
        ray_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": ray_tmp}
        started = time.monotonic()
        train = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=ray_env, timeout=900)
        train_s = time.monotonic() - started
        assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]

        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("raysweep-train-tiny")
        (run,) = client.search_runs([exp.experiment_id])
        assert run.info.status == "FINISHED" and run.info.run_name == "pg-run"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not a path
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss")) == [1, 2]
        assert "test/civet_test/acc" in run.data.metrics and "base/civet_test/acc" in run.data.metrics
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"adapter", "eval"} <= top, top
        adapter_files = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
        assert "adapter/adapter_config.json" in adapter_files and "adapter/run_config.yaml" in adapter_files

        # Over plain HTTP, as a worker without MLflow's client would see it.
        got = requests.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": run.info.run_id}, timeout=10).json()
        assert got["run"]["info"]["status"] == "FINISHED"
        path = f"{exp.experiment_id}/{run.info.run_id}/artifacts/adapter/run_config.yaml"
        body = requests.get(f"{uri}/api/2.0/mlflow-artifacts/artifacts/{path}", timeout=10)
        assert body.status_code == 200 and "model:" in body.text
        assert (state / "artifacts" / path).is_file()  # the served artifact store holds it
        versions = client.search_model_versions("name='raysweep-llava-next'")
        assert [v.run_id for v in versions] == [run.info.run_id]

        # The tracking data is in PostgreSQL, not in a file next to the server.
        import psycopg

        with psycopg.connect((state / "backend-store-uri").read_text().strip()) as conn:
            (n_runs,) = conn.execute("SELECT count(*) FROM runs").fetchone()
            (n_val,) = conn.execute("SELECT count(*) FROM metrics WHERE key = 'val/loss'").fetchone()
        assert n_runs == 1 and n_val == 2
        print(f"\nservices start {start_s:.1f} s, raysweep train {train_s:.1f} s")
    finally:
        stopped = _services("stop", env)
        if ray_tmp:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert not state.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{uri}/health", timeout=5)



def test_kuberay_mlflow_server_manifest():
    """Deployment + Service: the database from a Secret, the artifact store a parameter, artifacts served."""
    import yaml

    doc = yaml.safe_load((REPO / "cluster" / "kuberay-mlflow.yaml").read_text())
    kinds = {item["kind"]: item for item in doc["items"]}
    deployment, service = kinds["Deployment"], kinds["Service"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "raysweep-mlflow-db", "key": "backend-store-uri"}
    assert env["ARTIFACTS_DESTINATION"]["value"].startswith("s3://")
    command = " ".join(container["args"])
    for flag in ('--backend-store-uri "$BACKEND_STORE_URI"', '--artifacts-destination "$ARTIFACTS_DESTINATION"', "--serve-artifacts", "--port 5000"):
        assert flag in command
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["metadata"]["name"] == "raysweep-mlflow" and service["spec"]["ports"][0]["port"] == 5000
    script = SCRIPT.read_text()  # the local services run the same server command
    assert "--serve-artifacts" in script and "--artifacts-destination" in script and "--backend-store-uri" in script
