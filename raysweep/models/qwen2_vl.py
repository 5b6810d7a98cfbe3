"""Qwen2-VL (Qwen/Qwen2-VL-7B-Instruct, also the 2B): native-resolution ViT + Qwen2 LM with M-RoPE.

Tiny variant: the same ``Qwen2VLForConditionalGeneration`` with a 2-block vision encoder (patch 14,
merge 2: an 84 px image becomes 6x6 patches merged into 3x3 = 9 image tokens, one per answer area),
a Qwen2 LM (hidden 128, 4 layers, 2 heads of 64; ``mrope_section`` [8, 12, 12] sums to head_dim/2)
with ``rope_theta`` 1 instead of 10000, images normalised with mean 0 / std 1, and a locally trained
tokenizer with the area names as single tokens. About 1.2M parameters.

Qwen2-VL's ViT has no absolute position embedding (only 2D RoPE), so with a frozen random base an
image token says little about where it sits; the LM sees position mainly through M-RoPE. Three
choices together make the tiny model learn the task (benchmarks/bench_tiny_learns.py: LoRA, lr 1e-3,
100-step warm-up, batch 32, one thread, 144 held-out scenes): chance before, 91% held-out after
300 steps, 89% after 400, 95% after 500 (another batch order: 72%, 92%, 95%). Leaving out any one
of them gives 37-49% after 400 steps:

* ``rope_theta`` 1 (here): every M-RoPE frequency turns 1 rad per position. At 100 the height and
  width sections get the slowest frequencies (under 0.06 rad per column for width): 44%.
* LoRA on the ViT's fused ``attn.qkv`` as well as the LM's q/k/v (``lora.vision: true`` in
  configs/models/tiny-qwen2-vl.yaml): 37% with the LM alone.
* ``lora.init: olora`` (same YAML): the default gaussian init (B = 0) reaches 49%.

Without torchvision (the CPU set-up here) ``Qwen2VLProcessor`` cannot build its video processor; an
image-only subclass is used then. With torchvision installed the stock processor is used.
"""

from __future__ import annotations

from raysweep.models import register
from raysweep.models._tiny import train_tokenizer
from raysweep.models.base import Built, ChatVLMFamily, override_normalisation

