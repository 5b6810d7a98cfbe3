"""Molmo: everything that runs without the Hub code (no tiny variant exists; see raysweep/models/molmo.py)."""

import pytest
import torch

from raysweep.errors import UserError
from raysweep.models import get_family
from raysweep.models._rows import synthetic_rows
from raysweep.models.base import Built
from raysweep.models.config import LoraConfig, ModelConfig
from raysweep.models.molmo import causal_lm_loss, pad_examples


class FakeTokenizer:
    pad_token_id, eos_token_id, eos_token = 0, 2, "<|endoftext|>"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [10 + len(w) for w in text.split()]}


class FakeProcessor:
    """Mimics the shapes of Molmo's ``processor.process``: 1-D ids, crops, image token positions."""

    tokenizer = FakeTokenizer()

    def process(self, images, text):
        n = 5 + len(text.split()) % 3
        return {
            "input_ids": torch.arange(3, 3 + n),
            "images": torch.zeros(2, 4, 6),
            "image_input_idx": torch.tensor([[1, 2], [-1, 3]]),
            "image_masks": torch.ones(2, 4),
        }


def fake_built():
    return Built(None, FakeProcessor(), FakeTokenizer(), "molmo", ModelConfig(family="molmo"), torch.device("cpu"))


def test_remote_code_needs_opt_in_and_no_tiny_variant():
    family = get_family("molmo")
    with pytest.raises(UserError, match="trust_remote_code"):
        family.build(ModelConfig(family="molmo", checkpoint="allenai/Molmo-7B-O-0924"))
    with pytest.raises(UserError, match="no tiny variant"):
        family.build(ModelConfig(family="molmo", checkpoint="tiny"))


def test_default_lora_targets():
    family = get_family("molmo")
    assert family.default_lora_targets(vision=False) == ["att_proj"]
    assert set(family.default_lora_targets(vision=True)) == {"att_proj", "wq", "wk", "wv"}
    assert LoraConfig().rank == 32


def test_collate_masks_the_answer_and_pads_by_side():
    family, built = get_family("molmo"), fake_built()
    rows = synthetic_rows(3)
    train = family.collate(built, rows, train=True)
    for i in range(3):
        kept = train["input_ids"][i][train["labels"][i] != -100].tolist()
        assert kept == FakeTokenizer()(" " + rows[i]["answer"])["input_ids"] + [2]
    assert (train["attention_mask"][:, 0] == 1).all()
    gen = family.collate(built, rows, train=False)
    assert (gen["attention_mask"][:, -1] == 1).all()
    # left padding shifts the image token positions by the padding, and keeps -1 holes
    for i in range(3):
        pad = int((gen["attention_mask"][i] == 0).sum())
        assert gen["image_input_idx"][i][0].tolist() == [1 + pad, 2 + pad]
        assert gen["image_input_idx"][i][1][0] == -1


def test_pad_examples_pads_crops_with_minus_one():
    a = {"input_ids": torch.tensor([1, 2]), "images": torch.zeros(1, 2), "image_input_idx": torch.zeros(1, 1, dtype=torch.long), "image_masks": torch.ones(1, 2)}
    b = {"input_ids": torch.tensor([1, 2, 3]), "images": torch.zeros(2, 2), "image_input_idx": torch.zeros(2, 1, dtype=torch.long), "image_masks": torch.ones(2, 2)}
    batch = pad_examples([a, b], pad_id=0, side="right")
    assert batch["images"].shape == (2, 2, 2) and (batch["images"][0, 1] == -1).all()
    assert "labels" not in batch


def test_causal_lm_loss_counts_only_labelled_tokens():
    logits = torch.zeros(1, 4, 5)
    logits[0, 2, 3] = 100.0  # predicts token 3 at position 3
    labels = torch.tensor([[-100, -100, -100, 3]])
    assert causal_lm_loss(logits, labels).item() == pytest.approx(0.0, abs=1e-4)
