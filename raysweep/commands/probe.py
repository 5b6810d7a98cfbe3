"""raysweep probe: layer-wise linear probes of the answer, base model against a fine-tuned adapter."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = ("Fit a linear probe of the answer on the last prompt token's hidden state of every layer (base and, with "
        "--adapter, fine-tuned); plot accuracy by layer and log it to MLflow.")


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder (generate or coco); the probe learns its `label`")
    parser.add_argument("--adapter", default=None, metavar="PATH", help="LoRA adapter folder (or models:/NAME@ALIAS) to probe next to the base")
    parser.add_argument("--run-id", default=None, metavar="ID", help="MLflow run to log to (the adapter's run); default: a new run of mlflow.experiment")
    parser.add_argument("--out", default=None, metavar="DIR", help="where probe.json and probe.png go (default: DIR/probe/<family>)")
    parser.add_argument("--limit", type=int, default=600, help="rows probed, the first N (default 600; 0 = all)")
    parser.add_argument("--held-out", type=float, default=0.3, help="share of each label's rows the probes are scored on (default 0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fit/score split")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per forward pass")


def run(args) -> int:
    import json
    from pathlib import Path

    import numpy as np
    import torch

    from raysweep.commands.eval import resolved_adapter
    from raysweep.datasets import open_dataset
    from raysweep.errors import UserError
    from raysweep.models import get_family
    from raysweep.plots import probe_lines
    from raysweep.preflight import check_writable
    from raysweep.probe import layer_states, probe_accuracy, split_rows
    from raysweep.tracking import RunLogger, tracking_uri

    cfg = load_from_args(args)
    if args.limit < 0 or not 0.0 < args.held_out < 1.0:
        raise UserError(f"--limit must be >= 0 and --held-out in (0, 1), got {args.limit} and {args.held_out}")
    out = Path(args.out) if args.out else Path(args.data) / "probe" / cfg.model.family
    check_writable(out, f"--out {out}")
    dataset = open_dataset(args.data)
    task = dataset.task
    rows = dataset.read().to_pylist()[: args.limit or None]
    labels = np.asarray([r["label"] for r in rows])
    if len(rows) < 4 * task.n_classes or len(set(labels.tolist())) < 2:
        raise UserError(f"dataset {args.data}: {len(rows)} rows of {len(set(labels.tolist()))} answers are too few to probe; give more rows")
    if cfg.model.device == "auto" and not torch.cuda.is_available():
        torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    fit, score = split_rows(labels, args.held_out, args.seed)
    family = get_family(cfg.model.family)
    built = family.build(cfg.model, task)
    curves = {"base": probe_accuracy(layer_states(family, built, rows, args.batch_size), labels, fit, score)}
    if args.adapter:
        with resolved_adapter(args.adapter, cfg) as adapter:
            built = family.load_adapter(built, adapter)
        curves["fine-tuned"] = probe_accuracy(layer_states(family, built, rows, args.batch_size), labels, fit, score)
    chance = float(np.bincount(labels[score]).max() / len(score))
    out.mkdir(parents=True, exist_ok=True)
    record = {"task": task.name, "family": cfg.model.family, "rows": len(rows), "fit_rows": len(fit), "scored_rows": len(score),
              "chance": chance, "layers": len(curves["base"]), "accuracy": curves}  # fmt: skip
    (out / "probe.json").write_text(json.dumps(record, indent=2) + "\n")
    probe_lines(curves, chance, f"{cfg.model.family}, {task.name}: probe of the answer by layer", out / "probe.png")
    uri = tracking_uri(cfg.mlflow)
    logger = RunLogger(uri, args.run_id) if args.run_id else RunLogger.start(uri, cfg.mlflow.experiment, f"probe-{cfg.model.family}",
                                                                              tags={"raysweep.role": "probe"})  # fmt: skip
    for name, values in curves.items():
        kind = "base" if name == "base" else "finetuned"
        for layer, acc in enumerate(values):
            logger.log_metrics({f"probe/{kind}/acc": acc}, step=layer)
    logger.log_artifacts(out, "probe")
    if not args.run_id:
        logger.end()
    for name, values in curves.items():
        print(f"{name:10s} " + " ".join(f"{v:.0%}" for v in values))
    print(f"chance {chance:.0%}; wrote {out}/probe.json and probe.png; logged to run {logger.run_id} ({uri})")
    return 0
