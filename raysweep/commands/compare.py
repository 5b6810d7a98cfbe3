"""raysweep compare: runs or registered model versions side by side, with a paired test on the same rows."""

HELP = ("Compare runs or model versions (run id, run name, models:/NAME@ALIAS, models:/NAME/VERSION): differing config "
        "keys, accuracy with intervals, per-area deltas and the exact McNemar test on the same eval rows.")  # fmt: skip


def add_arguments(parser) -> None:
    parser.add_argument("refs", metavar="RUN", nargs="+", help="two or more: run id, run name, models:/NAME@ALIAS or models:/NAME/VERSION; "
                        "each is compared with the first")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--pool-seeds", action="store_true", help="a sweep trial stands for its point: pool the trials that differ "
                        "only in train.seed (sweep.seeds); pairs are (seed, row)")  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the McNemar test (default 0.05)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")


def run(args) -> int:
    import json

    from raysweep.compare import compare_runs, format_comparison
    from raysweep.errors import UserError
    from analysis.runs import resolve_tracking_uri

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha}: expected a level between 0 and 1, such as 0.05")
    result = compare_runs(resolve_tracking_uri(args.tracking_uri), args.refs, pool_seeds=args.pool_seeds, alpha=args.alpha)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0
