"""`raysweep train` end to end on a local Ray: 2 CPU workers with DeepSpeed, MLflow, registry, faults."""

from pathlib import Path

import pytest

from raysweep.cli import main

ray = pytest.importorskip("ray")

SMALL = [
    "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
    "data.sizes={large: 0.86}",
    "model.tiny_layers=2",
    "train.batch_size=4",
    "train.steps_per_epoch=3",
    "train.val_limit=18",
    "train.warmup_steps=2",
    "eval.batch_size=32",
]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray.init(num_cpus=2, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory, tinycoco):
    out = tmp_path_factory.mktemp("coco") / "val"
    args = ["coco", "--annotations", str(tinycoco / "annotations" / "instances_train2017.json"),
            "--images", str(tinycoco / "images" / "train2017"), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    return out


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_two_worker_deepspeed_run_logs_everything(tmp_path, local_ray, coco_set, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["train", "configs/train-tiny.yaml", *SMALL, f"mlflow.tracking_uri={uri}", f"train.storage_path={tmp_path}/runs",
            "train.name=e2e", "train.num_workers=2", "train.cpus_per_worker=0.5", "train.strategy=deepspeed",
            "train.epochs=4", "train.patience=1", "train.min_delta=100",  # no epoch after the first can improve
            f"train.eval_sets=[{{name: civet, config: configs/data/civet_test.yaml, limit: 27}}, {{name: coco, path: {coco_set}}}]",
            "--register"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "civet" in out and "coco" in out and "models:/raysweep-llava-next@champion" in out

    client = _client(uri)
    exp = client.get_experiment_by_name("raysweep-train-tiny")
    (run,) = client.search_runs([exp.experiment_id])
    params, metrics = run.data.params, run.data.metrics
    assert params["family"] == "llava-next" and params["base_checkpoint"] == "tiny"
    assert params["lora.rank"] == "32" and params["train.num_workers"] == "2" and params["strategy"] == "deepspeed"
    assert int(params["trainable_params"]) > 0 and int(params["world_size"]) == 2
    for key in ("train/loss", "val/loss", "val/acc", "val/acc/top_left", "val/pred_frac/bottom_right", "val/parse_fail_rate"):
        assert key in metrics, key
    for prefix in ("test/civet", "base/civet", "test/coco", "base/coco"):
        assert 0.0 <= metrics[f"{prefix}/acc"] <= 1.0
        assert f"{prefix}/acc/center" in metrics and f"{prefix}/pred_frac/top_left" in metrics
    # early stopping: epoch 1 is the best, epoch 2 is one bad epoch with patience 1 -> stop
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert sorted(m.step for m in history) == [1, 2]
    assert metrics["early_stopped"] == 1 and metrics["best_epoch"] == 1

    arts = {a.path for a in client.list_artifacts(run.info.run_id, "eval/civet/finetuned")}
    assert "eval/civet/finetuned/acc_by_area.png" in arts
    adapter = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in adapter and "adapter/adapter_config.json" in adapter
    assert (tmp_path / "runs" / "e2e" / "best_adapter" / "adapter_model.safetensors").is_file()

    version = client.get_model_version_by_alias("raysweep-llava-next", "champion")
    assert version.tags["family"] == "llava-next" and version.tags["rank"] == "32"
    assert version.run_id == run.info.run_id

    # the registered adapter loads back by alias into `raysweep eval`, with the run's accuracy
    small = [a for a in SMALL if a.startswith("model.")]
    report = tmp_path / "report"
    assert main(["eval", "configs/models/tiny-llava-next.yaml", *small, f"mlflow.tracking_uri={uri}", "--data", str(coco_set),
                 "--adapter", "models:/raysweep-llava-next@champion", "--out", str(report)]) == 0  # fmt: skip
    import json

    assert json.loads((report / "metrics.json").read_text())["acc"] == pytest.approx(metrics["test/coco/acc"])
    assert main(["eval", "configs/models/tiny-llava-next.yaml", f"mlflow.tracking_uri={uri}", "--data", str(coco_set),
                 "--adapter", "models:/raysweep-llava-next@nosuch"]) == 2  # fmt: skip


def test_worker_failure_resumes_from_latest_checkpoint(tmp_path, local_ray):
    from raysweep.config import load_config
    from raysweep.launch.train import run_training

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config("configs/train-tiny.yaml", [*SMALL, f"mlflow.tracking_uri={uri}", f"train.storage_path={tmp_path}/runs",
                      "train.name=fault", "train.num_workers=1", "train.epochs=2", "train.patience=0",
                      "train.max_failures=1", "train.eval_sets=[]"])  # fmt: skip
    marker = tmp_path / "failed-once"  # rank 0 raises once, at the end of epoch 1 (after its checkpoint)
    fault = ("tests.loop_faults:FailOnce", {"marker": str(marker), "moment": "on_epoch_end", "epoch": 1})
    outcome = run_training(cfg, loop_callbacks=[fault], quiet=True)
    assert outcome.adapter_dir is not None
    assert marker.read_text() == "on_epoch_end of epoch 1, step 3", "the injected failure did not happen"
    client = _client(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("raysweep-train-tiny").experiment_id])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert steps == [1, 2], "epoch 1 must not be repeated after the restart"
    state = sorted(Path(tmp_path, "runs", "fault").glob("epoch-*"))
    assert [p.name for p in state][-1] == "epoch-002"


def test_ray_data_loader_streams_positions_to_two_workers(tmp_path, local_ray):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["train", "configs/train-tiny.yaml", *SMALL, f"mlflow.tracking_uri={uri}", f"train.storage_path={tmp_path}/runs",
            "train.name=stream", "train.num_workers=2", "train.cpus_per_worker=0.5", "train.strategy=ddp",
            "train.data_loader=ray_data", "train.epochs=2", "train.patience=0", "train.eval_sets=[]"]  # fmt: skip
    assert main(args) == 0
    client = _client(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("raysweep-train-tiny").experiment_id])
    assert run.data.params["train.data_loader"] == "ray_data" and run.data.params["strategy"] == "ddp"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == [1, 2]


def test_a_line_printed_in_a_train_worker_reaches_the_driver_once(tmp_path):
    """Ray Train V2 tees a worker's print() to its logger and to the wrapped stdout: twice on the
    driver, unless init_ray turns the patch off (RAY_TRAIN_ENABLE_PRINT_PATCH=0)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "one_line.py"
    script.write_text(
        "from ray.train import RunConfig, ScalingConfig\n"
        "from ray.train.torch import TorchTrainer\n"
        "from raysweep.launch.train import init_ray\n"
        "init_ray()\n"
        "def loop():\n"
        "    print('epoch 1: printed in the worker', flush=True)\n"
        f"TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=1), run_config=RunConfig(storage_path={str(tmp_path / 'runs')!r})).fit()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (done.stdout + done.stderr).count("epoch 1: printed in the worker") == 1, done.stdout[-2000:]
