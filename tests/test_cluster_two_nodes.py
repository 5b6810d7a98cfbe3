"""Two Ray nodes, S3 storage, an MLflow server on PostgreSQL: a sweep submitted as a Ray job (integration).

The head runs no work (``--num-cpus 0``, like the cluster files' heads), so every trial and Ray Train
worker lands on the second node. That node runs in its own mount namespace where the test's folders
(the driver's side) are an empty tmpfs: trials find their data (rendered), configs (the job's
working_dir) and checkpoints (the S3 endpoint, reached through AWS_ENDPOINT_URL in the runtime env)
without sharing a file with the driver; the head's temp dir, where the job's working_dir is
unpacked for the driver, is hidden from it too, so trials read their configs from their own node's
copy (trial configs hold paths relative to the working directory). The sweep is submitted with
cluster/submit.sh; the fault-injection harness of the driver-kill tests (tests/sweep_faults.py's
KillOnEvent, a sweep.callbacks listener) SIGKILLs the driver from the second node when the ledger
records epoch 2 of a trial: the trial's rank-0 worker records the epoch just before it logs it to
MLflow and reports its checkpoint, so the driver dies while that epoch is being finished. Then
--resume: every trial is one MLflow run with every epoch exactly once, the checkpoints are on S3
and the best adapter is registered and loads over HTTP.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from test_storage import BUCKET, _free_port, s3_endpoint  # noqa: F401  (the moto S3 fixture)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = REPO / "cluster" / "local-services.sh"
PG_BIN = Path(os.environ.get("RAYSWEEP_PG_BIN", "/usr/lib/postgresql/15/bin"))
SWEEP = "two-nodes"
EPOCHS = 4  # enough that the trials are still training when the driver is killed, on a fast machine too
OVERRIDES = [
    "model.tiny_layers=2", "train.batch_size=8", "train.steps_per_epoch=6", "train.val_limit=18", f"train.epochs={EPOCHS}",
    "train.patience=0", "train.eval_sets=[{name: civet_test, config: configs/data/civet_test.yaml, limit: 18}]",
    "sweep.space={train.lr: {grid: [1.0e-3, 3.0e-4]}}", "sweep.scheduler=fifo", f"sweep.name={SWEEP}",
    f"sweep.storage_path=s3://{BUCKET}/two-nodes/sweeps", "mlflow.experiment=two-nodes",
    "sweep.callbacks=[tests.sweep_faults:KillOnEvent]",
]  # fmt: skip
KILL_EPOCH = 2  # the driver is killed as a trial finishes this epoch (tests/sweep_faults.py)


def _ray(*args, env, check=True, timeout=180):
    return subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture
def mlflow_server(tmp_path):
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    port = _free_port()
    env = {**os.environ, "RAYSWEEP_SERVICES_DIR": str(tmp_path / "services"), "RAYSWEEP_PG_PORT": str(_free_port()),
           "RAYSWEEP_MLFLOW_PORT": str(port), "MLFLOW": str(BIN / "mlflow")}  # fmt: skip
    started = subprocess.run(["bash", str(SERVICES), "start"], env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    yield f"http://127.0.0.1:{port}"
    subprocess.run(["bash", str(SERVICES), "stop"], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def two_nodes(tmp_path):
    """A head with no CPUs and a second node (2 CPUs, resource node2) that sees neither tmp_path nor the head's temp dir."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for the second node's mount namespace")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "MLFLOW_"))}
    env.update(PATH=f"{BIN}:{env['PATH']}", RAY_AUTH_MODE="token")  # the job client sends ~/.ray/auth_token
    # Each node its own temp dir (short: Ray's socket paths), as on two machines: nodes sharing one
    # session folder unpack the job's working_dir into the same path, under the running driver.
    head_temp, node2_temp = (Path(tempfile.mkdtemp(prefix=f"rs2n{i}-", dir="/tmp")) for i in (1, 2))
    gcs, dashboard = _free_port(), _free_port()
    try:
        _ray("start", "--head", "--num-cpus=0", "--node-ip-address=127.0.0.1", f"--port={gcs}", f"--temp-dir={head_temp}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={_free_port()}",
             "--disable-usage-stats", *_node_ports(), env=env)  # fmt: skip
        worker = [str(BIN / "ray"), "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=2", "--resources={\"node2\": 1}",
                  f"--temp-dir={node2_temp}", *_node_ports()]  # fmt: skip
        hide = f"mount -t tmpfs tmpfs {tmp_path} && mount -t tmpfs tmpfs {head_temp} && exec {' '.join(map(_quote, worker))}"
        joined = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", hide], env=env, capture_output=True, text=True, timeout=180)
        assert joined.returncode == 0, joined.stderr[-2000:]
        _wait_for_dashboard(f"http://127.0.0.1:{dashboard}", head_temp)
        yield env, f"http://127.0.0.1:{dashboard}"
    finally:
        _stop_nodes([head_temp, node2_temp])
        for temp in (head_temp, node2_temp):
            shutil.rmtree(temp, ignore_errors=True)


