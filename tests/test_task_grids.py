"""absolute_position on 2x2, 3x3 and 4x4 answer grids, end to end: generate, train a tiny model, evaluate, report.

The grid is config (data.areas_per_side); nothing else changes. The set, the tiny tokenizer, the
training rows, the validation metrics, the adapter's identity and the evaluation report all follow it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.datasets import open_dataset
from raysweep.datasets.audit import audit

REPO = Path(__file__).resolve().parents[1]
GRIDS = {2: 8, 3: 9, 4: 8}  # areas per side -> cells per side (must divide)


def _data(side: int) -> list[str]:
    return [f"data.grid_size={GRIDS[side]}", f"data.areas_per_side={side}", "data.canvas_size=84", "data.antialias=1"]


@pytest.mark.parametrize("side", sorted(GRIDS))
def test_generate_train_evaluate_report_on_an_n_by_n_grid(side, tmp_path, capsys):
    import torch

    from raysweep.models._adapter_identity import IDENTITY_FILE
    from raysweep.training.data import train_val_sources
    from raysweep.training.engine import WorkerTrainer

    torch.set_num_threads(1)
    n_areas = side * side
    # generate: a balanced held-out test split on this grid
    test_set = tmp_path / "test"
    assert main(["generate", str(REPO / "configs/data/civet_test.yaml"), *_data(side), "data.fraction=0.02",
                 "--out", str(test_set), "--quiet"]) == 0  # fmt: skip
    task = open_dataset(test_set).task
    assert task.n_classes == n_areas and task.grid_side() == side
    counts = audit(test_set)["area"]["counts"]
    assert len(counts) == n_areas and len(set(counts)) == 1  # exactly balanced per area

    # train a tiny model a few steps on the training pool of the same grid
    cfg = load_config(str(REPO / "configs/models/tiny-llava-next.yaml"),
                      [*_data(side), "data.split=train", "data.combos=[{shapes: [plus], colors: [red, blue]}]",
                       "data.sizes={large: 0.86}", "model.tiny_layers=2", "train.lr=1e-3", "train.threads=1"])  # fmt: skip
    train, val = train_val_sources(cfg)
    trainer = WorkerTrainer(cfg)
    assert trainer.built.answer_names == list(task.answer_names)
    tok = trainer.built.tokenizer
    assert all(len(tok(name, add_special_tokens=False)["input_ids"]) == 1 for name in task.answer_names)  # one token each
    for start in range(0, 24, 8):
        trainer.train_step(trainer.prepare(train.rows(range(start, start + 8))))
    metrics = trainer.validate(val, batch_size=16)
    assert {f"val/acc/{slug}" for slug in task.slugs} <= set(metrics)
    assert ("val/center_bias" in metrics) == (side != 2)  # a 2x2 grid has no centre
    adapter = tmp_path / "adapter"
    trainer.family.save_adapter(trainer.built, adapter)
    assert json.loads((adapter / IDENTITY_FILE).read_text())["task"]["answer_names"] == list(task.answer_names)

    # evaluate the adapter on the held-out split: the report is the grid's
    report = tmp_path / "report"
    assert main(["eval", str(REPO / "configs/models/tiny-llava-next.yaml"), "model.tiny_layers=2", "--data", str(test_set),
                 "--adapter", str(adapter), "--out", str(report), "--local"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    result = json.loads((report / "metrics.json").read_text())
    assert result["n"] == len(open_dataset(test_set).read(["label"])) and len(result["per_class"]) == n_areas
    assert {f"acc/{slug}" for slug in task.slugs} <= set(result) and result["answer_names"] == list(task.answer_names)
    assert (report / "acc_by_area.png").is_file() and (report / "pred_share_by_area.png").is_file()
    grid_lines = table.split("accuracy by target class\n")[1].split("share of predictions")[0].strip().splitlines()
    assert len(grid_lines) == side and all(len(line.split()) == side for line in grid_lines)


def test_an_adapter_of_one_grid_is_refused_on_another(tmp_path, capsys):
    from raysweep.models import get_family
    from raysweep.tasks import task_from_config

    cfg = load_config(str(REPO / "configs/models/tiny-llava-next.yaml"), ["model.tiny_layers=2"])
    family = get_family("llava-next")
    built = family.apply_lora(family.build(cfg.model, task_from_config({"areas_per_side": 2})), cfg.lora)
    family.save_adapter(built, tmp_path / "adapter")
    data = tmp_path / "nine"
    assert main(["generate", str(REPO / "configs/data/civet_test.yaml"), "data.fraction=0.01", "data.canvas_size=84",
                 "--out", str(data), "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    code = main(["eval", str(REPO / "configs/models/tiny-llava-next.yaml"), "model.tiny_layers=2", "--data", str(data),
                 "--adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert 'task.answer_names=["top left", "top right", "bottom left", "bottom right"]' in err
    assert not (tmp_path / "r" / "metrics.json").exists()


@pytest.mark.parametrize("side", [2, 4])
def test_the_analysis_report_lays_out_each_runs_own_grid(side):
    from analysis import tables
    from analysis.runs import Trial
    from raysweep.tasks import task_from_config

    task = task_from_config({"areas_per_side": side})
    metrics = {f"{k}/civet/acc/{slug}": (0.5 if k == "base" else 1.0) for slug in task.slugs for k in ("base", "test")}
    metrics.update({f"{k}/civet/center_bias": 0.4 for k in ("base", "test")})
    trial = Trial("r1", "run-1", {"data.areas_per_side": str(side), "data.area_names": "[]"}, metrics, "completed",
                  curves={"val/acc": [(1, 0.9)]})  # fmt: skip
    per_area = tables.per_area_table([trial], ["civet"])
    assert [row[2] for row in per_area.rows] == task.slugs
    grid = tables.per_area_grids(per_area, [trial])
    body = [line for line in grid.splitlines() if line.startswith("| ") and "→" in line]
    assert len(body) == side and all(line.count("50.0% → 100.0%") == side for line in body)
    bias = {t.slug for t in tables.bias_tables([trial], ["civet"])}
    assert bias == (set() if side == 2 else {"center_bias"})
