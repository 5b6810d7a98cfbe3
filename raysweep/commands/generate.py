"""raysweep generate: render a synthetic scene set to Parquet."""

from raysweep.commands._common import add_config_arguments, load_from_args

HELP = "Render the synthetic scenes of a data config into a Parquet dataset folder."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (created; its manifest.json is written last)")
    parser.add_argument("--workers", type=int, default=1, help="parallel writer processes (output is identical for any count)")
    parser.add_argument("--rows-per-part", type=int, default=2000, help="rows per Parquet part file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from raysweep.datasets.synthetic import generate
    from raysweep.errors import UserError

    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.rows_per_part < 1:
        raise UserError(f"--rows-per-part must be >= 1, got {args.rows_per_part}")
    cfg = load_from_args(args)
    manifest = generate(cfg.data, args.out, workers=args.workers, rows_per_part=args.rows_per_part, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {manifest['rows']} scenes ({cfg.data.split}) in {manifest['parts']} parts to {args.out} ({manifest['seconds']:.1f} s)")
    return 0
