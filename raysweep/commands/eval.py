"""raysweep eval: score a model (optionally with a LoRA adapter) on a Parquet dataset."""

import contextlib

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Evaluate a model config on a dataset folder: prints a table, writes metrics JSON and per-class figures."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder written by `raysweep generate` or `raysweep coco`")
    parser.add_argument("--adapter", default=None, metavar="PATH", help="LoRA adapter folder saved by training, or a registered model: models:/NAME@ALIAS (or models:/NAME/VERSION)")
    parser.add_argument("--mode", choices=["choice", "generate", "both"], default=None, help="prediction mode (default: eval.mode)")
    parser.add_argument("--out", default=None, metavar="DIR", help="report folder (default: DIR/eval/<family>-<mode>)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N rows only (default: eval.limit)")
    parser.add_argument("--replicas", type=int, default=None, help="model replicas predicting in parallel, Ray Data batch inference (default: eval.replicas, or 1)")
    parser.add_argument("--local", action="store_true", help="predict in this process, without Ray (debugging)")


def run(args) -> int:
    from pathlib import Path

    import torch

    from raysweep.datasets import open_dataset
    from raysweep.errors import UserError
    from raysweep.preflight import check_checkpoint_folder, check_device, check_writable

    cfg = load_from_args(args)
    if torch.device("cuda" if torch.cuda.is_available() else "cpu").type == "cpu":
        torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    limit = cfg.eval.limit if args.limit is None else args.limit
    if limit < 0:
        raise UserError(f"--limit must be >= 0, got {limit}")
    modes = ["choice", "generate"] if (args.mode or cfg.eval.mode) == "both" else [args.mode or cfg.eval.mode]
    outs = {mode: _report_dir(args, cfg, mode, len(modes) > 1) for mode in modes}
    for out in outs.values():  # before any work: an unwritable report folder fails now, not after the evaluation
        check_writable(out, f"--out {args.out}" if args.out else f"report folder {out}")
    check_device(cfg.model, use_gpu=None)  # eval runs here: this machine's CUDA decides
    check_checkpoint_folder(cfg.model)
    dataset = open_dataset(args.data)
    task = dataset.task  # the answer space is the data's
    rows = dataset.read().to_pylist()
    if limit:
        rows = rows[:limit]
    if not rows:
        raise UserError(f"dataset {args.data} has no rows")
    replicas = cfg.eval.replicas if args.replicas is None else args.replicas
    if replicas < 0:
        raise UserError(f"--replicas must be >= 1, got {replicas}")
    with resolved_adapter(args.adapter, cfg) as adapter:
        return _evaluate(args, cfg, task, rows, outs, adapter, replicas or 1)


def _evaluate(args, cfg, task, rows, outs, adapter, replicas: int) -> int:
    """Predict ``rows`` in every mode of ``outs``, score, write the reports, print the tables."""
    from raysweep.evaluate import format_table, score_predictions, write_report
    from raysweep.metrics import agreement

    if not args.local:  # before any replica starts: a checkpoint that cannot load is one line here, not a failed actor
        from raysweep.models import get_family

        get_family(cfg.model.family).build_collator(cfg.model, task)  # the processor files only
    if adapter:
        from raysweep.models._adapter_identity import check_adapter

        check_adapter(adapter, cfg.model, task)
    ray_started = not args.local and not _ray_running()
    try:
        predicted = _predictor(cfg, task, adapter, replicas, args.local).predict([(rows, mode, task) for mode in outs])
    finally:
        if ray_started:  # a Ray this command started ends with it
            import ray

            ray.shutdown()
    results = {}
    for (mode, out), (preds, errors, seconds) in zip(outs.items(), predicted):
        result = score_predictions(rows, preds, errors, task, mode, cfg.eval.leniency, seconds, cfg.eval.max_new_tokens)
        write_report(result, out, title=cfg.model.family, task=task)
        print(format_table(result, task))
        print(f"wrote {out}/metrics.json and figures")
        results[mode] = result
    if len(results) == 2:
        a, b = ([p["pred"] for p in results[m]["predictions"]] for m in outs)
        speed = results["choice"]["rows_per_s"] / max(results["generate"]["rows_per_s"], 1e-9)
        print(f"choice vs generate: agreement {agreement(a, b):.1%}, choice {speed:.1f}x faster")
    return 0


def _ray_running() -> bool:
    import ray

    return ray.is_initialized()


def _predictor(cfg, task, adapter, replicas: int, local: bool):
    """Ray Data batch inference on ``replicas`` model replicas (a GPU each where the cluster has GPUs),
    or with ``local`` the model in this process."""
    if local:
        from raysweep.evaluate import LocalPredictor
        from raysweep.models import get_family

        def build():
            family = get_family(cfg.model.family)
            built = family.build(cfg.model, task)
            return family.load_adapter(built, adapter) if adapter else built

        return LocalPredictor(build, cfg.eval.batch_size, cfg.eval.max_new_tokens)
    import ray

    from raysweep.launch.inference import RayDataPredictor
    from raysweep.launch.train import init_ray

    init_ray()
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and cfg.model.device.startswith(("auto", "cuda")) else 0
    return RayDataPredictor(cfg.model, task, adapter, replicas, cfg.eval.replica_cpus, gpus, 1 if gpus else max(1, int(cfg.eval.replica_cpus)),
                            cfg.eval.batch_size, cfg.eval.max_new_tokens)  # fmt: skip


def _report_dir(args, cfg, mode: str, several: bool):
    """Where the report of one mode goes: ``--out`` (one subfolder per mode for ``both``) or DIR/eval/<family>-<mode>."""
    from pathlib import Path

    if args.out:
        return Path(args.out) / mode if several else Path(args.out)
    return Path(args.data) / "eval" / f"{cfg.model.family}-{mode}"


@contextlib.contextmanager
def resolved_adapter(adapter: str | None, cfg):
    """A local adapter folder for the ``with`` block (None without ``adapter``); a registered
    ``models:/...`` is downloaded from the MLflow registry into a temporary folder removed afterwards.

    Whether the adapter fits the base is checked by ``load_adapter`` (the identity saved with it);
    an adapter registered before identities were saved gets one from its registered run config.
    """
    if not adapter or not adapter.startswith("models:/"):
        yield adapter
        return
    import shutil
    import tempfile

    from raysweep.config import load_config
    from raysweep.models._adapter_identity import has_identity, write_identity
    from raysweep.tracking import fetch_registered_adapter, tracking_uri

    uri = tracking_uri(cfg.mlflow)
    tmp = tempfile.mkdtemp(prefix="raysweep-adapter-")
    try:
        adapter_dir, config_path = fetch_registered_adapter(uri, adapter, tmp)
        if not has_identity(adapter_dir):
            write_identity(adapter_dir, load_config(config_path).model)
        print(f"loaded {adapter} from {uri}")
        yield str(adapter_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
