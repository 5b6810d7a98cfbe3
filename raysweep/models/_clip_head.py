"""CLIP with a trained classification head (``model.head``: linear or mlp), for the paper's open question
of why a dual encoder does not transfer: the contrastive text matching, or the image features?

The head maps CLIP's image features (the vision tower's pooled output through its projection, as
``get_image_features``) to the task's classes. It is a submodule of the CLIP model (``raysweep_head``), so the
optimizer, DDP/DeepSpeed and the checkpoints' trainable state see it; the towers are frozen, and
with ``lora.enabled`` LoRA adapts the vision tower's q/k/v (the text tower plays no part). The head
is saved next to the adapter as :data:`HEAD_FILE`; a head-only run (``lora.enabled=false``) saves the
head and the identity file alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

HEAD_FILE = "raysweep_head.safetensors"
VISION_QKV = r"vision_model\..*\.(q_proj|k_proj|v_proj)"


def make_head(kind: str, width: int, n_classes: int, seed: int) -> torch.nn.Module:
    """A linear layer, or a one-hidden-layer MLP of the feature width, seeded."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed + 1_000_003)
    try:
        if kind == "linear":
            return torch.nn.Linear(width, n_classes)
        return torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.GELU(), torch.nn.Linear(width, n_classes))
    finally:
        torch.random.set_rng_state(generator_state)


def attach_head(built) -> None:
    """Give ``built.model`` (a plain CLIPModel) its head and freeze everything else."""
    model = built.model
    width = model.config.projection_dim
    model.raysweep_head = make_head(built.config.head, width, len(built.answer_names), built.config.seed).to(
        device=built.device, dtype=next(model.parameters()).dtype
    )
    for name, param in model.named_parameters():
        param.requires_grad = name.startswith("raysweep_head.")


def unwrap(model):
    """The CLIPModel inside DDP / DeepSpeed / peft wrappers."""
    while hasattr(model, "module") and isinstance(getattr(model, "module"), torch.nn.Module):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def head_logits(model, batch: dict) -> torch.Tensor:
    """(images, classes) logits of the head on the image features.

    The forward pass goes through ``model`` itself (DDP and DeepSpeed see their forward); the
    features are the vision tower's pooled output through CLIP's (frozen) visual projection, the
    same as ``get_image_features``.
    """
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"])
    inner = unwrap(model)
    return inner.raysweep_head(inner.visual_projection(out.vision_model_output.pooler_output))


def head_params_trainable(model) -> None:
    """Unfreeze the head after peft froze every non-LoRA weight."""
    for param in unwrap(model).raysweep_head.parameters():
        param.requires_grad = True


def save_head(model, path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).raysweep_head.state_dict().items()}
    save_file(state, str(Path(path) / HEAD_FILE))


def load_head(model, path) -> None:
    from safetensors.torch import load_file

    from raysweep.errors import UserError

    head = unwrap(model).raysweep_head
    try:
        state = load_file(str(Path(path) / HEAD_FILE))
        head.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - a damaged file or other shapes: one line
        raise UserError(f"adapter {path}: {HEAD_FILE} does not fit this head ({str(err).splitlines()[0]}); "
                        "train it again or pass the model config it was trained with") from None  # fmt: skip
    head.to(next(head.parameters()).device)
