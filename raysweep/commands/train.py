"""raysweep train: one fine-tuning run on Ray Train, tracked in MLflow."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Fine-tune one model on one data config (Ray Train + DeepSpeed + LoRA), evaluate base vs fine-tuned, log to MLflow."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--register", action="store_true", help="register the best adapter (overrides mlflow.register)")


def run(args) -> int:
    from raysweep.preflight import check_run_inputs, print_notes

    cfg = load_from_args(args)
    print_notes(check_run_inputs(cfg))
    from raysweep.launch.resources import cluster_gpu_check
    from raysweep.launch.train import init_ray, run_training

    init_ray()
    cluster_gpu_check(cfg)  # the cluster's GPUs, now and autoscalable, not the driver's
    from raysweep.provenance import provenance_tags
    from raysweep.tracking import tracking_uri

    outcome = run_training(cfg, register=True if args.register else None, tags=provenance_tags(cfg))
    print(f"\nlook at it:  mlflow ui --backend-store-uri {tracking_uri(cfg.mlflow)}")
    return 0 if outcome.adapter_dir else 1
