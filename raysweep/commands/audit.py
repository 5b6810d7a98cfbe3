"""raysweep audit: balance of a dataset folder."""

HELP = "Print counts per area and per attribute value of a dataset, with chi-square p-values of uniformity."


def add_arguments(parser) -> None:
    parser.add_argument("dataset", metavar="DIR", help="dataset folder written by generate or coco")
    parser.add_argument("--json", dest="json_out", help="also write the report as JSON to this path")


def run(args) -> int:
    import json

    from raysweep.datasets.audit import audit, format_report

    from raysweep.preflight import check_writable_file

    if args.json_out:
        check_writable_file(args.json_out, f"--json {args.json_out}")
    report = audit(args.dataset)
    print(format_report(report))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0
