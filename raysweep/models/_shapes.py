"""Real-shape variants: the published architectures, depth cut to one or two layers, random weights.

``model.checkpoint: shape:<Hub id>`` builds the architecture of that checkpoint as published in its
``config.json`` (every number below is copied from it; sources in :data:`ARCHITECTURES`) with the real
widths, heads, vocabulary sizes, vision towers, image processors and chat templates, but only
:data:`SHAPE_DEPTH` layers and random weights from ``model.seed``. The tokenizers are the real ones
where a package ships them (:mod:`raysweep.models._real_tokenizers`: Qwen2-VL, CLIP) and a labelled
stand-in for LLaVA-NeXT's Vicuna. Molmo has no real-shape variant: its modelling code lives only on
the Hub (``trust_remote_code``; transformers' ``molmo2`` is a different model).

What is cut to save memory on a CPU box, and why it is safe for the tests:

* depth (1 LM layer; 1 ViT block for Qwen2-VL and CLIP, 2 for LLaVA-NeXT, whose features come from
  the penultimate vision layer, ``vision_feature_layer: -2``);
* Qwen2-VL-7B and LLaVA-NeXT tie the output matrix to the input embedding (the published models do
  not): 152,064 x 3,584 is 0.55B parameters (2.2 GB in fp32) per matrix; shapes and ids are unchanged.

:func:`architecture_config` gives the FULL-depth, untied config (on the ``meta`` device it counts the
published parameters for ``raysweep plan`` and lists module names for the LoRA pre-flight check).
"""

from __future__ import annotations

import copy

import torch

from raysweep.errors import UserError

PREFIX = "shape:"
SHAPE_DEPTH = {"qwen2-vl": (1, 1), "llava-next": (1, 2), "clip": (1, 1)}  # (LM / text layers, vision layers)

# OpenAI CLIP's normalisation, the published preprocessor_config.json value of all three families.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

_QWEN2_VL_VISION = dict(depth=32, embed_dim=1280, mlp_ratio=4, num_heads=16, in_chans=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
_QWEN2_VL_IDS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
_LLAVA_VISION = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, image_size=336, patch_size=14, projection_dim=768)
_LLAVA_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]

# Published architectures. Each entry: the family, the transformers config arguments, the processor
# settings, the "Model size" the Hub page of the checkpoint shows (safetensors parameter count), and
# where the numbers come from.
ARCHITECTURES = {
    "Qwen/Qwen2-VL-7B-Instruct": dict(
        family="qwen2-vl",
        source="huggingface.co/Qwen/Qwen2-VL-7B-Instruct config.json (its vision_config leaves depth 32, embed 1280, 16 heads to the Qwen2VLVisionConfig defaults)",
        published_params=8.29e9,
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, rms_norm_eps=1e-6, max_position_embeddings=32768, tie_word_embeddings=False,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                  bos_token_id=151643, eos_token_id=151645),  # fmt: skip
        vision=dict(_QWEN2_VL_VISION, hidden_size=3584),
        ids=_QWEN2_VL_IDS,
    ),
    "Qwen/Qwen2-VL-2B-Instruct": dict(
        family="qwen2-vl",
        source="huggingface.co/Qwen/Qwen2-VL-2B-Instruct config.json",
        published_params=2.21e9,
        text=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=32768, tie_word_embeddings=True,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                  bos_token_id=151643, eos_token_id=151645),  # fmt: skip
        vision=dict(_QWEN2_VL_VISION, hidden_size=1536),
        ids=_QWEN2_VL_IDS,
    ),
    "llava-hf/llava-v1.6-vicuna-7b-hf": dict(
        family="llava-next",
        source="huggingface.co/llava-hf/llava-v1.6-vicuna-7b-hf config.json (text: lmsys/vicuna-7b-v1.5, LLaMA-7B widths)",
        published_params=7.06e9,
        text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, rms_norm_eps=1e-5, max_position_embeddings=4096, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),  # fmt: skip
        vision=_LLAVA_VISION,
        ids=dict(image_token_index=32000),
    ),
    "llava-hf/llava-v1.6-vicuna-13b-hf": dict(
        family="llava-next",
        source="huggingface.co/llava-hf/llava-v1.6-vicuna-13b-hf config.json",
        published_params=13.4e9,
        text=dict(vocab_size=32064, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                  num_key_value_heads=40, rms_norm_eps=1e-5, max_position_embeddings=4096, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),  # fmt: skip
        vision=_LLAVA_VISION,
        ids=dict(image_token_index=32000),
    ),
    "openai/clip-vit-large-patch14-336": dict(
        family="clip",
        source="huggingface.co/openai/clip-vit-large-patch14-336 config.json",
        published_params=428e6,
        text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=1),  # fmt: skip
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336, patch_size=14),
        ids=dict(projection_dim=768),
    ),
}
# Molmo-7B-O-0924 (no transformers class): published figures used by `raysweep plan` only.
MOLMO_7B_O = dict(
    family="molmo",
    source="huggingface.co/allenai/Molmo-7B-O-0924 config.json (OLMo-7B-1024 LM) and model card",
    published_params=7.67e9, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, vocab_size=100352,
    vision_hidden=1024, vision_layers=23, lora_targets_per_layer=(4096 * 3, 4096),
)

