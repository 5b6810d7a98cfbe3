"""Real-shape variants (configs/models/shape-*.yaml): published widths, real tokenizers, templates, processors.

The tokenizer, processor and module-name tests are quick; the ones that build a model (a 152k x 3584
embedding for Qwen2-VL-7B) are ``integration``. Nothing here downloads.
"""

import dataclasses

import pytest
import torch
from PIL import Image

from raysweep.config import load_config
from raysweep.models import build_model, get_family
from raysweep.models._rows import synthetic_rows
from raysweep.tasks import default_task

SHAPES = ["qwen2-vl", "llava-next", "clip"]
CHAT = ["qwen2-vl", "llava-next"]
PROMPT = "Answer using as few words as possible. Where is the red star? Choose from [top left, top center, top right, center left, center, center right, bottom left, bottom center, bottom right]."


def shape_cfg(name, **model):
    cfg = load_config(f"configs/models/shape-{name}.yaml")
    # Lean inputs for the model tests: Qwen2-VL at its published minimum (3136 px: 4 image tokens).
    small = {"min_pixels": 3136} if name == "qwen2-vl" else {}
    cfg.model = dataclasses.replace(cfg.model, device="cpu", **{**small, **model})
    return cfg


@pytest.fixture(scope="module")
def qwen_tok():
    from raysweep.models._real_tokenizers import qwen2_vl_tokenizer

    return qwen2_vl_tokenizer()


# -- tokenizers: the real ids ---------------------------------------------------------------------------


