"""Offline pieces of the tiny variants: a byte-level BPE tokenizer trained locally at build time.

The tiny models never see a download. Their tokenizer is trained by ``tokenizers`` on a small corpus
(the prompt template, the colour and shape words, the COCO category names, a few chat phrases) and
wrapped in ``PreTrainedTokenizerFast``. Each answer of the task the model is built for (the 9 area
names of the 3x3 task, ``left right above below`` of relative position, ...) is added as ONE token,
so that ``choice`` scoring reads a single next-token distribution and the tiny models learn fast.
"""

from __future__ import annotations

COCO_CATEGORIES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop sign "
    "parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella "
    "handbag tie suitcase frisbee skis snowboard sports ball kite baseball bat baseball glove skateboard "
    "surfboard tennis racket bottle wine glass cup fork knife spoon bowl banana apple sandwich orange "
    "broccoli carrot hot dog pizza donut cake chair couch potted plant bed dining table toilet tv laptop "
    "mouse remote keyboard cell phone microwave oven toaster sink refrigerator book clock vase scissors "
    "teddy bear hair drier toothbrush"
)
WORDS = (
    "red green blue magenta yellow cyan white circle square triangle star plus large small object "
    "Where is the ? Choose from [ ] , . Answer using as few words as possible. The a photo of a "
    "I cannot tell it is in the corner upper lower middle left right top bottom center centre "
    "USER ASSISTANT system user assistant You are a helpful assistant"
)


def corpus(answers: list[str], extra: list[str] = ()) -> list[str]:
    """The training texts of the tiny tokenizer (deterministic)."""
    areas = ", ".join(answers)
    lines = [
        f"Answer using as few words as possible. Where is the red star? Choose from [{areas}].",
        COCO_CATEGORIES,
        WORDS,
        *extra,
    ]
    return lines * 4