# Qwen2-VL-7B-Instruct's published chat template (its chat_template.json), with the default system turn.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def is_shape(checkpoint: str) -> bool:
    return checkpoint.startswith(PREFIX)


def architecture(checkpoint: str) -> dict:
    """The published architecture entry of ``checkpoint`` (with or without the ``shape:`` prefix)."""
    name = checkpoint[len(PREFIX):] if is_shape(checkpoint) else checkpoint
    if name not in ARCHITECTURES:
        raise UserError(f"model.checkpoint {checkpoint!r}: no published architecture known for {name!r}; choose one of {', '.join(PREFIX + k for k in ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_config(checkpoint: str, depth: tuple[int, int] | None = None, tie: bool = False):
    """The transformers config of ``checkpoint``'s published architecture (full depth when ``depth`` is None)."""
    arch = architecture(checkpoint)
    text, vision = copy.deepcopy(arch["text"]), copy.deepcopy(arch["vision"])
    if depth:
        text["num_hidden_layers"] = depth[0]
        vision["depth" if "depth" in vision else "num_hidden_layers"] = depth[1]
    if tie:
        text["tie_word_embeddings"] = True
    family = arch["family"]
    if family == "qwen2-vl":
        from transformers import Qwen2VLConfig

        return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=text["tie_word_embeddings"], **arch["ids"])
    if family == "llava-next":
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig

        return LlavaNextConfig(
            vision_config=CLIPVisionConfig(**vision), text_config=LlamaConfig(**text), image_grid_pinpoints=_LLAVA_PINPOINTS,
            vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
            tie_word_embeddings=text["tie_word_embeddings"], **arch["ids"],
        )
    from transformers import CLIPConfig

    return CLIPConfig(text_config=text, vision_config=vision, **arch["ids"])


def config_for_tokenizer(checkpoint: str, tokenizer, depth: tuple[int, int] | None, tie: bool):
    """:func:`architecture_config` with the ids of the tokenizer it runs with: LLaVA-NeXT's stand-in puts
    ``<image>`` and ``<pad>`` elsewhere than Vicuna's 32000 and 32001 (same widths, other ids)."""
    config = architecture_config(checkpoint, depth, tie)
    if architecture(checkpoint)["family"] == "llava-next":
        config.image_token_id = tokenizer.convert_tokens_to_ids("<image>")
        config.text_config.pad_token_id = tokenizer.pad_token_id
    return config


def count_published_params(checkpoint: str) -> int:
    """Parameters of the full-depth published architecture, counted on the ``meta`` device (no memory)."""
    config = architecture_config(checkpoint)
    with torch.device("meta"):
        model = _model_class(architecture(checkpoint)["family"])._from_config(config)
    return sum(p.numel() for p in model.parameters())


