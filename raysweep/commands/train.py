"""raysweep train: one fine-tuning run on Ray Train, tracked in MLflow."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Fine-tune one model on one data config (Ray Train + DeepSpeed + LoRA), evaluate base vs fine-tuned, log to MLflow."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--register", action="store_true", help="register the best adapter (overrides mlflow.register)")


def run(args) -> int:
    cfg = load_from_args(args)
    _check_inputs(cfg)
    from raysweep.launch.train import run_training
    from raysweep.tracking import tracking_uri

    outcome = run_training(cfg, register=True if args.register else None)
    print(f"\nlook at it:  mlflow ui --backend-store-uri {tracking_uri(cfg.mlflow)}")
    return 0 if outcome.adapter_dir else 1


def _check_inputs(cfg) -> None:
    """Fail fast, before Ray starts, on what can be checked here."""
    from pathlib import Path

    from raysweep.datasets import read_manifest
    from raysweep.errors import UserError
    from raysweep.models import get_family

    get_family(cfg.model.family)
    if cfg.data.source != "synthetic":
        if cfg.data.source not in cfg.data.parquet:
            raise UserError(f"data.source: unknown source {cfg.data.source!r}; add it under data.parquet or use synthetic")
        read_manifest(cfg.data.parquet[cfg.data.source])
    for s in cfg.train.eval_sets:
        if s.path:
            read_manifest(s.path)
        elif not Path(s.config).is_file():
            raise UserError(f"train.eval_sets: {s.name}: config {s.config} not found")
    if cfg.train.use_gpu:
        import torch

        if not torch.cuda.is_available():
            raise UserError("train.use_gpu is true but no CUDA GPU is visible here; set train.use_gpu=false")