QWEN_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}{% elif item['type'] == 'text' %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _image_only_processor_class():
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """Qwen2VLProcessor without the video slot (its video processor needs torchvision)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
            self.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

        @classmethod
        def get_attributes(cls):
            return ["image_processor", "tokenizer"]

    return ImageOnlyQwen2VLProcessor


def _has_torchvision() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


@register("qwen2-vl")
class Qwen2VL(ChatVLMFamily):
    default_checkpoint = "Qwen/Qwen2-VL-7B-Instruct"
    checkpoints = ("Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen2-VL-2B-Instruct")
    tiny = "84 px -> 9 merged image tokens, ViT 64x2 + Qwen2 128x4 (rope_theta 1), area names as single tokens, ~1.2M params"
    # Input limits (raysweep.images.family_input_limits): the image processor's smart_resize raises
    # ValueError for max(h, w) / min(h, w) > 200; it has no minimum side (transformers >= 5 rounds a
    # side up to the 28 px factor; 1x1 and 1x200 images pass).
    min_side = 1
    max_aspect_ratio = 200.0

    def default_lora_targets(self, vision: bool):
        # The LM's q/k/v; the vision blocks' fused attn.qkv as an option (the lab's runs used it).
        lm = r".*language_model.*\.(q_proj|k_proj|v_proj)$"
        return rf"({lm})|(.*visual.*\.attn\.qkv$)" if vision else lm

    def prompt_positions(self, batch):
        return None  # M-RoPE positions come from the model's get_rope_index

    def continuation_positions(self, built, batch, out, length, repeat):
        """M-RoPE positions after each prompt: one past the largest position of the row's prompt tokens.

        Read from the model's own ``get_rope_index`` rather than from ``rope_deltas``: transformers 5
        measures the deltas from each row's unpadded length, 4.x from the padded one, so ``padded
        length + delta`` put every left-padded row's continuation ``pad`` positions too far (found on
        the real-shape model: a batch scored differently from its rows one at a time).
        """
        import inspect

        import torch

        inner = built.model.get_base_model() if built.lora else built.model
        rope_index = inner.model.get_rope_index
        accepted = inspect.signature(rope_index).parameters
        kwargs = {k: batch[k] for k in ("image_grid_thw", "video_grid_thw", "attention_mask", "mm_token_type_ids") if k in accepted and k in batch}
        ids = batch["input_ids"]
        if "mm_token_type_ids" in kwargs and kwargs["mm_token_type_ids"].shape[1] < ids.shape[1]:  # a shared answer prefix appended
            kwargs["mm_token_type_ids"] = torch.nn.functional.pad(kwargs["mm_token_type_ids"], (0, ids.shape[1] - kwargs["mm_token_type_ids"].shape[1]))
        positions, _ = rope_index(ids, **kwargs)
        start = positions.amax(dim=(0, 2))[:, None].to(ids.device) + 1
        pos = start + torch.arange(length, device=ids.device)[None]
        return pos.repeat_interleave(repeat, dim=0)[None].expand(3, -1, -1)

    def build_pretrained(self, model_cfg, device, dtype) -> Built:
        from transformers import Qwen2VLForConditionalGeneration

        model = Qwen2VLForConditionalGeneration.from_pretrained(model_cfg.checkpoint, dtype=dtype)
        processor, tokenizer = self.load_processor(model_cfg)
        return Built(model, processor, tokenizer, self.name, model_cfg, device)

    def load_processor(self, model_cfg):
        from transformers import AutoImageProcessor, AutoTokenizer

        pixels = {k: v for k, v in (("min_pixels", model_cfg.min_pixels), ("max_pixels", model_cfg.max_pixels)) if v}
        if _has_torchvision():
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(model_cfg.checkpoint, **pixels)
            tokenizer = processor.tokenizer
        else:
            tokenizer = AutoTokenizer.from_pretrained(model_cfg.checkpoint)
            image_processor = AutoImageProcessor.from_pretrained(model_cfg.checkpoint, **pixels)
            processor = _image_only_processor_class()(image_processor, tokenizer, chat_template=tokenizer.chat_template)
        _normalisation(processor.image_processor, model_cfg)
        return processor, tokenizer

    def build_tiny(self, model_cfg, device, task) -> Built:
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        side = model_cfg.image_size or 84
        tok = train_tokenizer(
            task, SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=QWEN_TEMPLATE,
            extra_attributes={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        )
        heads = max(1, model_cfg.tiny_hidden // 64)
        half = model_cfg.tiny_hidden // heads // 2
        section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
        ids = {name: tok.convert_tokens_to_ids(name) for name in SPECIALS}
        config = Qwen2VLConfig(
            text_config=dict(
                vocab_size=len(tok), hidden_size=model_cfg.tiny_hidden, intermediate_size=2 * model_cfg.tiny_hidden,
                num_hidden_layers=model_cfg.tiny_layers, num_attention_heads=heads, num_key_value_heads=heads,
                max_position_embeddings=1024, rope_parameters={"rope_type": "default", "rope_theta": 1.0, "mrope_section": section},
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
                initializer_range=model_cfg.tiny_init_range,
            ),
            vision_config=dict(
                depth=model_cfg.tiny_vision_layers, embed_dim=model_cfg.tiny_vision_hidden, num_heads=4,
                hidden_size=model_cfg.tiny_hidden, mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
            ),
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        )
        model = Qwen2VLForConditionalGeneration(config)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        image_processor = Qwen2VLImageProcessorPil(
            min_pixels=side * side, max_pixels=side * side, patch_size=14, merge_size=2, temporal_patch_size=2,
            image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        )
        _normalisation(image_processor, model_cfg)
        processor = _image_only_processor_class()(image_processor, tok, chat_template=QWEN_TEMPLATE)
        model.eval()
        return Built(model, processor, tok, self.name, model_cfg, device)


def _normalisation(image_processor, model_cfg) -> None:
    override_normalisation(image_processor, model_cfg)
    if model_cfg.min_pixels:
        image_processor.min_pixels = model_cfg.min_pixels
    if model_cfg.max_pixels:
        image_processor.max_pixels = model_cfg.max_pixels
