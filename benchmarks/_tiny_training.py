"""The tiny-model LoRA recipe the README's "Does the tiny model learn?" numbers use (benchmarks only).

AdamW with a linear warm-up, gradient norm clipped at 1, batches sampled from synthetic scenes that
are never evaluated. Shared by bench_tiny_learns.py and bench_predict_modes.py.
"""

from __future__ import annotations

import torch

from raysweep.models import get_family
from raysweep.models._rows import synthetic_rows


def held_out_and_train(n_held_out: int, pool: int = 1200) -> tuple[list[dict], list[dict]]:
    """``n_held_out`` evaluation scenes and the training scenes of ``pool`` that are not among them."""
    held_out = synthetic_rows(n_held_out, offset=3)
    held_ids = {r["scene_id"] for r in held_out}
    return held_out, [r for r in synthetic_rows(pool) if r["scene_id"] not in held_ids]


def lora_step(built, lr: float, warmup: int):
    """A function that takes one optimiser step on a list of rows and returns the loss."""
    family = get_family(built.family)
    opt = torch.optim.AdamW([p for p in built.model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))

    def step(rows: list[dict]) -> torch.Tensor:
        built.model.train()
        loss = family.loss(built, family.collate(built, rows, train=True))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(built.model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        return loss

    return step
