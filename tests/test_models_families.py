"""Every family with a tiny variant: build offline, LoRA, loss goes down, both prediction modes."""

import pytest
import torch

from raysweep.config import load_config
from raysweep.models import build_model, get_family
from raysweep.models._rows import synthetic_rows
from raysweep.tasks import default_task

TINY = ["llava-next", "qwen2-vl", "clip"]
CHAT = ["llava-next", "qwen2-vl"]


@pytest.fixture(scope="module")
def rows():
    torch.set_num_threads(1)
    return synthetic_rows(6)


@pytest.fixture(scope="module", params=TINY)
def built(request):
    torch.set_num_threads(1)
    cfg = load_config(f"configs/models/tiny-{request.param}.yaml")
    return build_model(cfg.model, cfg.lora)


def test_tiny_build_is_small_and_lora_counts_params(built):
    assert 1e5 < built.total_params < 5e6
    assert 0 < built.trainable_params < built.total_params
    names = [n for n, p in built.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    if built.family == "llava-next":
        assert not any("vision_tower" in n for n in names)  # LM only by default


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(built, rows):
    family = get_family(built.family)
    batch = family.collate(built, rows[:4], train=True)
    opt = torch.optim.AdamW([p for p in built.model.parameters() if p.requires_grad], lr=2e-3)
    built.model.train()
    losses = []
    for _ in range(8):
        loss = family.loss(built, batch)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    built.model.eval()
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("mode", ["choice", "generate"])
def test_both_modes_return_valid_areas(built, rows, mode):
    preds = get_family(built.family).predict(built, rows[:3], mode=mode, max_new_tokens=4)
    assert len(preds) == 3
    for p in preds:
        assert -1 <= p.area < 9
        if mode == "choice":
            assert 0 <= p.area < 9 and len(p.scores) == 9
        elif built.family != "clip":
            assert 1 <= p.new_tokens <= 4  # decode steps taken, bounded by max_new_tokens


def test_new_tokens_stop_at_the_first_eos():
    from types import SimpleNamespace

    from raysweep.models.base import decode_generated

    pad, eos, area, word = 0, 1, 5, 7
    names = {area: "top left", word: "maybe"}
    tok = SimpleNamespace(
        eos_token_id=eos, pad_token_id=pad,
        batch_decode=lambda ids, skip_special_tokens: [" ".join(names[i] for i in row if i in names) for row in ids.tolist()],
    )
    ids = torch.tensor([[area, eos, pad, pad], [word, word, word, word], [word, eos, eos, pad]])
    preds = decode_generated(tok, ids, default_task())
    assert [p.new_tokens for p in preds] == [2, 4, 2]
    assert [p.area for p in preds] == [0, -1, -1]
    assert preds[0].text == "top left"


@pytest.mark.parametrize("name", CHAT)
def test_loss_mask_covers_exactly_the_answer_tokens(name, rows):
    torch.set_num_threads(1)
    built = get_family(name).build(load_config(f"configs/models/tiny-{name}.yaml").model)
    batch = get_family(name).collate(built, rows[:3], train=True)
    tok = built.tokenizer
    for i, row in enumerate(rows[:3]):
        ids = batch["input_ids"][i][batch["labels"][i] != -100]
        assert tok.decode(ids).strip() == row["answer"] + tok.eos_token
        # the masked positions form one contiguous run that ends at the last real token (right padding)
        where = (batch["labels"][i] != -100).nonzero().flatten()
        assert where.tolist() == list(range(where[0], where[-1] + 1))
        assert where[-1] == batch["attention_mask"][i].sum() - 1
    assert (batch["attention_mask"][:, 0] == 1).all()  # right padding for training
    gen = get_family(name).collate(built, rows[:3], train=False)
    assert (gen["attention_mask"][:, -1] == 1).all()  # left padding for generation


@pytest.mark.parametrize("name", CHAT)
def test_choice_with_shared_kv_cache_matches_full_sequences(name, rows):
    """Scores from the prompt's cached KV equal the log-likelihood of each full sequence."""
    torch.set_num_threads(1)
    family = get_family(name)
    built = family.build(load_config(f"configs/models/tiny-{name}.yaml").model)
    cached = family.predict_choice(built, rows[:2], with_eos=True)
    _, suffixes = family.candidates(built, with_eos=True)
    assert all(len(s) == 2 for s in suffixes)  # area token + EOS: exercises the cache path
    for r, row in enumerate(rows[:2]):
        batch = family.collate(built, [dict(row, answer=a) for a in built.answer_names], train=True)
        with torch.no_grad():
            logits = built.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        target = batch["labels"][:, 1:]
        full = (logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * (target != -100)).sum(1)
        # the full sequence also scores the shared separator token; remove it by comparing differences
        diff = torch.tensor(cached[r].scores) - full
        assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-3), (name, diff)


def test_single_token_choice_agrees_with_cache_ranking(rows):
    torch.set_num_threads(1)
    family = get_family("llava-next")
    built = family.build(load_config("configs/models/tiny-llava-next.yaml").model)
    prefix, suffixes = family.candidates(built)
    assert all(len(s) == 1 for s in suffixes)  # area names are single tokens in the tiny tokenizer
    assert len(built.tokenizer.tokenize("center left")) == 1


