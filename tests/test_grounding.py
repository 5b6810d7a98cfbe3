"""train.grounding_weight: the names' positions in the prompt, their tokens and cells, the auxiliary loss, its checks.

README, Tasks ("It learns"): without it the tiny model does not learn which described object is which.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raysweep.config import load_config
from raysweep.errors import ConfigError, UserError

REPO = Path(__file__).resolve().parents[1]
RELATIVE_TEST = str(REPO / "configs/data/relative_test.yaml")
SMALL = ["data.fraction=0.01", "data.canvas_size=84"]


def _rows(config: str | None, *overrides: str, n: int = 12):
    from raysweep.training.data import SyntheticRows

    return SyntheticRows(load_config(config, SMALL + list(overrides)).data).rows(range(n))


@pytest.mark.parametrize(("overrides", "target_first"), [
    ((), True),
    (("data.prompt_prefix=Look. ",), True),
    (("data.template='Relative to the {anchor}, where is the {ref}? Options: [{options}].'",), False),
])  # fmt: skip
def test_relative_rows_name_both_objects_where_the_prompt_does(overrides, target_first):
    """Every name ends where the prompt says it, in template order, with its object's cell."""
    for row in _rows(RELATIVE_TEST, *overrides):
        first, second = row["grounding"]
        assert first[0] < second[0]
        target, reference = (first, second) if target_first else (second, first)
        assert target[1:] == [row["cell_row"], row["cell_col"]]
        assert reference[1:] == [row["ref_row"], row["ref_col"]]
        for end, _, _ in (target, reference):
            name = row["prompt"][:end].rsplit("the ", 1)[-1]
            assert len(name.split()) == 2 and row["prompt"][end] in "?, ", (row["prompt"], end)  # "red star", then "?" / " relative"
        colour, shape = row["prompt"][: target[0]].rsplit("the ", 1)[-1].split()
        assert f"the {colour} {shape}" in row["prompt"]


def test_absolute_rows_name_the_target_alone():
    for row in _rows(None, n=6):
        [[end, r, c]] = row["grounding"]
        assert (r, c) == (row["cell_row"], row["cell_col"])
        assert row["prompt"][:end].endswith(" circle") or len(row["prompt"][:end].rsplit("the ", 1)[-1].split()) == 2
        assert row["prompt"][end] == "?"


def _trainer(*extra):
    from raysweep.training.engine import WorkerTrainer

    overrides = SMALL + ["model.tiny_layers=2", "train.batch_size=4", "train.lr=3e-3", "train.grounding_weight=1.0", *extra]
    return WorkerTrainer(load_config(str(REPO / "configs/train-tiny-relative.yaml"), overrides), total_steps=40)


def test_the_collated_index_is_the_last_token_of_each_name_and_the_cell_its_objects():
    trainer = _trainer()
    rows = _rows(RELATIVE_TEST, n=4)
    batch = trainer.prepare(rows)
    tok = trainer.built.tokenizer
    for i, row in enumerate(rows):
        names = [row["prompt"][:end].rsplit(" the ", 1)[-1] for end, _, _ in row["grounding"]]
        for j, name in enumerate(names):
            index = int(batch["grounding_index"][i, j])
            assert batch["labels"][i, index] == -100  # in the prompt, not the answer
            assert tok.decode(batch["input_ids"][i, : index + 1]).endswith(name)
            assert tok.decode(batch["input_ids"][i, index + 1 : index + 2]).startswith(("?", " rel"))  # the name ends at this token
        cells = [r * 9 + c for _, r, c in row["grounding"]]
        assert batch["grounding_cell"][i].tolist() == cells
    plain = trainer.family.collate(trainer.built, rows, train=False)
    assert "grounding_index" not in plain  # evaluation batches are untouched


