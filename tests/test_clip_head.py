"""CLIP with a trained head (model.head, issue 16 item 3): what trains, what is saved, what loads."""

from __future__ import annotations

import pytest
import torch

from raysweep.config import load_config
from raysweep.errors import ConfigError, UserError
from raysweep.models import get_family

DATA = ["data.split=train", "data.canvas_size=84", "data.antialias=1", "data.fraction=0.1", "train.threads=1",
        "train.lr=3e-3", "train.batch_size=16", "train.warmup_steps=0"]  # fmt: skip


def cfg_of(*extra):
    return load_config("configs/models/tiny-clip.yaml", DATA + list(extra))


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_head_only_trains_the_head_over_the_task_classes():
    from raysweep.training.engine import WorkerTrainer

    torch.set_num_threads(1)
    cfg = cfg_of("model.head=linear", "lora.enabled=false", "data.areas_per_side=2", "data.grid_size=8")
    trainer = WorkerTrainer(cfg)
    names = trainable_names(trainer.built.model)
    assert names == {"raysweep_head.weight", "raysweep_head.bias"}
    assert trainer.built.model.raysweep_head.out_features == 4  # the task's classes, not nine areas
    from raysweep.training.data import train_val_sources

    train, _ = train_val_sources(cfg)
    rows = train.rows(range(16))
    towers = {k: v.clone() for k, v in trainer.built.model.state_dict().items() if not k.startswith("raysweep_head")}
    head = trainer.built.model.raysweep_head.weight.detach().clone()
    for _ in range(3):
        trainer.train_step(trainer.prepare(rows))
    after = trainer.built.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in towers.items())  # the towers are frozen
    assert not torch.equal(head, after["raysweep_head.weight"])
    preds = trainer.family.predict(trainer.built, rows[:5])
    assert len(preds[0].scores) == 4


def test_with_lora_the_vision_tower_adapts_and_the_text_tower_does_not():
    from raysweep.training.engine import WorkerTrainer

    trainer = WorkerTrainer(cfg_of("model.head=mlp", "lora.rank=4"))
    names = trainable_names(trainer.built.model)
    assert any("raysweep_head" in n for n in names)
    assert any("vision_model" in n and "lora_" in n for n in names)
    assert not any("text_model" in n for n in names)


@pytest.mark.parametrize("lora", ["lora.enabled=false", "lora.rank=4"])
def test_a_trained_head_saves_and_loads_onto_a_fresh_base(tmp_path, lora):
    from raysweep.models._rows import synthetic_rows
    from raysweep.training.engine import WorkerTrainer

    cfg = cfg_of("model.head=linear", lora)
    trainer = WorkerTrainer(cfg)
    rows = synthetic_rows(16)
    for _ in range(2):
        trainer.train_step(trainer.prepare(rows))
    family = get_family("clip")
    family.save_adapter(trainer.built, tmp_path / "adapter")
    before = [p.scores for p in family.predict(trainer.built, rows[:6])]
    fresh = family.load_adapter(family.build(cfg.model), tmp_path / "adapter")
    after = [p.scores for p in family.predict(fresh, rows[:6])]
    assert torch.allclose(torch.tensor(before), torch.tensor(after), atol=1e-5)
    untrained = [p.scores for p in family.predict(family.build(cfg.model), rows[:6])]
    assert not torch.allclose(torch.tensor(before), torch.tensor(untrained), atol=1e-3)
    text_base = family.build(cfg_of().model)
    with pytest.raises(UserError, match="model.head"):
        family.load_adapter(text_base, tmp_path / "adapter")


def test_head_needs_clip():
    with pytest.raises(ConfigError, match="model.head: linear is a head on CLIP's image features; it needs model.family=clip"):
        load_config("configs/models/tiny-llava-next.yaml", ["model.head=linear"])
