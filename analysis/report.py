"""``python -m analysis.report``: the paper's tables and figures from the runs of an MLflow experiment.

Writes ``report.md``, one CSV per table and PNG figures into ``--out``, and prints the Markdown::

    python -m analysis.report --experiment raysweep-paper --sweep distractors --out reports/distractors
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from raysweep.errors import UserError

from analysis import figures, tables
from analysis.runs import best_per_family, eval_sets, load_trials, resolve_tracking_uri


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def build_report(uri: str, experiment: str, out: Path, sweep: str | None = None, metric: str = "val/acc",
                 mode: str = "max", keys: list[str] | None = None) -> str:  # fmt: skip
    """Read the runs, write tables (Markdown + CSV) and figures into ``out``; return the Markdown."""
    trials = load_trials(uri, experiment, sweep, curve_keys=tuple(dict.fromkeys([metric, "val/acc"])))
    sets = eval_sets(trials)
    swept = keys if keys is not None else tables.swept_keys(trials)
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"

    model = tables.model_table(trials, sets, metric, mode)
    ablation = tables.ablation_table(trials, sets, swept, metric, mode)
    per_area = tables.per_area_table(trials, sets, metric, mode)
    bias = tables.center_bias_table(trials, sets, metric, mode)
    listing = tables.trials_table(trials, sets, swept, metric, mode)
    for table in (model, ablation, per_area, bias, listing):
        table.write_csv(out / f"{table.slug}.csv")

    heatmaps = [figures.area_pair(t, s, figs / f"area_acc_{_slug(fam)}_{_slug(s)}.png")
                for fam, t in best_per_family(trials, metric, mode).items() for s in sets]  # fmt: skip
    lines = [figures.ablation_lines(trials, k, sets, figs / f"acc_vs_{_slug(k)}.png") for k in swept]
    curves = figures.val_curves(trials, metric, figs / f"{_slug(metric)}_curves.png")

    statuses = {s: sum(t.status == s for t in trials) for s in dict.fromkeys(t.status for t in trials)}
    title = f"Sweep `{sweep}`" if sweep else f"Experiment `{experiment}`"
    parts = [
        f"# {title}", "",
        f"{len(trials)} trials ({', '.join(f'{n} {s}' for s, n in statuses.items())}); eval sets: "
        f"{', '.join(sets) or 'none'}; swept keys: {', '.join(swept) or 'none'}. Missing values (`-`): "
        "the run logged no such metric (a trial stopped early is never tested).", "",
        model.markdown(), ablation.markdown() if swept else "", tables.per_area_grids(per_area),
        bias.markdown(), listing.markdown(), "### Figures", "",
    ]  # fmt: skip
    for path in [*heatmaps, *lines, curves]:
        if path is not None:
            parts += [f"![{path.stem}]({path.relative_to(out).as_posix()})", ""]
    markdown = "\n".join(p for p in parts if p is not None) + "\n"
    (out / "report.md").write_text(markdown)
    return markdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, help="MLflow experiment name (mlflow.experiment of the runs)")
    parser.add_argument("--sweep", help="only the trials of this sweep (the parent run's raysweep.sweep tag)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")
    parser.add_argument("--out", required=True, type=Path, help="folder for report.md, the CSV tables and figures/")
    parser.add_argument("--metric", default="val/acc", help="per-epoch metric that picks each family's best run (default val/acc)")
    parser.add_argument("--mode", choices=["max", "min"], default="max", help="whether --metric is better high or low")
    parser.add_argument("--keys", help="comma-separated config keys to group ablations by (default: every swept one of "
                        f"{', '.join(tables.ABLATION_KEYS)})")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        uri = resolve_tracking_uri(args.tracking_uri)
        keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
        markdown = build_report(uri, args.experiment, args.out, args.sweep, args.metric, args.mode, keys)
    except UserError as err:
        print(f"analysis.report: error: {err}", file=sys.stderr)
        return 2
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
