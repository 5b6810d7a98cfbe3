import hashlib

import pytest

ray = pytest.importorskip("ray")

from raysweep.config import load_config  # noqa: E402
from raysweep.datasets.synthetic import scene_columns  # noqa: E402
from raysweep.scenes import Renderer, SceneSet  # noqa: E402


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def test_ray_data_stream_matches_plain_rendering(local_ray):
    from raysweep.launch.data import scene_dataset

    cfg = load_config(None, ["data.distractors=3", "data.fraction=0.02", "data.combos=[{shapes: [star, circle], colors: [red, blue]}]"]).data
    rows = scene_dataset(cfg, batch_size=16, num_blocks=3).take_all()
    scenes = SceneSet(cfg)
    plain = scene_columns(scenes, Renderer(cfg), range(len(scenes)))
    got = sorted((int(r["scene_id"]), hashlib.sha256(r["image"]).hexdigest(), r["question"]) for r in rows)
    want = sorted(zip(plain["scene_id"], (hashlib.sha256(b).hexdigest() for b in plain["image"]), plain["question"]))
    assert got == want and len(got) == len(scenes)


# ---- train.data_loader=ray_data: the training input ------------------------------------------------------------
SMALL = [
    "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
    "data.sizes={large: 0.86}", "model.tiny_layers=2", "train.batch_size=4", "train.steps_per_epoch=3",
    "train.val_limit=18", "train.warmup_steps=2", "eval.batch_size=32", "train.epochs=2", "train.patience=0",
    "train.eval_sets=[]",
]  # fmt: skip


def _losses(uri: str, name: str) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(experiment_ids=[client.get_experiment_by_name("raysweep-train-tiny").experiment_id],
                                filter_string=f"tags.mlflow.runName = '{name}'")  # fmt: skip
    out = {}
    for key in ("train/loss", "val/loss"):
        out[key] = [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
    return out


def test_ray_data_input_is_the_worker_loaders_batches_and_survives_faults(tmp_path, local_ray):
    """One worker: the ray_data pipeline serves exactly the worker loader's batches, so the per-epoch
    losses match to 1e-6 - even when the Train worker fails after epoch 1 (resumed from its checkpoint)
    and a Ray Data worker dies mid-epoch 2 (Ray retries its task)."""
    from raysweep.config import load_config
    from raysweep.launch.train import run_training

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = [*SMALL, f"mlflow.tracking_uri={uri}", f"train.storage_path={tmp_path}/runs", "train.num_workers=1"]
    run_training(load_config("configs/train-tiny.yaml", [*common, "train.name=plain", "train.data_loader=worker"]), quiet=True)
    failed, killed = tmp_path / "failed-once", tmp_path / "killed-once"
    cfg = load_config("configs/train-tiny.yaml", [*common, "train.name=streamed", "train.data_loader=ray_data", "train.max_failures=1",
                      "train.data_batches_per_task=2"])  # 3 batches an epoch: tasks of 2 and 1
    run_training(cfg, quiet=True,
                 loop_callbacks=[("tests.loop_faults:FailOnce", {"marker": str(failed), "moment": "on_epoch_end", "epoch": 1})],
                 data_hooks=[("tests.loop_faults:kill_data_worker_once", {"marker": str(killed), "at_epoch": 1, "at_batch": 1})])  # fmt: skip
    assert failed.exists() and killed.read_text().startswith("collate of epoch 1, batch 1"), "the injected faults did not happen"
    plain, streamed = _losses(uri, "plain"), _losses(uri, "streamed")
    assert len(plain["train/loss"]) == 2 and len(streamed["train/loss"]) == 2, "each epoch logged once"
    for key in plain:
        assert streamed[key] == pytest.approx(plain[key], abs=1e-6), key


def test_ray_data_input_deals_each_epochs_permutation_once_across_two_workers(tmp_path, local_ray):
    """Two workers: every epoch consumes the first steps x batch x workers entries of its seeded
    permutation, each once, the same number of batches on each worker."""
    import json
    from collections import Counter

    from raysweep.config import load_config
    from raysweep.launch.train import run_training
    from raysweep.training.data import epoch_batches, train_val_sources

    cfg = load_config("configs/train-tiny.yaml", [*SMALL, f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                      f"train.storage_path={tmp_path}/runs", "train.name=two", "train.num_workers=2", "train.cpus_per_worker=0.5",
                      "train.strategy=ddp", "train.data_loader=ray_data"])  # fmt: skip
    served = tmp_path / "served"
    run_training(cfg, quiet=True, loop_callbacks=[("tests.loop_faults:RecordServed", {"folder": str(served)})])
    n_rows = len(train_val_sources(cfg)[0])
    for epoch in (1, 2):
        per_rank = [json.loads((served / f"epoch{epoch}-rank{r}.json").read_text()) for r in (0, 1)]
        assert [len(b) for b in per_rank] == [3, 3], "equal batches per worker"
        got = Counter(p for batches in per_rank for batch in batches for p in batch)
        want = Counter(p for batch in epoch_batches(n_rows, epoch - 1, cfg.train.seed, 0, 1, 6, 4) for p in batch)
        assert got == want


def test_a_row_that_fails_in_collate_is_named_with_its_dataset():
    from raysweep.launch.data import collate_or_name_row
    from raysweep.errors import UserError

    class Family:
        name = "fussy"

        def collate(self, built, rows, train):
            if any(r["scene_id"] == 7 for r in rows):
                raise ValueError("image has 4 channels\ntraceback...")
            return {"n": len(rows)}

    assert collate_or_name_row(Family(), None, [{"scene_id": 1}], "coco_val (out/coco)") == {"n": 1}
    with pytest.raises(UserError, match=r"^coco_val \(out/coco\): row 7: fussy cannot collate it \(image has 4 channels\); "):
        collate_or_name_row(Family(), None, [{"scene_id": 1}, {"scene_id": 7}], "coco_val (out/coco)")


def test_a_user_error_inside_the_pipeline_reaches_the_driver_as_that_one_line(tmp_path, local_ray):
    from raysweep.config import load_config
    from raysweep.errors import find_user_error
    from raysweep.launch.train import run_training

    cfg = load_config("configs/train-tiny.yaml", [*SMALL, f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                      f"train.storage_path={tmp_path}/runs", "train.name=bad-row", "train.num_workers=1",
                      "train.data_loader=ray_data"])  # fmt: skip
    with pytest.raises(Exception) as info:
        run_training(cfg, quiet=True, data_hooks=[("tests.loop_faults:bad_row", {"at": 2})])
    found = find_user_error(info.value)
    assert found is not None and found.message == "synthetic scenes: row 99: injected bad row; remove it"


def test_eval_on_two_replicas_keeps_every_rows_order_id_and_prediction(tmp_path, local_ray):
    """`raysweep eval --replicas 2` (Ray Data batch inference) writes the predictions of `--local`, row for row."""
    import json

    from raysweep.cli import main

    data = tmp_path / "test"
    assert main(["generate", "configs/data/civet_test.yaml", "data.fraction=0.01", "data.canvas_size=84", "--out", str(data), "--quiet"]) == 0
    common = ["eval", "configs/models/tiny-llava-next.yaml", "model.tiny_layers=2", "eval.batch_size=8", "eval.max_new_tokens=3",
              "--data", str(data), "--mode", "both", "--limit", "30"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "local"), "--local"]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--replicas", "2"]) == 0
    for mode in ("choice", "generate"):
        local, ray_rows = ([json.loads(line) for line in (tmp_path / where / mode / "predictions.jsonl").read_text().splitlines()]
                           for where in ("local", "ray"))  # fmt: skip
        assert len(local) == 30 and [r["scene_id"] for r in ray_rows] == [r["scene_id"] for r in local]
        assert [(r["pred"], r["text"]) for r in ray_rows] == [(r["pred"], r["text"]) for r in local], mode
        a, b = (json.loads((tmp_path / where / mode / "metrics.json").read_text()) for where in ("local", "ray"))
        assert a["acc"] == b["acc"] and a["n"] == b["n"] == 30