def _stop_nodes(temp_dirs: list[Path]) -> None:
    """Stop this test's Ray nodes only: the processes naming its temp dirs, and their children.

    Not `ray stop`, which ends every Ray on the machine, other people's too.
    """
    import psutil

    mine = [str(t) for t in temp_dirs]
    roots = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(t in cmdline for t in mine):
            roots.append(proc)
    procs = {p.pid: p for root in roots for p in [root, *_children(root)]}
    for p in procs.values():
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=20)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _children(proc) -> list:
    import psutil

    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _node_ports() -> list[str]:
    """Free ports for a node's agents: Ray's defaults (52365, ...) clash with any other Ray on the machine."""
    names = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
             "runtime-env-agent-port", "metrics-export-port")  # fmt: skip
    return [f"--{name}={_free_port()}" for name in names]


def _wait_for_dashboard(url: str, temp: Path, timeout_s: float = 180) -> None:
    """`ray start` returns before the dashboard (the job server) answers; on 2 busy cores it takes a while."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=5)
            return
        except urllib.error.HTTPError:  # 401 without the token: it answers
            return
        except OSError:
            if time.monotonic() > deadline:
                logs = sorted(temp.glob("session_latest/logs/dashboard*.err")) + sorted(temp.glob("session_latest/logs/dashboard.log"))
                tail = "".join(p.read_text()[-2000:] for p in logs)
                pytest.fail(f"the Ray dashboard at {url} did not answer within {timeout_s:.0f} s\n{tail}")
            time.sleep(2)


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _short(log: str) -> str:
    """Error lines of a job log (its last lines otherwise), each cut to 400 characters."""
    lines = [ln[:400] for ln in log.splitlines() if "rror" in ln or "Traceback" in ln or "resum" in ln]
    return "\n".join(lines[-40:] or [ln[:400] for ln in log.splitlines()[-40:]])


def _trials(uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("two-nodes")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return client, [r for r in runs if r.data.tags.get("raysweep.role") == "trial"]


@pytest.fixture
def faults():
    """The fault harness's folder, outside tmp_path: the listener that fires runs on the second node."""
    folder = Path(tempfile.mkdtemp(prefix="rs2nk-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_sweep_on_two_nodes_with_s3_storage_and_mlflow_server(s3_endpoint, mlflow_server, two_nodes, faults, tmp_path):  # noqa: F811
    from raysweep import storage

    env, dashboard = two_nodes
    marker = faults / "killed"
    runtime_env = tmp_path / "runtime_env.yaml"  # cluster/runtime_env.yaml without pip: the nodes share this venv
    project = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    project.pop("pip")
    project["env_vars"] = {**{k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")},
                           "MLFLOW_TRACKING_URI": "http://mlflow.CHANGE-ME:5000", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
                           "RAYSWEEP_TEST_KILL_EVENT": "epoch", "RAYSWEEP_TEST_KILL_EPOCH": str(KILL_EPOCH),
                           "RAYSWEEP_TEST_KILL_MARKER": str(marker), "RAYSWEEP_TEST_KILL_PID_FILE": str(faults / "driver.pid")}  # fmt: skip
    runtime_env.write_text(yaml.safe_dump(project))
    submit_env = {**env, "RAY_ADDRESS": dashboard, "MLFLOW_TRACKING_URI": mlflow_server, "RAYSWEEP_RUNTIME_ENV": str(runtime_env)}
    submit = ["bash", str(REPO / "cluster" / "submit.sh"), "configs/quickstart.yaml", *OVERRIDES, f"mlflow.tracking_uri={mlflow_server}"]

    started = time.monotonic()
    for _ in range(30):  # the head's job agent comes up after its dashboard on 2 busy cores
        first = subprocess.run(submit, cwd=REPO, capture_output=True, text=True, timeout=300,
                               env={**submit_env, "RAY_JOB_ARGS": "--no-wait --submission-id two-nodes-1"})  # fmt: skip
        if "No available agent" not in first.stderr:
            break
        time.sleep(2)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # The harness kills the driver; the job then ends as FAILED (its entrypoint was SIGKILLed). The
    # marker stays, so the resumed job is not killed again.
    deadline = time.monotonic() + 600
    while True:
        status = _ray("job", "status", "--address", dashboard, "two-nodes-1", env=env, check=False).stdout.lower()
        if any(word in status for word in ("failed", "succeeded", "stopped")) or time.monotonic() > deadline:
            break
        time.sleep(2)
    first_log = _ray("job", "logs", "--address", dashboard, "two-nodes-1", env=env, check=False).stdout
    assert marker.exists() and "failed" in status, f"the driver was not killed at epoch {KILL_EPOCH} ({status.strip()[-300:]}):\n{_short(first_log)}"
    killed_at, killed_s = marker.read_text(), time.monotonic() - started

    resumed = subprocess.run([*submit, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=900,
                             env={**submit_env, "RAY_JOB_ARGS": "--submission-id two-nodes-2"})  # fmt: skip
    total_s = time.monotonic() - started
    logs = _ray("job", "logs", "--address", dashboard, "two-nodes-2", env=env, check=False).stdout
    status = _ray("job", "status", "--address", dashboard, "two-nodes-2", env=env, check=False).stdout
    for job in ("two-nodes-1", "two-nodes-2"):  # the driver logs, for a failure's post-mortem
        (tmp_path / f"{job}.log").write_text(_ray("job", "logs", "--address", dashboard, job, env=env, check=False).stdout)
    assert resumed.returncode == 0 and "succeeded" in status.lower() and "resuming sweep two-nodes" in logs, f"{tmp_path}/two-nodes-2.log\n{_short(logs)}"

    # Every trial once in MLflow, every epoch logged once, completed.
    client, trials = _trials(mlflow_server)
    ids = [t.data.tags["raysweep.trial_id"] for t in trials]
    assert len(ids) == 2 == len(set(ids)), ids
    epochs = {}
    for t in trials:
        assert t.data.tags["raysweep.trial_status"] == "completed"
        steps = sorted(m.step for m in client.get_metric_history(t.info.run_id, "val/loss"))
        assert steps == list(range(1, EPOCHS + 1)), steps  # every epoch once, the one the driver died in too
        assert "test/civet_test/acc" in t.data.metrics
        epochs[t.data.tags["raysweep.trial_id"]] = steps

    # Checkpoints and Tune state on S3, nothing written to a local folder named after the URI.
    files = storage.list_files(f"s3://{BUCKET}/two-nodes/sweeps/{SWEEP}")
    assert "raysweep_sweep.json" in files and "tuner.pkl" in files and any(f.startswith("experiment_state") for f in files)
    for trial_id in ids:
        assert any(f.startswith(f"trials/{trial_id}/") and f"/epoch-{EPOCHS:03d}/" in f for f in files), (trial_id, files[:20])
    assert not (REPO / "s3:").exists() and not (tmp_path / "s3:").exists()

    # Every Ray Train worker ran on the second node (the state API through the CLI, which sends the token).
    def state(kind, *filters):
        args = ["list", kind, "--address", dashboard, "--detail", "--format", "json", "--limit", "1000"]
        return json.loads(_ray(*args, *(a for f in filters for a in ("--filter", f)), env=env).stdout)

    (node2,) = [n["node_id"] for n in state("nodes") if "node2" in (n.get("resources_total") or {})]
    workers = state("actors", "class_name=RayTrainWorker")
    assert workers and {a["node_id"] for a in workers} == {node2}

    # The best adapter is registered and loads over HTTP.
    import mlflow

    from raysweep.models._rows import synthetic_rows

    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/raysweep-llava-next@champion")
    rows = synthetic_rows(2)
    answers = list(model.predict([{"image": r["image"], "prompt": r["prompt"]} for r in rows]))
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    print(f"\ntwo nodes: driver killed at {killed_s:.0f} s ({killed_at}), sweep resumed and done at {total_s:.0f} s; "
          f"{len(workers)} Ray Train workers on node2; {len(files)} files on S3: {json.dumps(sorted({f.split('/')[0] for f in files}))}; "
          f"val/loss epochs in MLflow per trial: {epochs}")
