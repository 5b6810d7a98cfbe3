"""raysweep probe: layer-wise linear probes, base against an adapter, plotted and logged to MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from raysweep.cli import main
from raysweep.probe import probe_accuracy, split_rows

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs/models/tiny-llava-next.yaml")


def test_probes_read_what_a_layer_holds_and_score_held_out_rows():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    noise = rng.normal(size=(120, 3, 8))
    noise[:, 2, :4] += 4 * np.eye(4)[labels]  # layer 2 holds the label, layers 0-1 only noise
    fit, score = split_rows(labels, 0.25, seed=1)
    assert set(fit).isdisjoint(score) and len(score) == 32 and set(np.bincount(labels[score])) == {8}
    acc = probe_accuracy(noise, labels, fit, score)
    assert acc[2] == 1.0 and max(acc[:2]) < 0.6


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "set"
    assert main(["generate", str(REPO / "configs/data/civet_test.yaml"), "data.fraction=0.02", "data.canvas_size=84",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    return out


def test_probe_base_and_adapter_plot_and_log_to_the_adapters_run(small_set, tmp_path, capsys):
    from mlflow import MlflowClient

    from raysweep.config import load_config
    from raysweep.models import get_family
    from raysweep.tracking import RunLogger

    cfg = load_config(TINY, ["model.tiny_layers=2"])
    family = get_family("llava-next")
    built = family.apply_lora(family.build(cfg.model), cfg.lora)
    family.save_adapter(built, tmp_path / "adapter")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = RunLogger.start(uri, "probe-test", "the-adapters-run")
    out = tmp_path / "probe"
    assert main(["probe", TINY, "model.tiny_layers=2", f"mlflow.tracking_uri={uri}", "--data", str(small_set),
                 "--adapter", str(tmp_path / "adapter"), "--run-id", run.run_id, "--out", str(out)]) == 0  # fmt: skip
    record = json.loads((out / "probe.json").read_text())
    assert record["layers"] == 3 and set(record["accuracy"]) == {"base", "fine-tuned"}  # embeddings + 2 layers
    assert all(0.0 <= a <= 1.0 for values in record["accuracy"].values() for a in values)
    assert record["scored_rows"] + record["fit_rows"] == record["rows"] == 81 and (out / "probe.png").stat().st_size > 1000
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run.run_id, "probe/finetuned/acc")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert {a.path for a in client.list_artifacts(run.run_id, "probe")} == {"probe/probe.json", "probe/probe.png"}
    assert "base " in capsys.readouterr().out


def test_probe_without_a_run_id_makes_a_run_and_refuses_clip(small_set, tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["probe", TINY, "model.tiny_layers=2", f"mlflow.tracking_uri={uri}", "mlflow.experiment=probes",
                 "--data", str(small_set), "--out", str(tmp_path / "p")]) == 0  # fmt: skip
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("probes").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["raysweep.role"] == "probe" and "probe/base/acc" in runs[0].data.metrics
    capsys.readouterr()
    code = main(["probe", str(REPO / "configs/models/tiny-clip.yaml"), f"mlflow.tracking_uri={uri}", "--data", str(small_set),
                 "--out", str(tmp_path / "c")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "clip has none" in err
