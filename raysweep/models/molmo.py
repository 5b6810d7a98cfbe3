"""Molmo (allenai/Molmo-7B-O-0924): OLMo LM + CLIP ViT, model code on the Hub (trust_remote_code).

transformers has no native class for this Molmo (its ``molmo2`` is a different, later model), so
there is NO tiny variant: building one would need the Hub code. What runs offline and is tested:
the ``trust_remote_code`` guard, the default LoRA targets (``att_proj`` = the LM's fused q/k/v;
``wq wk wv`` = the ViT attention, as in the lab's runs), batching of per-example ``processor.process``
outputs (right padding for training with ``image_input_idx`` untouched; left padding for generation
with ``image_input_idx`` shifted by the padding), the answer-only loss mask and the causal-LM loss.
Untested here (needs the weights): ``generate_from_batch`` and the forward pass of the real model.

``choice`` scores the 9 answers as 9 full sequences per image (the remote code's cache API is not
relied on), so it is not faster than ``generate`` for Molmo.
"""

from __future__ import annotations

import torch

from raysweep.errors import UserError
from raysweep.models import register
from raysweep.models.base import IGNORE, Built, Family, Prediction, decode_generated, load_image, to_device

IMAGE_KEYS = ("images", "image_input_idx", "image_masks")


def pad_examples(examples: list[dict], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    """Stack per-example Molmo inputs; token keys padded on ``side``, image keys padded with -1.

    ``image_input_idx`` holds positions in the token sequence: left padding shifts them.
    """
    length = max(len(e["input_ids"]) for e in examples)
    crops = max(e["images"].shape[0] for e in examples)
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    for key in IMAGE_KEYS:
        out[key] = []
    for e in examples:
        n = len(e["input_ids"])
        pad = length - n
        ids = torch.full((length,), pad_id, dtype=torch.long)
        mask = torch.zeros(length, dtype=torch.long)
        labels = torch.full((length,), IGNORE, dtype=torch.long)
        span = slice(pad, length) if side == "left" else slice(0, n)
        ids[span], mask[span] = e["input_ids"], 1
        if "labels" in e:
            labels[span] = e["labels"]
        out["input_ids"].append(ids)
        out["attention_mask"].append(mask)
        out["labels"].append(labels)
        for key in IMAGE_KEYS:
            value = e[key]
            if key == "image_input_idx" and side == "left":
                value = torch.where(value >= 0, value + pad, value)
            filler = torch.full((crops - value.shape[0], *value.shape[1:]), -1, dtype=value.dtype)
            out[key].append(torch.cat([value, filler]))
    batch = {k: torch.stack(v) for k, v in out.items()}
    if not any("labels" in e for e in examples):
        del batch["labels"]
    return batch


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not -100."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE)


@register("molmo")
class Molmo(Family):
    default_checkpoint = "allenai/Molmo-7B-O-0924"
    checkpoints = ("allenai/Molmo-7B-O-0924",)
    tiny = "none: transformers has no native Molmo-0924 class (its code lives on the Hub)"
    # Input limits (raysweep.images.family_input_limits): none stated by the Hub code and none
    # verified here (its preprocessing needs the remote code); a row it refuses fails alone in eval.
    min_side = 1
    max_aspect_ratio = None

    def default_lora_targets(self, vision: bool):
        return ["att_proj", "wq", "wk", "wv"] if vision else ["att_proj"]

    def build_tiny(self, model_cfg, device, task) -> Built:
        raise UserError("molmo has no tiny variant: its model code lives on the Hub; use checkpoint allenai/Molmo-7B-O-0924 with trust_remote_code: true")

    def build_pretrained(self, model_cfg, device, dtype) -> Built:
        if not model_cfg.trust_remote_code:
            raise UserError(f"molmo: {model_cfg.checkpoint} runs model code from the Hub; set model.trust_remote_code=true to allow it")
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_cfg.checkpoint, trust_remote_code=True, dtype=dtype)
        processor, tokenizer = self.load_processor(model_cfg)
        return Built(model, processor, tokenizer, self.name, model_cfg, device)

    def load_processor(self, model_cfg):
        if not model_cfg.trust_remote_code:
            raise UserError(f"molmo: {model_cfg.checkpoint} runs model code from the Hub; set model.trust_remote_code=true to allow it")
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(model_cfg.checkpoint, trust_remote_code=True)
        return processor, processor.tokenizer

    def encode(self, built: Built, row: dict, answer: str | None = None) -> dict:
        """One example: ``processor.process`` of image + prompt, then the answer tokens (+EOS) if given."""
        ex = dict(built.processor.process(images=[load_image(row["image"])], text=row["prompt"]))
        ex["input_ids"] = torch.as_tensor(ex["input_ids"], dtype=torch.long)
        if answer is not None:
            tok = built.tokenizer
            tail = torch.tensor(tok(" " + answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
            ex["labels"] = torch.cat([torch.full_like(ex["input_ids"], IGNORE), tail])
            ex["input_ids"] = torch.cat([ex["input_ids"], tail])
        return ex

    def collate(self, built: Built, rows: list[dict], train: bool) -> dict[str, torch.Tensor]:
        examples = [self.encode(built, r, r["answer"] if train else None) for r in rows]
        return pad_examples(examples, built.tokenizer.pad_token_id or 0, "right" if train else "left")

    def loss(self, built: Built, batch: dict) -> torch.Tensor:
        batch = to_device(batch, built)
        labels = batch.pop("labels")
        return causal_lm_loss(built.model(**batch).logits, labels)

    @torch.no_grad()
    def predict(self, built: Built, rows: list[dict], mode: str = "choice", max_new_tokens: int = 15) -> list[Prediction]:
        if mode == "generate":
            from transformers import GenerationConfig

            batch = to_device(self.collate(built, rows, train=False), built)
            cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, stop_strings="<|endoftext|>")
            out = built.model.generate_from_batch(batch, cfg, tokenizer=built.tokenizer)
            return decode_generated(built.tokenizer, out[:, batch["input_ids"].shape[1]:], built.task)
        if mode != "choice":
            raise UserError(f"unknown prediction mode {mode!r}; choose choice or generate")
        preds = []
        for row in rows:
            batch = to_device(self.collate(built, [dict(row, answer=a) for a in built.answer_names], train=True), built)
            labels = batch.pop("labels")
            logp = torch.log_softmax(built.model(**batch).logits[:, :-1].float(), -1)
            target = labels[:, 1:]
            scores = (logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * (target != IGNORE)).sum(1)
            preds.append(Prediction(int(scores.argmax()), "", scores.tolist()))
        return preds
