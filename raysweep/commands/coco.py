"""raysweep coco: COCO Absolute (or Relative) Position questions on real photos, to Parquet."""

HELP = ("Build a COCO Absolute Position set ('Where is the {category}?'), or with --task relative_position a "
        "Relative Position set ('Where is the {A} relative to the {B}?'), from COCO instance annotations.")


def _names(text: str) -> list[str]:
    """The names of a comma list (``dog,cat``); a name with a comma needs the one-name flag."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _name(text: str) -> str:
    """One name, taken whole (commas included): ``--category "pot, plant"``."""
    return text.strip()


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True, help="COCO instances JSON, e.g. instances_val2017.json")
    parser.add_argument("--images", required=True, help="folder of the JPEG files named by the JSON's file_name")
    parser.add_argument("--out", required=True, help="output folder (created; its manifest.json is written last)")
    parser.add_argument("--split", default=None, help="split label of the rows (default: from the file name, e.g. val2017)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the option order and of every subset")
    parser.add_argument("--task", default="absolute_position", help="question type (see `raysweep tasks`): absolute_position or relative_position")
    parser.add_argument("--min-separation", type=float, default=0.1,
                        help="relative_position: box centres at least this fraction of the image side apart along the asked axis")
    parser.add_argument("--areas-per-side", type=int, default=3, help="answer grid of the absolute_position task: N x N areas by N-ths of the image (3: the paper's nine)")
    parser.add_argument("--min-box-frac", type=float, default=0.0, help="leave out boxes smaller than this fraction of the image area")
    parser.add_argument(
        "--line-margin", type=float, default=0.0,
        help="leave out boxes whose centre lies within this fraction of the width/height of a third line (0 = off)",
    )  # fmt: skip
    parser.add_argument("--categories", type=_names, default=[], help="comma list: ask only about these categories")
    parser.add_argument(
        "--category", type=_name, action="append", default=[], metavar="NAME",
        help="ask about this category (one name, commas included; repeatable; adds to --categories)",
    )  # fmt: skip
    parser.add_argument("--exclude-categories", type=_names, default=[], help="comma list: never ask about these categories")
    parser.add_argument(
        "--exclude-category", type=_name, action="append", default=[], metavar="NAME",
        help="never ask about this category (one name, commas included; repeatable; adds to --exclude-categories)",
    )  # fmt: skip
    parser.add_argument("--per-area-cap", type=int, default=None, help="balanced subset: at most N questions per area (seeded)")
    parser.add_argument("--balanced", action="store_true", help="exactly equal counts per area (the smallest area's count, or --per-area-cap if lower)")
    parser.add_argument("--per-category-cap", type=int, default=None, help="at most N questions per category (seeded)")
    parser.add_argument("--limit", type=int, default=None, help="keep a seeded sample of N questions (for quick runs; may unbalance)")
    parser.add_argument("--strict", action="store_true", help="stop at the first skip (missing image, bad box, ...) instead of counting it")
    parser.add_argument("--rows-per-part", type=int, default=500, help="rows per Parquet part file (bounds memory: rows x JPEG size)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from raysweep.datasets.coco import CocoOptions, build_coco_set

    opts = CocoOptions(
        split=args.split,
        task=args.task,
        seed=args.seed,
        min_separation=args.min_separation,
        areas_per_side=args.areas_per_side,
        min_box_frac=args.min_box_frac,
        line_margin=args.line_margin,
        categories=args.categories + args.category,
        exclude_categories=args.exclude_categories + args.exclude_category,
        per_area_cap=args.per_area_cap,
        per_category_cap=args.per_category_cap,
        balanced=args.balanced,
        limit=args.limit,
        strict=args.strict,
        rows_per_part=args.rows_per_part,
    )
    manifest = build_coco_set(args.annotations, args.images, args.out, opts, overwrite=args.overwrite, progress=not args.quiet)
    skipped = sum(v["count"] for v in manifest["skipped"].values())
    per = (f"per area {manifest['area_counts']}; heatmap {args.out}/area_distribution.png" if "area_counts" in manifest
           else f"per relation {manifest['relation_counts']}")  # fmt: skip
    print(
        f"wrote {manifest['rows']} questions ({manifest['split']}) about {manifest['counts']['images_asked_about']} images "
        f"in {manifest['parts']} parts to {args.out} ({manifest['seconds']:.1f} s); skipped {skipped} "
        f"(see manifest.json); {per}"
    )
    return 0
