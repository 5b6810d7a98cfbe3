"""LLaVA-NeXT (llava-hf/llava-v1.6-vicuna-7b-hf): CLIP vision tower, anyres tiles, Llama/Vicuna LM.

Tiny variant (the CPU quickstart's model, it really learns the task with LoRA): the same
``LlavaNextForConditionalGeneration`` with a CLIP-style vision tower (84 px input, patch 28, so each
patch is one 3x3 area, learned absolute position embedding), ``image_grid_pinpoints=[[84, 84]]``
(one tile plus the base image: 21 image tokens), a Llama text model (hidden 128, 4 layers), images
normalised with mean 0 / std 1 (a black background stays 0; with CLIP's default normalisation every
background patch maps to the same vector and position becomes invisible), and a locally trained
byte-level BPE tokenizer in which each area name is one token. About 1.1M parameters.
"""

from __future__ import annotations


from raysweep.models import register
from raysweep.models._tiny import set_tiny_vision_priors, train_tokenizer
from raysweep.models.base import Built, ChatVLMFamily, override_normalisation

VICUNA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{{ ' ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


@register("llava-next")
class LlavaNext(ChatVLMFamily):
    default_checkpoint = "llava-hf/llava-v1.6-vicuna-7b-hf"
    checkpoints = ("llava-hf/llava-v1.6-vicuna-7b-hf", "llava-hf/llava-v1.6-vicuna-13b-hf")
    tiny = "84 px, patch 28, CLIP tower 64x2 + Llama 128x4, area names as single tokens, ~1.1M params"
    # Input limits (raysweep.images.family_input_limits): none known; anyres resizes into the best
    # grid pinpoint and pads, so 1x1 and 1x300 images pass.
    min_side = 1
    max_aspect_ratio = None
    answer_sep = " "

    def default_lora_targets(self, vision: bool):
        towers = "language_model|vision_tower" if vision else "language_model"
        return rf".*({towers}).*\.(q_proj|k_proj|v_proj)$"

    def build_pretrained(self, model_cfg, device, dtype) -> Built:
        from transformers import LlavaNextForConditionalGeneration

        model = LlavaNextForConditionalGeneration.from_pretrained(model_cfg.checkpoint, dtype=dtype)
        processor, tokenizer = self.load_processor(model_cfg)
        return Built(model, processor, tokenizer, self.name, model_cfg, device)

    def load_processor(self, model_cfg):
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(model_cfg.checkpoint)
        override_normalisation(processor.image_processor, model_cfg)
        return processor, processor.tokenizer

    def build_tiny(self, model_cfg, device, task) -> Built:
        from transformers import (
            CLIPVisionConfig,
            LlamaConfig,
            LlavaNextConfig,
            LlavaNextForConditionalGeneration,
            LlavaNextProcessor,
        )
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        side = model_cfg.image_size or 84
        patch = model_cfg.tiny_patch or side // 3
        tok = train_tokenizer(
            task, ["<unk>", "<s>", "</s>", "<pad>", "<image>"], bos="<s>", eos="</s>", pad="<pad>",
            chat_template=VICUNA_TEMPLATE, extra_attributes={"image_token": "<image>"},
        )
        vision = CLIPVisionConfig(
            hidden_size=model_cfg.tiny_vision_hidden, intermediate_size=2 * model_cfg.tiny_vision_hidden,
            num_hidden_layers=model_cfg.tiny_vision_layers, num_attention_heads=4, image_size=side, patch_size=patch,
            projection_dim=model_cfg.tiny_vision_hidden,
        )
        text = LlamaConfig(
            vocab_size=len(tok), hidden_size=model_cfg.tiny_hidden, intermediate_size=2 * model_cfg.tiny_hidden,
            num_hidden_layers=model_cfg.tiny_layers, num_attention_heads=model_cfg.tiny_heads,
            num_key_value_heads=model_cfg.tiny_heads, max_position_embeddings=512,
            initializer_range=model_cfg.tiny_init_range,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        config = LlavaNextConfig(
            vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
            image_grid_pinpoints=[[side, side]], vision_feature_select_strategy="default", vision_feature_layer=-1,
        )
        model = LlavaNextForConditionalGeneration(config)
        set_tiny_vision_priors(model.model.vision_tower, model_cfg)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        image_processor = LlavaNextImageProcessorPil(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side},
            image_grid_pinpoints=[[side, side]], image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        )
        override_normalisation(image_processor, model_cfg)
        processor = LlavaNextProcessor(
            image_processor=image_processor, tokenizer=tok, patch_size=patch,
            vision_feature_select_strategy="default", chat_template=VICUNA_TEMPLATE,
            num_additional_image_tokens=1,
        )
        model.eval()
        return Built(model, processor, tok, self.name, model_cfg, device)