def test_the_grounding_loss_trains_its_head_and_never_reaches_the_adapter(tmp_path):
    trainer = _trainer()
    rows = _rows(RELATIVE_TEST, n=4)
    batch = trainer.prepare(rows)
    before = trainer.grounding_head.weight.detach().clone()
    losses = []
    for _ in range(25):
        answer = trainer.train_step(batch)
        losses.append(trainer.last_grounding_loss)
    assert answer == answer and losses[0] > 3.0  # ln 81 = 4.39 at the start
    assert losses[-1] < 0.5 * losses[0]  # it learns where the 8 named objects of this batch stand
    assert not torch.equal(before, trainer.grounding_head.weight)
    # the validation loss is the answer's alone, and the batch keeps its keys for the next step
    assert float(trainer._loss(batch)) == pytest.approx(trainer.family.loss(trainer.built, batch).item())
    assert "grounding_index" in batch
    trainer.family.save_adapter(trainer.built, tmp_path / "adapter")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert saved and not any("grounding" in k for k in saved)


def test_without_it_nothing_changes():
    from raysweep.training.engine import WorkerTrainer

    trainer = WorkerTrainer(load_config(str(REPO / "configs/train-tiny-relative.yaml"), SMALL + ["model.tiny_layers=2"]), total_steps=4)
    assert trainer.grounding_head is None and not any("grounding" in n for n, _ in trainer.built.model.named_parameters())
    assert "grounding_index" not in trainer.prepare(_rows(RELATIVE_TEST, n=2))


def test_rows_read_from_parquet_are_refused_by_name(tmp_path):
    from raysweep.cli import main
    from raysweep.training.data import ParquetRows

    out = tmp_path / "rel"
    assert main(["generate", RELATIVE_TEST, *SMALL, "--out", str(out), "--quiet"]) == 0
    trainer = _trainer()
    with pytest.raises(UserError, match="train.grounding_weight: row .* no name positions"):
        trainer.prepare(ParquetRows(out).rows(range(2)))


@pytest.mark.parametrize(("config", "overrides", "needle"), [
    ("train-tiny-relative.yaml", ["train.grounding_weight=-1"], "train.grounding_weight: must be >= 0"),
    ("models/tiny-clip.yaml", ["train.grounding_weight=1"], "the clip family has no language-model hidden states"),
    ("train-tiny-relative.yaml", ["train.grounding_weight=1", "data.source=coco", "data.parquet={coco: /nonexistent}"],
     "only rows rendered from a data config"),
    ("train-tiny-relative.yaml", ["train.grounding_weight=1", "train.zero_stage=3"], "ZeRO-3"),
])  # fmt: skip
def test_preflight_refuses_what_cannot_ground(config, overrides, needle):
    """Before Ray starts: one line naming train.grounding_weight and the way out."""
    from raysweep.preflight import check_run_inputs

    with pytest.raises(ConfigError, match=needle) as info:
        check_run_inputs(load_config(str(REPO / "configs" / config), overrides))
    assert info.value.key == "train.grounding_weight" or info.value.key == "grounding_weight"


def test_the_loop_reports_the_grounding_loss_per_epoch_and_a_plain_run_does_not():
    """``train/grounding_loss`` beside ``train/loss`` in every epoch's metrics (MLflow, the console)."""
    from raysweep.training.engine import WorkerTrainer
    from raysweep.training.loop import run_epochs

    trainer = _trainer("train.epochs=1")
    batch = trainer.prepare(_rows(RELATIVE_TEST, n=4))
    state = run_epochs(trainer, trainer.cfg.train, lambda epoch: [batch, batch], None, checkpoint_every=0)
    assert state.history[0]["train/grounding_loss"] > 1.0 and state.history[0]["train/loss"] > 0
    plain = WorkerTrainer(load_config(str(REPO / "configs/train-tiny-relative.yaml"), SMALL + ["model.tiny_layers=2", "train.epochs=1"]),
                          total_steps=2)  # fmt: skip
    batch = plain.prepare(_rows(RELATIVE_TEST, n=4))
    state = run_epochs(plain, plain.cfg.train, lambda epoch: [batch], None, checkpoint_every=0)
    assert "train/grounding_loss" not in state.history[0]