def test_the_rows_stage_takes_each_epochs_curriculum_phase(tmp_path, local_ray):
    """data.curriculum: the pipeline's rows of epoch 0 come from phase 1 (synthetic only), of epoch 1 from
    phase 2 (half from the second source, Parquet rows carry encoded image bytes)."""
    import numpy as np

    from raysweep._configlib import to_dict
    from raysweep.config import load_config
    from raysweep.datasets.synthetic import generate
    from raysweep.launch.data import EpochClock, RowsStage
    from raysweep.training.data import train_val_sources

    other = tmp_path / "other"
    generate(load_config(None, ["data.canvas_size=84", "data.fraction=0.05", "data.seed=3"]).data, other, progress=False)
    cfg = load_config("configs/train-tiny.yaml", [*SMALL, f"data.parquet={{other: {other}}}", "data.mix.source=other", "data.size=40",
                      "data.curriculum=[{epochs: 1, mix_ratio: 0.0}, {epochs: 1, mix_ratio: 0.5}]"])  # fmt: skip
    n_rows = len(train_val_sources(cfg)[0])
    clock = EpochClock.remote()
    stage = RowsStage(to_dict(cfg), n_rows, 10, 4, clock)
    parquet_rows = []
    for epoch in (0, 1):
        ray.get(clock.set.remote(epoch))
        got_epoch, positions, batches = stage.rows(np.arange(10))
        assert got_epoch == epoch and len(positions) == len(batches) == 10
        rows = [r for batch in batches for r in batch]
        parquet_rows.append(sum(isinstance(r["image"], (bytes, bytearray)) for r in rows))
    assert parquet_rows[0] == 0 and parquet_rows[1] > 0
