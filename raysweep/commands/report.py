"""raysweep report: a sweep's or an experiment's tables and figures as one HTML page, Markdown and CSV."""

HELP = "Write a report of an MLflow experiment or sweep: DIR/index.html (self-contained), DIR/report.md and CSV tables."


def add_arguments(parser) -> None:
    parser.add_argument("--experiment", required=True, metavar="NAME", help="MLflow experiment name (mlflow.experiment of the runs)")
    parser.add_argument("--sweep", metavar="NAME", help="only the trials of this sweep (sweep.name); default: every run of the experiment")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for index.html, report.md, the CSV tables and figures/")
    parser.add_argument("--mlflow-ui", metavar="URL", help="MLflow UI address the trial table links to (default: the tracking "
                        "URI when it is http(s); no links otherwise)")  # fmt: skip
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")
    parser.add_argument("--metric", default="val/acc", help="per-epoch metric that picks each family's best run (default val/acc)")
    parser.add_argument("--mode", choices=["max", "min"], default="max", help="whether --metric is better high or low")
    parser.add_argument("--keys", help="comma-separated config keys to group ablations by (default: every swept one)")


def run(args) -> int:
    from pathlib import Path

    from analysis.html import default_ui, write_html
    from analysis.report import collect_report
    from analysis.runs import experiment_id, resolve_tracking_uri, sweep_params
    from raysweep.errors import UserError
    from raysweep.preflight import check_writable

    if args.mlflow_ui and not args.mlflow_ui.startswith(("http://", "https://")):
        raise UserError(f"--mlflow-ui {args.mlflow_ui}: expected an http(s) address such as http://localhost:5000")
    check_writable(args.out, f"--out {args.out}")
    uri = resolve_tracking_uri(args.tracking_uri)
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    out = Path(args.out)
    report = collect_report(uri, args.experiment, out, args.sweep, args.metric, args.mode, keys)
    config = sweep_params(uri, args.experiment, args.sweep) if args.sweep else (None, {})
    page = write_html(report, out, uri, args.mlflow_ui or default_ui(uri), experiment_id(uri, args.experiment), config)
    csvs = sorted(p.name for p in out.glob("*.csv"))
    print(f"raysweep report: {page} ({page.stat().st_size / 1024:.0f} KiB, {len(report.figures)} figures embedded), "
          f"{out / 'report.md'}, {len(csvs)} CSV tables ({', '.join(csvs)})")  # fmt: skip
    return 0
