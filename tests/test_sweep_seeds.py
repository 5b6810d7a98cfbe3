"""sweep.seeds end to end (integration, about 3 minutes): a real sweep over 2 points x 2 seeds, then
its summary, registration, `raysweep report` and `raysweep compare --pool-seeds` on what it logged."""

import csv
import json

import pytest
from mlflow import MlflowClient

from raysweep.cli import main
from tests.test_sweep import CONFIGS, local_ray  # noqa: F401  (the module's local Ray fixture)

pytestmark = pytest.mark.integration
TINY = [
    "data.combos=[{shapes: [circle, star], colors: [white]}, {shapes: [plus], colors: [red, blue]}]",
    "data.sizes={large: 0.86}", "model.tiny_layers=2", "train.batch_size=8", "train.steps_per_epoch=10",
    "train.val_limit=18", "train.epochs=1", "train.eval_sets=[{name: civet, config: configs/data/civet_test.yaml, limit: 18}]",
    "sweep.space={train.lr: {grid: [1.0e-3, 1.0e-6]}}", "sweep.seeds=[0, 1]", "sweep.scheduler=fifo", "sweep.metric=val/acc",
    "sweep.mode=max", "sweep.group_by=[]", "sweep.name=seeded", "mlflow.experiment=seeded",
]  # fmt: skip


def test_seeded_sweep_summary_registration_report_and_pooled_compare(tmp_path, local_ray, capsys):  # noqa: F811
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["sweep", str(CONFIGS / "quickstart.yaml"), *TINY, f"mlflow.tracking_uri={uri}", f"sweep.storage_path={tmp_path}/s"]) == 0
    out = capsys.readouterr().out
    assert "### Mean over seeds of each group's best point (95% t interval)" in out
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("seeded")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get("raysweep.role") == "trial"]
    seeds = sorted((r.data.params["train.lr"], r.data.params["train.seed"]) for r in trials)
    assert seeds == [("0.001", "0"), ("0.001", "1"), ("1e-06", "0"), ("1e-06", "1")]  # every point once per seed
    parent = next(r for r in runs if r.data.tags.get("raysweep.role") == "sweep")
    assert "best/all/val_seed_mean" in parent.data.metrics
    version = client.get_model_version_by_alias("raysweep-llava-next", "champion")
    assert version.tags["seeds"] in ("0,1", "1,0") and version.tags["seed_mean"].startswith("val/acc ")

    report = tmp_path / "report"
    assert main(["report", "--experiment", "seeded", "--sweep", "seeded", "--out", str(report), "--tracking-uri", uri]) == 0
    rows = list(csv.DictReader((report / "seeds.csv").open()))
    assert sorted(r["point"] for r in rows) == ["train.lr=0.001", "train.lr=1e-06"] and all(r["seeds"] == "0, 1" for r in rows)

    by = {(r.data.params["train.lr"], r.data.params["train.seed"]): r.info.run_id for r in trials}
    capsys.readouterr()
    assert main(["compare", by[("1e-06", "0")], by[("0.001", "1")], "--pool-seeds", "--json", "--tracking-uri", uri]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [len(side["run_ids"]) for side in result["runs"]] == [2, 2]
    assert result["config_diff"] == {"train.lr": ["1e-06", "0.001"]}
    assert result["sets"]["civet"]["rows"] == 36  # 18 rows x 2 seeds, paired as (seed, row)