def _model_class(family: str):
    import transformers

    return {"qwen2-vl": transformers.Qwen2VLForConditionalGeneration, "llava-next": transformers.LlavaNextForConditionalGeneration,
            "clip": transformers.CLIPModel}[family]  # fmt: skip


def family_processor(family, model_cfg):
    """(processor, tokenizer) of the real-shape variant of ``model_cfg.checkpoint`` for ``family`` (no model)."""
    arch = architecture(model_cfg.checkpoint)
    if arch["family"] != family.name:
        raise UserError(f"model.checkpoint {model_cfg.checkpoint!r} is a {arch['family']} architecture but model.family is {family.name}; set model.family={arch['family']}")
    return _PROCESSORS[family.name](model_cfg)


def build_shape(family, model_cfg, device, dtype):
    """The real-shape variant of ``model_cfg.checkpoint`` for ``family`` (a :class:`~raysweep.models.base.Family`)."""
    from raysweep.models.base import Built

    processor, tokenizer = family_processor(family, model_cfg)
    config = config_for_tokenizer(model_cfg.checkpoint, tokenizer, SHAPE_DEPTH[family.name], tie=family.name != "clip")
    model = _model_class(family.name)._from_config(config, dtype=dtype)
    model.eval()
    if family.name != "clip":
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return Built(model, processor, tokenizer, family.name, model_cfg, device)


def _qwen2_vl_processor(model_cfg):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from raysweep.models._real_tokenizers import qwen2_vl_tokenizer
    from raysweep.models.base import override_normalisation
    from raysweep.models.qwen2_vl import _image_only_processor_class

    tok = qwen2_vl_tokenizer(QWEN2_VL_CHAT_TEMPLATE)
    # Qwen2-VL-7B-Instruct preprocessor_config.json: patch 14, merge 2, temporal 2, OpenAI CLIP mean/std,
    # min_pixels 3136, max_pixels 12845056; model.min_pixels / max_pixels override (the lab's 100*28*28 floor).
    pixels = dict(min_pixels=model_cfg.min_pixels or 3136, max_pixels=model_cfg.max_pixels or 12845056)
    image_processor = Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2, image_mean=CLIP_MEAN, image_std=CLIP_STD, **pixels)
    override_normalisation(image_processor, model_cfg)
    return _image_only_processor_class()(image_processor, tok, chat_template=QWEN2_VL_CHAT_TEMPLATE), tok


def _llava_next_processor(model_cfg):
    from transformers import LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    from raysweep.models._real_tokenizers import llama_standin_tokenizer
    from raysweep.models.base import override_normalisation
    from raysweep.models.llava_next import VICUNA_TEMPLATE

    tok = llama_standin_tokenizer(VICUNA_TEMPLATE)
    # llava-v1.6-vicuna-7b-hf preprocessor_config.json / processor_config.json.
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, image_grid_pinpoints=_LLAVA_PINPOINTS,
        image_mean=CLIP_MEAN, image_std=CLIP_STD, do_pad=True,
    )
    override_normalisation(image_processor, model_cfg)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                                   chat_template=VICUNA_TEMPLATE, num_additional_image_tokens=1)  # fmt: skip
    return processor, tok


def _clip_processor(model_cfg):
    from transformers import CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from raysweep.models._real_tokenizers import clip_tokenizer
    from raysweep.models.base import override_normalisation

    tok = clip_tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    override_normalisation(image_processor, model_cfg)
    return CLIPProcessor(image_processor=image_processor, tokenizer=tok), tok


_PROCESSORS = {"qwen2-vl": _qwen2_vl_processor, "llava-next": _llava_next_processor, "clip": _clip_processor}


def shape_processor(model_cfg):
    """(processor, tokenizer) of a real-shape checkpoint without building the model (``raysweep plan``)."""
    return _PROCESSORS[architecture(model_cfg.checkpoint)["family"]](model_cfg)
