"""The paper's tables and figures from the runs of an MLflow experiment (``raysweep report`` drives it).

Writes ``report.md``, one CSV per table, PNG figures and, through :mod:`analysis.html`, a
self-contained ``index.html`` into ``--out``::

    raysweep report --experiment raysweep-paper --sweep distractors --out reports/distractors
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from analysis import figures, tables
from analysis.experiments import experiment_tables
from analysis.runs import Trial, best_per_family, eval_sets, load_trials
from analysis.seeds import seed_table


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


@dataclass
class Report:
    """Everything one report shows: what the Markdown and the HTML page are rendered from."""

    experiment: str
    sweep: str | None
    metric: str
    mode: str
    trials: list[Trial]
    sets: list[str]
    swept: list[str]
    tables: dict[str, tables.Table]
    figures: list[Path]
    markdown: str = ""
    best: dict[str, Trial] = field(default_factory=dict)


def build_report(uri: str, experiment: str, out: Path, sweep: str | None = None, metric: str = "val/acc",
                 mode: str = "max", keys: list[str] | None = None) -> str:  # fmt: skip
    """Read the runs, write tables (Markdown + CSV) and figures into ``out``; return the Markdown."""
    return collect_report(uri, experiment, out, sweep, metric, mode, keys).markdown


def collect_report(uri: str, experiment: str, out: Path, sweep: str | None = None, metric: str = "val/acc",
                   mode: str = "max", keys: list[str] | None = None) -> Report:  # fmt: skip
    """:func:`build_report`, returning the :class:`Report` (tables, figures, trials) as well as writing it."""
    trials = load_trials(uri, experiment, sweep, curve_keys=tuple(dict.fromkeys([metric, "val/acc"])))
    sets = eval_sets(trials)
    swept = keys if keys is not None else tables.swept_keys(trials)
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"

    model = tables.model_table(trials, sets, metric, mode)
    ablation = tables.ablation_table(trials, sets, swept, metric, mode)
    per_area = tables.per_area_table(trials, sets, metric, mode)
    biases = tables.bias_tables(trials, sets, metric, mode)
    listing = tables.trials_table(trials, sets, swept, metric, mode)
    seeds = seed_table(trials, sets, [*swept, "train.seed"], metric, mode)  # None without replicates
    experiments = experiment_tables(trials, sets)  # the open questions' own tables (issue 16), when swept
    written = [t for t in (model, ablation, per_area, *biases, *experiments, listing, seeds) if t is not None]
    for table in written:
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
        model.markdown(), seeds.markdown() if seeds else "", ablation.markdown() if swept else "", tables.per_area_grids(per_area, trials, metric, mode),
        *[b.markdown() for b in biases], *[e.markdown() for e in experiments], listing.markdown(), "### Figures", "",
    ]  # fmt: skip
    for path in [*heatmaps, *lines, curves]:
        if path is not None:
            parts += [f"![{path.stem}]({path.relative_to(out).as_posix()})", ""]
    markdown = "\n".join(p for p in parts if p is not None) + "\n"
    (out / "report.md").write_text(markdown)
    named = {t.slug: t for t in written if t is not ablation or swept}
    return Report(experiment, sweep, metric, mode, trials, sets, swept, named, [p for p in [*heatmaps, *lines, curves] if p],
                  markdown, best_per_family(trials, metric, mode))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.report ...``: the same as ``raysweep report ...`` (the entry point now)."""
    from raysweep.cli import main as raysweep_main

    return raysweep_main(["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