def train_tokenizer(
    task,
    special_tokens: list[str],
    *,
    bos: str | None,
    eos: str,
    pad: str,
    chat_template: str | None = None,
    vocab_size: int = 700,
    extra_attributes: dict | None = None,
    wrap_with_bos_eos: bool = False,
):
    """A ``PreTrainedTokenizerFast`` trained here, with the task's answers as single tokens.

    Args:
        task: the :class:`raysweep.tasks.base.Task`: its answer names become single tokens, its
            ``tokenizer_texts`` join the corpus.
        special_tokens: family tokens (image placeholder, chat markers, bos/eos/pad), kept whole.
        bos, eos, pad: which of them play those roles (``bos`` may be None).
        chat_template: Jinja chat template stored on the tokenizer.
        vocab_size: BPE vocabulary size before the added tokens.
        extra_attributes: attributes set on the tokenizer (e.g. ``image_token``) that processors read.
        wrap_with_bos_eos: add ``bos ... eos`` around every encoded text (CLIP's text tower pools at EOS).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: I001
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(dict.fromkeys(special_tokens)),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    answers = list(task.answer_names)
    tok.train_from_iterator(corpus(answers, task.tokenizer_texts()), trainer=trainer)
    # Longest match first, so "center left" wins over "center"; not inside longer words.
    tok.add_tokens([AddedToken(name, single_word=True, normalized=False) for name in answers])
    if wrap_with_bos_eos:
        from tokenizers.processors import TemplateProcessing

        tok.post_processor = TemplateProcessing(
            single=f"{bos} $A {eos}", special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))]
        )
    kwargs = dict(tokenizer_object=tok, eos_token=eos, pad_token=pad, extra_special_tokens={})
    if bos:
        kwargs["bos_token"] = bos
    fast = PreTrainedTokenizerFast(**kwargs)
    if chat_template:
        fast.chat_template = chat_template
    for key, value in (extra_attributes or {}).items():
        setattr(fast, key, value)
    return fast


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def sincos_positions(side: int, dim: int, monotonic: bool = False) -> "torch.Tensor":
    """Fixed 2D sine-cosine position codes of a ``side`` x ``side`` patch grid, MAE's recipe, unit norm.

    Returns a ``(side * side + 1, dim)`` float tensor for a CLIP-style position embedding: row 0 (the
    class token) zeros, then the patches in row-major order. Half the channels code the patch row,
    half its column, each as ``sin``/``cos`` of ``position * 10000 ** (-k / (dim / 4))``, k = 0 ..
    dim / 4 - 1 (He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021, and its
    ``get_2d_sincos_pos_embed``), divided by sqrt(dim / 2) so every code has norm 1 - the size of an
    object patch's content embedding in the tiny towers. Low frequencies are nearly linear in the
    row and column, so "left of" is a linear read-out, as in a pretrained tower's learned embedding.

    ``monotonic``: the frequencies ``(pi / 2) / (side - 1) * (k + 1) / (dim / 4)`` instead, so no phase
    passes a quarter turn across the grid: every sine rises and every cosine falls from one edge to the
    other. MAE's highest frequencies (1 and 0.56 rad per patch) turn more than once across a 9-patch
    row, so a read-out that leans on them orders far-apart patches backwards (README, Tasks).

    Raises:
        ValueError: ``dim`` is not a multiple of 4.
    """
    import math

    import torch

    if dim % 4:
        raise ValueError(f"sine-cosine positions need a width divisible by 4, got {dim}")
    k = torch.arange(dim // 4, dtype=torch.float64)
    if monotonic:
        omega = (math.pi / 2) / max(side - 1, 1) * (k + 1) / (dim // 4)
    else:
        omega = 1.0 / 10000 ** (k / (dim / 4))
    grid = torch.arange(side, dtype=torch.float64)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")

    def code(pos):
        angles = pos.reshape(-1, 1) * omega
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    codes = torch.cat([code(rows), code(cols)], dim=1) / (dim / 2) ** 0.5
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), codes]).float()


def vision_embeddings(model):
    """The CLIP-style vision embeddings module (``patch_embedding`` + ``position_embedding``) inside ``model``."""
    for module in model.modules():
        if hasattr(module, "patch_embedding") and hasattr(module, "position_embedding"):
            return module
    raise ValueError(f"{type(model).__name__} has no CLIP-style vision embeddings")


def colour_split_filters(weight: "torch.Tensor", seed: int) -> "torch.Tensor":
    """Patch filters like ``weight`` (``(out, 3, p, p)``) split into achromatic and chromatic ones.

    The first ``3 * out // 4`` filters apply one random spatial filter to every colour channel alike
    (they see a shape, not its colour); the rest are flat in space with a random colour mix (they see
    a colour, not its shape) - the split a trained network's first layer shows (Krizhevsky,
    Sutskever and Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", 2012,
    Fig. 3). Each filter keeps the norm a ``weight`` filter has on average. Seeded by ``seed``.
    """
    import torch

    out, channels, p, q = weight.shape
    gen = torch.Generator().manual_seed(seed)
    achromatic = 3 * out // 4
    spatial = torch.randn(achromatic, 1, p, q, generator=gen).expand(achromatic, channels, p, q)
    mix = torch.randn(out - achromatic, channels, 1, 1, generator=gen).expand(out - achromatic, channels, p, q)
    filters = torch.cat([spatial, mix]).clone().double()
    norm = weight.detach().double().flatten(1).norm(dim=1).mean()
    filters *= norm / filters.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, 1, 1, 1)
    return filters.to(weight.dtype)


def set_tiny_vision_priors(model, model_cfg) -> None:
    """The tiny tower's priors from config: ``model.tiny_vision_position=sincos`` makes the position
    embedding :func:`sincos_positions` of its square patch grid (side read from the table: class
    token + side x side patches), and ``model.tiny_vision_filters=colour_split`` the patch filters
    :func:`colour_split_filters` (``learned`` / ``random`` leave CLIP's random init). The codes are
    scaled to norm ``model.tiny_vision_position_norm``."""
    import math

    import torch

    embeddings = vision_embeddings(model)
    with torch.no_grad():
        if model_cfg.tiny_vision_position in ("sincos", "monotonic"):
            table = embeddings.position_embedding.weight
            codes = sincos_positions(math.isqrt(table.shape[0] - 1), table.shape[1], model_cfg.tiny_vision_position == "monotonic")
            table.copy_((codes * model_cfg.tiny_vision_position_norm).to(table.dtype))
        if model_cfg.tiny_vision_filters == "colour_split":
            conv = embeddings.patch_embedding.weight
            conv.copy_(colour_split_filters(conv, model_cfg.seed))
