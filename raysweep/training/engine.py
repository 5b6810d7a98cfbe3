"""The per-worker training step: model, LoRA, optimizer, DeepSpeed/DDP, validation, checkpoints.

Plain PyTorch: no Ray here. ``raysweep.launch.train`` drives a :class:`WorkerTrainer` on each Ray
Train worker; the benchmark drives one in a single process to compare against.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "trainer_state.json"


def lr_factor(step: int, warmup: int, schedule: str = "constant", total: int = 0) -> float:
    """Multiplier of ``train.lr`` at optimizer step ``step`` (from 0).

    Linear warm-up over ``warmup`` steps ((step + 1) / warmup), then 1 (``constant``) or a cosine from
    1 down to 0 at step ``total`` (``cosine``; held at 0 after). ``total`` is the run's optimizer steps.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainState:
    """What a checkpoint needs besides weights and optimizer: where we are and how it went."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)


def deepspeed_config(train_cfg, use_bf16: bool) -> dict:
    """DeepSpeed's JSON config generated from ours; a user file's keys override it."""
    cfg = {
        "train_micro_batch_size_per_gpu": train_cfg.batch_size,
        "gradient_accumulation_steps": train_cfg.grad_accum,
        "gradient_clipping": train_cfg.clip,
        "zero_optimization": {"stage": train_cfg.zero_stage},
        "bf16": {"enabled": use_bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if train_cfg.deepspeed_config:
        from raysweep._configlib import deep_merge
        from raysweep.errors import UserError

        path = Path(train_cfg.deepspeed_config)
        try:
            cfg = deep_merge(cfg, json.loads(path.read_text()))
        except FileNotFoundError:
            raise UserError(f"train.deepspeed_config: {path} not found") from None
        except json.JSONDecodeError as err:
            raise UserError(f"train.deepspeed_config: {path} is not valid JSON ({err.msg})") from None
    return cfg


STALE_LOCK_S = 600  # DeepSpeed's op compiles in 30-95 s here; a lock this old belongs to a killed build


def prepare_extension_cache() -> Path:
    """Where DeepSpeed compiles its ops, per virtual environment; a killed build's lock is removed.

    torch's extension cache is shared by every environment of a user, so two environments with
    different DeepSpeed sources rebuild the op in turn; and a worker killed while compiling leaves a
    ``lock`` file on which every later start waits forever.
    """
    import os
    import sys

    root = Path(os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions")))
    if root.is_dir():
        for lock in root.glob("*/lock"):
            try:
                if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                    lock.unlink()
            except FileNotFoundError:
                pass
    return root


class WorkerTrainer:
    """One data-parallel rank: builds the model and runs steps, validation and checkpoints."""

    def __init__(self, cfg, rank: int = 0, world_size: int = 1, device: torch.device | None = None, distributed: bool | None = None,
                 total_steps: int = 0):  # fmt: skip
        """``total_steps``: the run's optimizer steps, for ``train.lr_schedule=cosine`` (0: ``train.epochs x
        train.steps_per_epoch``; a ConfigError when that is 0 too)."""
        from raysweep.models import get_family

        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        random.seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)
        model_cfg = cfg.model if device is None else replace(cfg.model, device=str(device))
        from raysweep.tasks import training_task

        self.family = get_family(cfg.model.family)
        built = self.family.build(model_cfg, training_task(cfg.data))
        if cfg.lora.enabled:
            built = self.family.apply_lora(built, cfg.lora)
        if cfg.train.gradient_checkpointing:
            from raysweep.models.base import enable_gradient_checkpointing

            enable_gradient_checkpointing(built)
        self.built = built
        self.grounding_head = None
        self.last_grounding_loss: float | None = None
        if cfg.train.grounding_weight:
            from raysweep.preflight import check_grounding

            check_grounding(cfg.data, cfg.model, cfg.train)  # also when driven without the CLI (benchmarks)
            self.grounding_head = self._grounding_head(built, cfg.data.grid_size)
        params = [p for p in built.model.parameters() if p.requires_grad]
        if not params:
            from raysweep.errors import UserError

            raise UserError("nothing to train: lora.enabled is false and the model is frozen")
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        warmup, schedule = cfg.train.warmup_steps, cfg.train.lr_schedule
        total = total_steps or cfg.train.epochs * cfg.train.steps_per_epoch
        if schedule == "cosine" and not total:
            from raysweep.errors import ConfigError

            raise ConfigError("train.lr_schedule", "cosine needs the run's length: set train.steps_per_epoch")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, warmup, schedule, total))
        self.strategy = "none"
        self.engine = built.model
        distributed = world_size > 1 if distributed is None else distributed
        if cfg.train.strategy == "deepspeed" and distributed:
            prepare_extension_cache()
            import deepspeed

            use_bf16 = built.device.type == "cuda" and next(built.model.parameters()).dtype == torch.bfloat16
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=built.model, optimizer=self.optimizer, lr_scheduler=self.scheduler,
                config=deepspeed_config(cfg.train, use_bf16),
            )  # fmt: skip
            self.strategy = "deepspeed"
        elif distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [built.device.index] if built.device.type == "cuda" else None
            self.engine = DistributedDataParallel(built.model, device_ids=ids)
            self.strategy = "ddp"
        self._micro = 0

    @property
    def trainable_params(self) -> int:
        return self.built.trainable_params

    def prepare(self, rows) -> dict:
        """A training batch (tensors, answer-only labels) from rows."""
        return self.family.collate(self.built, rows, train=True)

    def _grounding_head(self, built, grid: int) -> torch.nn.Linear:
        """The ``train.grounding_weight`` head (width -> grid x grid cells), a submodule of the model so that
        the optimizer, DeepSpeed and checkpoints hold it; never part of the saved adapter."""
        width = built.model.get_input_embeddings().embedding_dim
        head = torch.nn.Linear(width, grid * grid).to(built.device)
        built.model.add_module("grounding_head", head)
        built.extras.update(grounding=True, grounding_grid=grid)
        return head

    def _loss(self, batch: dict) -> torch.Tensor:
        return self.family.loss(replace(self.built, model=self.engine), batch)

    def train_step(self, batch: dict) -> float:
        """One micro batch: forward, backward and (at accumulation boundaries) an optimizer step.

        Returns the answer loss; with ``train.grounding_weight`` the gradient is that of the answer loss
        plus the weighted grounding loss (kept in :attr:`last_grounding_loss`).
        """
        self.engine.train()
        if self.grounding_head is not None:
            loss, aux = self.family.grounding_loss(replace(self.built, model=self.engine), batch, self.grounding_head)
            self.last_grounding_loss = float(aux.detach())
            total = loss + self.cfg.train.grounding_weight * aux
        else:
            loss = total = self._loss(batch)
        if self.strategy == "deepspeed":
            self.engine.backward(total)
            self.engine.step()
        else:
            (total / self.cfg.train.grad_accum).backward()
            self._micro += 1
            if self._micro % self.cfg.train.grad_accum == 0:
                if self.cfg.train.clip:
                    torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.cfg.train.clip)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, source, batch_size: int, mode: str = "choice") -> dict[str, float]:
        """Validation loss and the evaluation metrics on every row of ``source`` (same on all ranks)."""
        from raysweep.evaluate import evaluate_rows

        self.engine.eval()
        rows = source.rows(range(len(source)))
        losses, weights = [], []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            losses.append(float(self._loss(self.prepare(chunk))))
            weights.append(len(chunk))
        metrics = evaluate_rows(self.built, rows, mode=mode, batch_size=batch_size)
        out = {"val/loss": float(np.average(losses, weights=weights))}
        out.update({f"val/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
        return out

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, directory: Path, state: TrainState) -> None:
        """Adapter (rank 0), optimizer/scheduler state and the TrainState into ``directory``."""
        directory = Path(directory)
        if self.strategy == "deepspeed":
            self.engine.save_checkpoint(str(directory / "deepspeed"), tag="state", exclude_frozen_parameters=True)
        elif self.rank == 0:
            names = {n for n, p in self.built.model.named_parameters() if p.requires_grad}
            trainable = {k: v for k, v in self.built.model.state_dict().items() if k in names}
            torch.save(
                {"model": trainable, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "micro": self._micro},
                directory / "torch_state.pt",
            )
        with self._full_trainable_params():
            if self.rank == 0:
                self.family.save_adapter(self.built, directory / "adapter")
        if self.rank == 0:
            (directory / STATE_FILE).write_text(json.dumps(state.__dict__))

    def _full_trainable_params(self):
        """Under ZeRO-3 every rank holds a slice of each weight: gather the adapter's (all ranks)."""
        import contextlib

        if self.strategy != "deepspeed" or self.cfg.train.zero_stage != 3:
            return contextlib.nullcontext()
        import deepspeed

        params = [p for p in self.built.model.parameters() if p.requires_grad]
        return deepspeed.zero.GatheredParameters(params, modifier_rank=None)

    def load(self, directory: Path) -> TrainState:
        """Restore what :meth:`save` wrote; returns the TrainState to continue from.

        Raises:
            UserError: the checkpoint was written for another base model (its adapter's identity
                differs), e.g. a run name reused with another model config.
        """
        from raysweep.models._adapter_identity import check_identity

        directory = Path(directory)
        if (directory / "adapter").is_dir():
            check_identity(self.built, directory / "adapter")  # load_state_dict(strict=False) would not notice
        if self.strategy == "deepspeed":
            self.engine.load_checkpoint(str(directory / "deepspeed"), tag="state", load_module_strict=False)
        else:
            blob = torch.load(directory / "torch_state.pt", map_location=self.built.device, weights_only=False)
            self.built.model.load_state_dict(blob["model"], strict=False)
            self.optimizer.load_state_dict(blob["optimizer"])
            self.scheduler.load_state_dict(blob["scheduler"])
            self._micro = blob["micro"]
        return TrainState(**json.loads((directory / STATE_FILE).read_text()))