def test_qwen_tokenizer_gives_the_published_ids(qwen_tok):
    # Expected ids from transformers' tests/models/qwen2/test_tokenization_qwen2.py (test_tokenizer_integration
    # and the Qwen2.5-VL integration strings): byte-level BPE, NFC, digits one at a time.
    text = "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides general-purpose"
    assert qwen_tok(text)["input_ids"] == [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8, 5707, 4586, 58238]
    assert qwen_tok("with over 32+ pretrained models in 100+ languages")["input_ids"] == [4197, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10, 15459]
    assert qwen_tok("I was born in 92000, and this is falsé.\n")["input_ids"] == [40, 572, 9223, 304, 220, 24, 17, 15, 15, 15, 11, 323, 419, 374, 31932, 963, 624]
    assert qwen_tok("🤗 Transformers 提供了")["input_ids"] == [144834, 80532, 93685, 83744, 34187]
    assert qwen_tok("<|im_start|>Hello, world!<|im_end|>\n")["input_ids"] == [151644, 9707, 11, 1879, 0, 151645, 198]
    ids = {t: qwen_tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|vision_start|>", "<|image_pad|>", "<|video_pad|>")}
    assert ids == {"<|endoftext|>": 151643, "<|vision_start|>": 151652, "<|image_pad|>": 151655, "<|video_pad|>": 151656}
    assert (qwen_tok.eos_token_id, qwen_tok.pad_token_id) == (151645, 151643)


def test_clip_tokenizer_gives_the_published_ids():
    from raysweep.models._real_tokenizers import clip_tokenizer

    tok = clip_tokenizer()
    assert len(tok) == 49408
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's documented example


def test_the_real_answers_are_several_tokens_with_shared_prefixes(qwen_tok):
    pieces = {a: qwen_tok.tokenize(a) for a in default_task().answer_names}
    assert pieces["top left"][0] == pieces["top center"][0] and len(pieces["top left"]) == 2
    assert len(pieces["center"]) == 1 < len(pieces["center left"])
    assert qwen_tok.tokenize(" top left") != pieces["top left"]  # a leading space is another token: Ġtop


@pytest.mark.parametrize("text, area", [("top left", 0), (" Top left.", 0), ("bottom-center", 7), ("The star is in the center.", 4), ("centre right", 5)])
def test_parse_area_on_what_the_real_tokenizers_decode(qwen_tok, text, area):
    from raysweep.models._real_tokenizers import clip_tokenizer, llama_standin_tokenizer
    from raysweep.models.llava_next import VICUNA_TEMPLATE

    task = default_task()
    for tok in (qwen_tok, clip_tokenizer(), llama_standin_tokenizer(VICUNA_TEMPLATE)):
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert task.parse(tok.decode(ids, skip_special_tokens=True)) == area, (type(tok).__name__, text)


# -- processors: image-token counts -------------------------------------------------------------------


@pytest.mark.parametrize("name", CHAT)
@pytest.mark.parametrize("size", [(336, 336), (640, 427), (300, 500)])
def test_image_token_count_equals_the_processor(name, size):
    from raysweep.models._shapes import shape_processor
    from raysweep.plan import image_token_count

    cfg = load_config(f"configs/models/shape-{name}.yaml").model
    processor, tok = shape_processor(cfg)
    image = Image.new("RGB", size, (0, 0, 0))
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where?"}]}], add_generation_prompt=True, tokenize=False)
    enc = processor(images=[image], text=[text], return_tensors="pt")
    in_ids = int((enc["input_ids"] == tok.convert_tokens_to_ids(tok.image_token)).sum())
    assert image_token_count(cfg, *size) == in_ids
    if name == "qwen2-vl":  # what the vision tower emits: (t * h * w) patches merged 2x2
        assert in_ids == int(enc["image_grid_thw"].prod()) // 4
        if size == (336, 336):
            assert in_ids == 144  # 336 px = 24 patches of 14 per side, merged to 12 x 12


# -- LoRA targets on the published module names ----------------------------------------------------------


@pytest.mark.parametrize("name", SHAPES)
def test_default_lora_targets_exist_and_a_typo_fails(name):
    from raysweep.errors import UserError
    from raysweep.preflight import check_lora_targets

    cfg = load_config(f"configs/models/shape-{name}.yaml")
    assert check_lora_targets(cfg.model, cfg.lora) is None
    with pytest.raises(UserError, match="q_projj"):
        check_lora_targets(cfg.model, dataclasses.replace(cfg.lora, targets=["q_projj"]))


def test_a_shape_checkpoint_names_a_known_architecture():
    from raysweep.errors import UserError

    cfg = shape_cfg("clip", checkpoint="shape:openai/clip-vit-base-patch32")
    with pytest.raises(UserError, match="no published architecture"):
        get_family("clip").build(cfg.model)


# -- models: integration (each builds a real-width model) --------------------------------------------


@pytest.fixture(scope="module")
def rows():
    torch.set_num_threads(2)
    return synthetic_rows(3, canvas_size=56)


@pytest.fixture(scope="module", params=SHAPES)
def built(request):
    cfg = shape_cfg(request.param)
    return build_model(cfg.model, dataclasses.replace(cfg.lora, rank=8))


def training_step(built):
    family = get_family(built.family)
    built.model.train()
    loss = family.loss(built, family.collate(built, synthetic_rows(2, canvas_size=56), train=True))
    loss.backward()
    built.model.eval()
    grads = {n: p.grad for n, p in built.model.named_parameters() if p.requires_grad}
    assert torch.isfinite(loss)
    assert grads and all(g is not None for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)  # B starts at 0 and is what moves first
    return grads


@pytest.mark.integration
@pytest.mark.heavy
def test_a_training_step_at_real_widths_fp32(built):
    grads = training_step(built)
    assert all(g.dtype == torch.float32 for g in grads.values())
    built.model.zero_grad(set_to_none=True)


@pytest.mark.integration
@pytest.mark.heavy
@pytest.mark.parametrize("name", SHAPES)
def test_a_training_step_at_real_widths_bf16(name):
    cfg = shape_cfg(name, dtype="bfloat16")
    built = build_model(cfg.model, dataclasses.replace(cfg.lora, rank=8))
    frozen = {p.dtype for p in built.model.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}
    grads = training_step(built)
    # peft keeps the adapter itself in fp32 on a bf16 base (autocast_adapter_dtype), so its grads are fp32
    assert {g.dtype for g in grads.values()} == {torch.float32}


@pytest.mark.integration
@pytest.mark.heavy
def test_label_mask_is_the_answer_and_the_end_token_under_the_real_template(built, rows):
    if built.family == "clip":
        pytest.skip("CLIP has no template: its labels are area indices")
    family = get_family(built.family)
    batch = family.collate(built, rows, train=True)
    tok = built.tokenizer
    for i, row in enumerate(rows):
        kept = batch["input_ids"][i][batch["labels"][i] != -100]
        assert tok.decode(kept) == row["answer"] + tok.eos_token
        assert len(kept) == len(tok(family.answer_sep + row["answer"], add_special_tokens=False)["input_ids"]) + 1
    text = family.prompt_text(built, rows[0]["prompt"])
    if built.family == "qwen2-vl":
        assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>")
        assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.integration
@pytest.mark.heavy
def test_choice_with_real_multi_token_answers_equals_full_sequence_scoring(built, rows):
    if built.family == "clip":
        pytest.skip("CLIP scores image-text matches, not sequences")
    family = get_family(built.family)
    _, suffixes = family.candidates(built)
    assert len({len(s) for s in suffixes}) > 1  # answers of different lengths
    cached = family.predict_choice(built, rows[:1])
    # three answers keep it lean: 1 and 2 tokens, two of them sharing their first token (center / center left)
    picked = [built.answer_names.index(a) for a in ("top left", "center left", "center")]
    batch = family.collate(built, [dict(rows[0], answer=built.answer_names[i]) for i in picked], train=True)
    with torch.no_grad():
        logits = built.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    target = batch["labels"][:, 1:]
    full = (logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * (target != -100)).sum(1)
    diff = torch.tensor(cached[0].scores)[picked] - full  # equal up to the shared prefix token(s)
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=2e-3), diff


@pytest.mark.integration
@pytest.mark.heavy
def test_left_padded_batch_equals_one_row_at_a_time(built, rows):
    family = get_family(built.family)
    mixed = [rows[0], dict(rows[1], prompt="Where is it?")]  # prompts of different lengths: padding
    together = family.predict(built, mixed, "choice")
    alone = [family.predict(built, [r], "choice")[0] for r in mixed]
    assert torch.allclose(torch.tensor([p.scores for p in together]), torch.tensor([p.scores for p in alone]), atol=2e-3)


@pytest.mark.integration
@pytest.mark.heavy
def test_adapter_round_trip_at_real_widths(built, rows, tmp_path):
    family = get_family(built.family)
    with torch.no_grad():
        for n, p in built.model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.02)
    before = family.predict(built, rows[:1], "choice")
    family.save_adapter(built, tmp_path / "adapter")
    fresh = family.load_adapter(family.build(built.config), tmp_path / "adapter")
    after = family.predict(fresh, rows[:1], "choice")
    assert torch.allclose(torch.tensor(before[0].scores), torch.tensor(after[0].scores), atol=1e-4)
