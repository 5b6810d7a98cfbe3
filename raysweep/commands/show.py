"""raysweep show: look at what the model is trained on."""

HELP = "Write a contact sheet PNG of dataset images with their target and answer."


def add_arguments(parser) -> None:
    parser.add_argument("dataset", metavar="DIR", help="dataset folder written by generate or coco")
    parser.add_argument("--n", type=int, default=16, help="number of images")
    parser.add_argument("--out", default=None, help="PNG path (default: DIR/contact_sheet.png)")
    parser.add_argument("--tile", type=int, default=224, help="tile size in pixels")
    parser.add_argument("--seed", type=int, default=0, help="0 = the first N rows; otherwise a seeded sample")


def run(args) -> int:
    from pathlib import Path

    from raysweep.datasets.contact_sheet import contact_sheet
    from raysweep.errors import UserError
    from raysweep.preflight import check_writable_file

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out) if args.out else Path(args.dataset) / "contact_sheet.png"
    check_writable_file(out, f"--out {args.out}" if args.out else f"contact sheet {out}")
    contact_sheet(args.dataset, n=args.n, tile=args.tile, seed=args.seed).save(out)
    print(f"wrote {out}")
    return 0
