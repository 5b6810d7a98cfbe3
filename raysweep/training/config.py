"""Config sections of the training layer: optimisation, distribution, checkpoints, eval sets, MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raysweep._configlib import doc
from raysweep.errors import ConfigError


@dataclass
class EvalSet:
    """A test set evaluated at the end of training, for the base and the fine-tuned model."""

    name: str = doc("Name used in metric keys: test/<name>/acc, base/<name>/acc.", "")
    path: str = doc("A Parquet dataset folder (from generate or coco); or leave empty and give `config`.", "")
    config: str = doc("A data YAML (e.g. configs/data/civet_test.yaml) rendered on the fly.", "")
    overrides: list[str] = doc("key=value overrides applied to `config`.", factory=list)
    limit: int = doc("Evaluate at most this many rows, a seeded sample (0 = all).", 0)

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("name", "every eval set needs a name (used in metric keys)")
        if bool(self.path) == bool(self.config):
            raise ConfigError(self.name, "give exactly one of `path` (Parquet folder) or `config` (data YAML)")


@dataclass
class TrainConfig:
    """Optimisation, the training loop, distribution and checkpoints."""

    lr: float = doc("AdamW learning rate (the paper's 1e-5).", 1e-5)
    weight_decay: float = doc("AdamW weight decay.", 0.0)
    warmup_steps: int = doc("Linear learning-rate warm-up steps (then train.lr_schedule).", 0)
    lr_schedule: Literal["constant", "cosine"] = doc(
        "After the warm-up: constant at train.lr, or cosine decay to 0 at the run's last optimizer step "
        "(train.epochs x steps per epoch; early stopping does not shorten the curve).",
        "constant",
    )
    clip: float = doc("Gradient-norm clipping (0 = off).", 1.0)
    grounding_weight: float = doc(
        "Weight of an auxiliary grounding loss added to the answer loss while training (0 = off): a linear head on "
        "the language model's last hidden state at the last token of each object's name in the prompt ('red star', "
        "'blue circle') predicts that object's cell of the data.grid_size grid. The head is dropped after training; "
        "the adapter and every metric are the answer's. Decoder families (llava-next, qwen2-vl), rows rendered from "
        "a data config (README, Tasks).",
        0.0,
    )
    epochs: int = doc("Maximum epochs (the paper's 10).", 10)
    steps_per_epoch: int = doc("Optimizer steps per epoch on every worker (0 = one pass over the train set).", 0)
    batch_size: int = doc("Micro batch per worker (the paper's 1).", 1)
    grad_accum: int = doc("Gradient accumulation steps.", 1)
    patience: int = doc("Early stopping: epochs without improvement of early_stop_metric (the paper's 2; 0 = off).", 2)
    min_delta: float = doc("Early stopping: the smallest change that counts as an improvement.", 0.0)
    early_stop_metric: Literal["val/loss", "val/acc"] = doc("Metric watched for early stopping and the best checkpoint.", "val/loss")
    val_limit: int = doc("Validate on at most this many rows, a fixed seeded sample (0 = all).", 0)
    seed: int = doc("Seed of the data order and the adapter init.", 42)
    threads: int = doc("torch threads per worker (1 avoids oversubscription on small CPU boxes).", 1)
    num_workers: int = doc("Ray Train workers (data-parallel ranks).", 1)
    use_gpu: bool = doc("One GPU per worker.", False)
    cpus_per_worker: float = doc("CPUs reserved per worker.", 1.0)
    data_loader: Literal["worker", "ray_data"] = doc(
        "ray_data: a Ray Data pipeline on CPUs beside the workers renders/reads and collates each epoch's seeded "
        "batches, overlapped with training (raysweep.launch.data); worker: each worker renders/reads and collates "
        "its share itself (no Ray needed, for debugging). Both give the same batches.",
        "ray_data",
    )
    prefetch_batches: int = doc("ray_data: ready batches each worker keeps in flight ahead of the step.", 4)
    data_cpus: float = doc(
        "ray_data: CPUs each pipeline task requests. A task runs the family's single-threaded processor, so 1 "
        "keeps tasks from sharing a core with each other or the Train workers (0.5: two tasks per spare core, "
        "14% fewer rows/s on 2 cores, README Data plane); the cluster needs this much beside the workers.",
        1.0,
    )
    data_batches_per_task: int = doc(
        "ray_data: micro batches one pipeline task renders/reads and collates (fewer, larger tasks cost Ray's "
        "scheduler less: 4 vs 1 gave 10% more rows/s on 2 cores; lower it when a collated batch is large).",
        4,
    )
    strategy: Literal["deepspeed", "ddp"] = doc("deepspeed (ZeRO) or plain torch DDP.", "deepspeed")
    zero_stage: int = doc("DeepSpeed ZeRO stage (0-3).", 2)
    deepspeed_config: str = doc("A DeepSpeed JSON file whose keys override the generated config.", "")
    gradient_checkpointing: bool = doc(
        "Recompute each layer's activations in the backward pass instead of keeping them (about a third more compute, "
        "activations down to one hidden state per layer; raysweep plan shows the effect).",
        False,
    )
    gpu_memory_gib: float = doc(
        "Memory of one GPU in GiB for the pre-flight memory estimate of train/sweep (0 = this machine's GPU if one is "
        "visible, else the check is skipped with a note; see raysweep plan).",
        0.0,
    )
    storage_path: str = doc("Where checkpoints and run folders go (local folder, NFS or s3://).", "runs")
    name: str = doc("Run name (default: <family>-<timestamp>).", "")
    keep_checkpoints: int = doc("Checkpoints kept, the best by early_stop_metric.", 2)
    max_failures: int = doc("Worker failures to recover from (resume from the latest checkpoint).", 0)
    eval_sets: list[EvalSet] = doc("Test sets evaluated for the base and the fine-tuned model at the end.", factory=list)
    eval_base: bool = doc("Also evaluate the base model on the eval sets.", True)
    log_every: int = doc("Progress-bar refresh, in steps.", 10)

    def validate(self) -> None:
        for key in ("epochs", "batch_size", "grad_accum", "num_workers", "threads", "keep_checkpoints", "prefetch_batches",
                    "data_batches_per_task"):  # fmt: skip
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if not 0 <= self.zero_stage <= 3:
            raise ConfigError("zero_stage", f"must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.steps_per_epoch < 0 or self.patience < 0 or self.warmup_steps < 0 or self.max_failures < -1:
            raise ConfigError("steps_per_epoch", "steps_per_epoch, patience, warmup_steps must be >= 0")
        if self.grounding_weight < 0:
            raise ConfigError("grounding_weight", f"must be >= 0 (0 = off), got {self.grounding_weight}")
        if self.gpu_memory_gib < 0:
            raise ConfigError("gpu_memory_gib", f"must be >= 0, got {self.gpu_memory_gib}")
        if self.cpus_per_worker <= 0:
            raise ConfigError("cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")
        if self.data_cpus <= 0:
            raise ConfigError("data_cpus", f"must be > 0, got {self.data_cpus}")
        names = [s.name for s in self.eval_sets]
        if len(names) != len(set(names)):
            raise ConfigError("eval_sets", f"eval set names must be unique, got {names}")


@dataclass
class MlflowConfig:
    """MLflow tracking and the model registry."""

    tracking_uri: str = doc("Tracking URI; empty = $MLFLOW_TRACKING_URI or sqlite:///mlflow.db in the working directory.", "")
    experiment: str = doc("Experiment name.", "raysweep")
    register: bool = doc("Register the best adapter as a model version.", False)
    registered_model: str = doc("Registered model name (default raysweep-<family>).", "")
    alias: str = doc("Alias set on the new version (e.g. champion).", "champion")
