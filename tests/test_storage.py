"""raysweep.storage: local folders and s3:// URIs through one helper, against a local S3 endpoint.

The S3 endpoint is moto's server mode (a real S3 HTTP API on 127.0.0.1), reached the way a cluster's
workers reach MinIO or another S3-compatible store: through ``AWS_ENDPOINT_URL``.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from raysweep import storage
from raysweep.errors import UserError

BUCKET = "raysweep-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free port, the AWS variables pointing at it, and an empty bucket."""
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"moto server did not start on {endpoint}")
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.terminate()
    server.wait(timeout=10)


def test_local_paths_are_made_absolute_and_uris_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("runs/sweeps") == str(tmp_path / "runs" / "sweeps")
    assert storage.resolve("~/x") == os.path.expanduser("~/x")
    assert storage.resolve("s3://bucket/runs/") == "s3://bucket/runs"
    assert storage.join("s3://bucket/runs", "sweep", "trials/") == "s3://bucket/runs/sweep/trials"
    assert storage.join("gs://b", "x") == "gs://b/x"
    assert storage.join("runs", "a") == str(tmp_path / "runs" / "a")
    assert storage.is_uri("s3://b/x") and not storage.is_uri("/tmp/x") and not storage.is_uri("s3:/b/x")
    assert storage.is_local("file:///tmp/x") and storage.is_local("rel/x") and not storage.is_local("s3://b")


def test_local_round_trip(tmp_path):
    root = tmp_path / "store"
    assert not storage.exists(root) and storage.list_files(root) == []
    storage.write_json(storage.join(root, "sweep", "state.json"), {"parent_run_id": "abc"})
    storage.write_text(storage.join(root, "sweep", "trials", "t1", "note.txt"), "été")
    assert storage.read_json(root / "sweep" / "state.json") == {"parent_run_id": "abc"}
    assert storage.read_text(f"file://{root}/sweep/trials/t1/note.txt") == "été"
    assert storage.list_files(root) == ["sweep/state.json", "sweep/trials/t1/note.txt"]
    kwargs = storage.ray_storage(root)
    assert kwargs["storage_path"] == str(root) and kwargs["storage_filesystem"].type_name == "local"


def test_unknown_scheme_and_empty_location_are_user_errors():
    with pytest.raises(UserError, match=r"storage location nope://bucket/x: .*s3://bucket/prefix"):
        storage.exists("nope://bucket/x")
    with pytest.raises(UserError, match="empty storage location"):
        storage.resolve("")


def test_s3_round_trip_through_the_endpoint(s3_endpoint, tmp_path):
    root = f"s3://{BUCKET}/round-trip"
    assert not storage.exists(root) and storage.list_files(root) == []
    storage.write_json(storage.join(root, "sweep", "raysweep_sweep.json"), {"parent_run_id": "abc"})
    storage.write_text(storage.join(root, "sweep", "trials", "t1", "log.txt"), "epoch 1\n")
    assert storage.exists(root) and storage.exists(f"{root}/sweep/raysweep_sweep.json")
    assert storage.read_json(f"{root}/sweep/raysweep_sweep.json") == {"parent_run_id": "abc"}
    assert storage.read_text(f"{root}/sweep/trials/t1/log.txt") == "epoch 1\n"
    assert storage.list_files(root) == ["sweep/raysweep_sweep.json", "sweep/trials/t1/log.txt"]

    adapter = tmp_path / "adapter"
    (adapter / "sub").mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "sub" / "weights.bin").write_bytes(b"\0" * 10)
    storage.upload_folder(adapter, f"{root}/best_adapter")
    assert storage.list_files(f"{root}/best_adapter") == ["adapter_config.json", "sub/weights.bin"]

    # Seen by another S3 client too: the objects are really on the endpoint, not in a local folder.
    import boto3

    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="round-trip/")["Contents"]}
    assert "round-trip/sweep/raysweep_sweep.json" in keys and "round-trip/best_adapter/sub/weights.bin" in keys
    assert not (tmp_path / "s3:").exists() and not os.path.exists("s3:")


@pytest.mark.integration  # a local Ray, one Train run and a 2-trial Tune run: about 35 s on 2 cores
def test_ray_train_and_tune_write_to_s3_storage(s3_endpoint, tmp_path, tmp_path_factory):
    """Ray Train checkpoints and Tune experiment state land on the S3 endpoint through ray_storage()."""
    ray = pytest.importorskip("ray")
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    root = f"s3://{BUCKET}/ray"

    def report_one_checkpoint(config):  # nested: pickled by value, the workers cannot import test modules
        import tempfile

        import ray.train

        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.txt"), "w") as f:
                f.write("epoch 1")
            ray.train.report({"epoch": 1}, checkpoint=ray.train.Checkpoint.from_directory(d), checkpoint_dir_name="epoch-001")

    def tune_trial(config):
        tune.report({"epoch": 1, "score": config["x"]})

    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        trainer = TorchTrainer(report_one_checkpoint, scaling_config=ScalingConfig(num_workers=1),
                               run_config=RunConfig(name="train-run", **storage.ray_storage(f"{root}/train")))  # fmt: skip
        result = trainer.fit()
        assert result.checkpoint is not None
        train_files = storage.list_files(f"{root}/train/train-run")
        assert "epoch-001/state.txt" in train_files, train_files

        tuner = tune.Tuner(tune.with_resources(tune_trial, {"CPU": 0.5}), param_space={"x": tune.grid_search([1, 2])},
                           run_config=tune.RunConfig(name="sweep", **storage.ray_storage(f"{root}/tune")))  # fmt: skip
        results = tuner.fit()
        assert sorted(r.metrics["score"] for r in results) == [1, 2]
        fs, path = storage.filesystem(f"{root}/tune/sweep")
        assert tune.Tuner.can_restore(path, storage_filesystem=fs)
        assert any(f.startswith("tuner.pkl") for f in storage.list_files(f"{root}/tune/sweep"))
    finally:
        ray.shutdown()
    assert not (tmp_path / "s3:").exists()
