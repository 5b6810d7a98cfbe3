"""CLIP (openai/clip-vit-large-patch14-336) as a dual encoder over the 9 area texts.

The texts are ``a photo of a {area}``; the prediction is the best image-text match. Fine-tuning is
LoRA on q/k/v of BOTH towers with cross-entropy over the 9 texts (the logits are CLIP's scaled
cosine similarities). CLIP cannot generate text: ``generate`` mode returns the same best match with
the area name as text, so it never fails to parse; both modes are reported all the same.

``model.head`` = linear or mlp replaces the text matching by a trained classification head over the
task's classes on the image features (:mod:`raysweep.models._clip_head`; issue 16's open question).

Tiny variant: the same ``CLIPModel`` with 2-layer towers of width 64, an 84 px image with patch 28
(one patch per area), mean 0 / std 1 normalisation, and a locally trained tokenizer (area names as
single tokens, texts wrapped in start/end tokens). About 0.3M parameters.
"""

from __future__ import annotations

import torch

from raysweep.models import register
from raysweep.models._tiny import set_tiny_vision_priors, train_tokenizer
from raysweep.models.base import Built, Family, Prediction, load_image, override_normalisation, to_device

TEXT_TEMPLATE = "a photo of a {area}"


@register("clip")
class Clip(Family):
    default_checkpoint = "openai/clip-vit-large-patch14-336"
    checkpoints = ("openai/clip-vit-large-patch14-336",)
    tiny = "84 px, patch 28, two 64x2 towers, area names as single tokens, ~0.35M params"
    # Input limits (raysweep.images.family_input_limits): none known; the shortest side is resized
    # and the centre cropped, so 1x1 and 1x300 images pass.
    min_side = 1
    max_aspect_ratio = None

    def default_lora_targets(self, vision: bool):
        return ["q_proj", "k_proj", "v_proj"]  # both towers, always

    # model.head = linear | mlp: a trained head on the image features (raysweep.models._clip_head)
    def build(self, model_cfg, task=None) -> Built:
        built = super().build(model_cfg, task)
        if model_cfg.head != "text":
            from raysweep.models._clip_head import attach_head
            from raysweep.models._tiny import count_params

            attach_head(built)
            built.trainable_params, built.total_params = count_params(built.model)
        return built

    def apply_lora(self, built: Built, lora_cfg) -> Built:
        if built.config.head == "text":
            return super().apply_lora(built, lora_cfg)
        from dataclasses import replace

        from raysweep.models._clip_head import VISION_QKV, head_params_trainable
        from raysweep.models._tiny import count_params

        built = super().apply_lora(built, lora_cfg if lora_cfg.targets else replace(lora_cfg, targets=[VISION_QKV]))
        head_params_trainable(built.model)
        built.trainable_params, built.total_params = count_params(built.model)
        return built

    def save_adapter(self, built: Built, path) -> None:
        if built.config.head == "text":
            return super().save_adapter(built, path)
        from pathlib import Path

        from raysweep.models._adapter_identity import task_identity, write_identity
        from raysweep.models._clip_head import save_head

        Path(path).mkdir(parents=True, exist_ok=True)
        if built.lora:
            super().save_adapter(built, path)
        else:
            write_identity(path, built.config, task_identity(built))
        save_head(built.model, path)

    def load_adapter(self, built: Built, path, trainable: bool = False) -> Built:
        from pathlib import Path

        from raysweep.errors import UserError
        from raysweep.models._adapter_identity import check_identity
        from raysweep.models._clip_head import HEAD_FILE, load_head

        has_head = (Path(path) / HEAD_FILE).is_file()
        if has_head != (built.config.head != "text"):
            check_identity(built, path)  # names model.head when the identity records it
            raise UserError(f"adapter {path} {'has' if has_head else 'has no'} trained head but the base has "
                            f"model.head={built.config.head}; pass the model config it was trained with")  # fmt: skip
        if not has_head:
            return super().load_adapter(built, path, trainable)
        if (Path(path) / "adapter_config.json").is_file():
            built = super().load_adapter(built, path, trainable)
        else:
            check_identity(built, path)
        load_head(built.model, path)
        return built

    def build_pretrained(self, model_cfg, device, dtype) -> Built:
        from transformers import CLIPModel

        model = CLIPModel.from_pretrained(model_cfg.checkpoint, dtype=dtype)
        processor, tokenizer = self.load_processor(model_cfg)
        return Built(model, processor, tokenizer, self.name, model_cfg, device)

    def load_processor(self, model_cfg):
        from transformers import CLIPProcessor

        processor = CLIPProcessor.from_pretrained(model_cfg.checkpoint)
        override_normalisation(processor.image_processor, model_cfg)
        return processor, processor.tokenizer

    def build_tiny(self, model_cfg, device, task) -> Built:
        from transformers import CLIPConfig, CLIPModel, CLIPProcessor
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        side = model_cfg.image_size or 84
        tok = train_tokenizer(
            task, ["<|startoftext|>", "<|endoftext|>"], bos="<|startoftext|>", eos="<|endoftext|>", pad="<|endoftext|>",
            wrap_with_bos_eos=True,
        )
        width = model_cfg.tiny_vision_hidden
        config = CLIPConfig(
            text_config=dict(
                vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=32, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            ),
            vision_config=dict(
                hidden_size=width, intermediate_size=2 * width, num_hidden_layers=model_cfg.tiny_vision_layers,
                num_attention_heads=4, image_size=side, patch_size=model_cfg.tiny_patch or side // 3,
            ),
            projection_dim=width,
        )
        model = CLIPModel(config)
        set_tiny_vision_priors(model, model_cfg)
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side},
            image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        )
        override_normalisation(image_processor, model_cfg)
        processor = CLIPProcessor(image_processor=image_processor, tokenizer=tok)
        model.eval()
        return Built(model, processor, tok, self.name, model_cfg, device)

    def texts(self, built: Built) -> dict[str, torch.Tensor]:
        """The tokenised answer texts (one per answer of the task x L), cached on ``built``."""
        key = ("answer_texts", tuple(built.answer_names))
        if key not in built.extras:
            texts = [TEXT_TEMPLATE.format(area=a) for a in built.answer_names]
            built.extras[key] = dict(built.tokenizer(texts, padding=True, return_tensors="pt"))
        return built.extras[key]

    def collate(self, built: Built, rows: list[dict], train: bool) -> dict[str, torch.Tensor]:
        """``pixel_values``, the 9 area texts and ``labels`` (the target areas). No padding question here."""
        images = [load_image(r["image"]) for r in rows]
        pixels = built.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        texts = self.texts(built)
        batch = {"pixel_values": pixels, "input_ids": texts["input_ids"], "attention_mask": texts["attention_mask"]}
        if train:
            batch["labels"] = torch.tensor([int(r["label"]) for r in rows])
        return batch

    def logits(self, built: Built, batch: dict) -> torch.Tensor:
        batch = to_device(batch, built)
        if built.config.head != "text":
            from raysweep.models._clip_head import head_logits

            return head_logits(built.model, batch)  # (images, classes)
        out = built.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"])
        return out.logits_per_image  # (images, 9)

    def loss(self, built: Built, batch: dict) -> torch.Tensor:
        """Cross-entropy of each image over the 9 area texts."""
        return torch.nn.functional.cross_entropy(self.logits(built, batch).float(), batch["labels"].to(built.device))

    @torch.no_grad()
    def predict(self, built: Built, rows: list[dict], mode: str = "choice", max_new_tokens: int = 15) -> list[Prediction]:
        """Best image-text match; ``generate`` gives the same area with its name as the text."""
        from raysweep.errors import UserError

        if mode not in ("choice", "generate"):
            raise UserError(f"unknown prediction mode {mode!r}; choose choice or generate")
        logits = self.logits(built, self.collate(built, rows, train=False)).float().cpu()
        scores = torch.log_softmax(logits, -1)
        preds = []
        for row in scores:
            area = int(row.argmax())
            preds.append(Prediction(area, built.answer_names[area] if mode == "generate" else "", row.tolist()))
        return preds

