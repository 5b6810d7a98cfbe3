"""raysweep sweep: the main job, a Ray Tune search whose trials are full training runs."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Run a sweep (Ray Tune + ASHA) over config keys; each trial is a full `raysweep train` run tracked in MLflow."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep without repeating finished trials")
    parser.add_argument("--verbose", action="store_true",
                        help="show Ray's own output too (workers' logs, Tune's reporter, Train's result lines)")


def run(args) -> int:
    from pathlib import Path

    from raysweep.errors import UserError
    from raysweep.preflight import check_run_inputs, print_notes

    cfg = load_from_args(args)
    if not cfg.sweep.space:
        raise UserError(f"{args.config}: sweep.space is empty; give at least one key to search, or use `raysweep train`")
    configs_root = _configs_root(Path(args.config))
    print_notes(check_run_inputs(cfg, sweep=True, configs_root=configs_root))
    from raysweep.launch.sweep import run_sweep
    from raysweep.provenance import provenance_tags

    tags = provenance_tags(cfg)  # where the command starts: the trials' working directory has no .git
    from raysweep.sweep.paths import portable_path

    configs_root = Path(portable_path(str(configs_root), Path.cwd()))  # relative, like the trials' other paths
    summary = run_sweep(_trial_paths(cfg), configs_root, resume=args.resume, verbose=args.verbose, provenance=tags)
    if summary.get("user_error"):
        raise UserError(summary["user_error"])
    return summary["exit_status"]


def _configs_root(path):
    """The ``configs/`` folder above the sweep file (sweep includes are relative to it)."""
    for parent in path.resolve().parents:
        if parent.name == "configs":
            return parent
    return path.resolve().parent


def _trial_paths(cfg):
    """Input paths portable, storage absolute (URIs kept): what the trials' configs hold.

    Data, eval-set and DeepSpeed files inside the working directory are kept relative to it, so a
    trial resolves them in its own working directory (a Ray job's working_dir on its node, also after
    a resume from another folder; raysweep.sweep.paths); those outside it are made absolute.
    """
    from pathlib import Path

    from raysweep import storage
    from raysweep.sweep.paths import portable_paths

    portable_paths(cfg, Path.cwd())
    cfg.train.storage_path, cfg.sweep.storage_path = (storage.resolve(p) if p else p for p in (cfg.train.storage_path, cfg.sweep.storage_path))
    if not cfg.mlflow.tracking_uri:
        from raysweep.tracking import tracking_uri

        cfg.mlflow.tracking_uri = tracking_uri(cfg.mlflow)
    return cfg