@pytest.mark.parametrize("name", CHAT)  # qwen2-vl: olora init (changes the base) and LoRA on the ViT
def test_adapter_round_trip(tmp_path, rows, name):
    torch.set_num_threads(1)
    cfg = load_config(f"configs/models/tiny-{name}.yaml")
    family = get_family(name)
    built = build_model(cfg.model, cfg.lora)
    with torch.no_grad():
        for n, p in built.model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    before = family.predict(built, rows[:2], "choice")
    family.save_adapter(built, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    fresh = family.load_adapter(family.build(cfg.model), tmp_path / "adapter")
    after = family.predict(fresh, rows[:2], "choice")
    assert torch.allclose(torch.tensor([p.scores for p in before]), torch.tensor([p.scores for p in after]), atol=1e-4)


def two_pass_collate(family, built, rows):
    """The training collate before it ran the processor once: again on the prompts alone, to find the answer."""
    from raysweep.models.base import load_image

    images = [load_image(r["image"]) for r in rows]
    prompts = [family.prompt_text(built, r["prompt"]) for r in rows]
    fulls = [p + family.answer_sep + r["answer"] + built.tokenizer.eos_token for p, r in zip(prompts, rows)]
    enc = family.encode(built, images, fulls, "right")
    prompt_ids = family.encode(built, images, prompts, "right")
    labels = enc["input_ids"].clone()
    for i, n in enumerate(prompt_ids["attention_mask"].sum(1).tolist()):
        if not torch.equal(enc["input_ids"][i, :n], prompt_ids["input_ids"][i, :n]):
            raise RuntimeError("the prompt's tokens change when the answer follows")
        labels[i, :n] = -100
    labels[enc["attention_mask"] == 0] = -100
    enc["labels"] = labels
    return enc


def varied_rows():
    """Prompts, answers (one token to several words) and image sizes of different lengths in one batch."""
    from PIL import Image

    rows = synthetic_rows(8)
    rows[1] = dict(rows[1], answer="I cannot tell")
    rows[2] = dict(rows[2], answer="center", prompt=rows[2]["prompt"] + " Answer in a word.")
    rows[3] = dict(rows[3], answer="the top left corner, I think", prompt="Where is the cat?")
    rows[4] = dict(rows[4], image=Image.new("RGB", (168, 84), (0, 0, 255)))  # other size: other image-token count
    rows[5] = dict(rows[5], answer="bottom right.")
    return rows


@pytest.mark.parametrize("name", CHAT)
def test_collate_once_gives_the_two_pass_labels(name, monkeypatch):
    torch.set_num_threads(1)
    family = get_family(name)
    built = family.build(load_config(f"configs/models/tiny-{name}.yaml").model)
    rows = varied_rows()
    once, twice = family.collate(built, rows, train=True), two_pass_collate(family, built, rows)
    assert once.keys() == twice.keys()
    for key in once:
        assert torch.equal(once[key], twice[key]), key
    assert len({int(n) for n in (once["labels"] != -100).sum(1)}) > 1  # answers of different lengths
    # both refuse when the answer merges with the prompt's last token ("the red" + "dish")
    prompt_text = family.prompt_text
    monkeypatch.setattr(family, "prompt_text", lambda b, p: prompt_text(b, p) + " the red")
    monkeypatch.setattr(family, "answer_sep", "")
    merged = [rows[0], dict(rows[1], answer="dish")]
    for collate in (lambda: family.collate(built, merged, train=True), lambda: two_pass_collate(family, built, merged)):
        with pytest.raises(RuntimeError, match="the prompt's tokens change when the answer follows"):
            collate()


def test_the_collator_without_weights_collates_as_the_built_model(built, rows):
    """Ray Data's collate stage builds ``build_collator`` (no model) and must produce the same batch."""
    family = get_family(built.family)
    collator = family.build_collator(built.config, built.task)
    assert collator.model is None
    want, got = family.collate(built, rows, train=True), family.collate(collator, rows, train=True)
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]) if isinstance(want[key], torch.Tensor) else want[key] == got[key], key


@pytest.mark.parametrize("name,checkpoint", [("llava-next", "shape:llava-hf/llava-v1.6-vicuna-7b-hf"),
                                             ("qwen2-vl", "shape:Qwen/Qwen2-VL-7B-Instruct")])  # fmt: skip
def test_a_real_shape_collator_reads_only_the_processor(name, checkpoint, rows):
    from raysweep.models._shapes import family_processor

    cfg = load_config(f"configs/models/tiny-{name}.yaml", [f"model.checkpoint={checkpoint}"])
    collator = get_family(name).build_collator(cfg.model)
    processor, tokenizer = family_processor(get_family(name), cfg.model)
    assert collator.model is None and type(collator.processor).__name__ == type(processor).__name__
    assert collator.tokenizer.get_vocab() == tokenizer.get_vocab()
    batch = get_family(name).collate(collator, rows[:2], train=True)
    assert (batch["labels"] != -100).any()
