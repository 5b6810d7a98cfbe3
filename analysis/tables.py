"""The report's tables as plain data, rendered to Markdown (formatted) and CSV (raw numbers).

A cell is a ``str``, an ``int``, a ``float`` (an accuracy, shown as a percentage), :class:`Acc`
(an accuracy with its 95% Wilson interval; three CSV columns), :class:`Gain` (a difference of
accuracies, shown in percentage points) or ``None`` (missing, shown as ``-``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from raysweep.sweep.seeds import mean_interval
from raysweep.tasks import slug as slug_of

from analysis.runs import Trial, best_per_family

ABLATION_KEYS = ("data.distractors", "data.fraction", "lora.rank", "lora.alpha", "train.lr", "data.source", "data.variants")


@dataclass(frozen=True)
class Acc:
    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Gain:
    value: float


@dataclass
class Table:
    """A titled table; ``slug`` names its CSV file."""

    slug: str
    title: str
    headers: list[str]
    rows: list[list]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---:" if self._numeric(i) else "---" for i in range(len(self.headers))) + "|")
        lines += ["| " + " | ".join(format_cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def write_csv(self, path: Path) -> Path:
        wide = [any(isinstance(r[i], Acc) for r in self.rows) for i in range(len(self.headers))]
        header = []
        for h, w in zip(self.headers, wide):
            header += [h, f"{h} ci_low", f"{h} ci_high"] if w else [h]
        with Path(path).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in self.rows:
                out = []
                for cell, w in zip(row, wide):
                    if w:
                        out += [cell.value, cell.low, cell.high] if isinstance(cell, Acc) else [_raw(cell), "", ""]
                    else:
                        out.append(_raw(cell))
                writer.writerow(out)
        return Path(path)

    def _numeric(self, i: int) -> bool:
        return any(isinstance(r[i], (int, float, Acc, Gain)) for r in self.rows)


def format_cell(cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, Acc):
        if cell.low is None or cell.high is None:
            return f"{cell.value:.1%}"
        return f"{cell.value:.1%} [{cell.low:.1%}, {cell.high:.1%}]"
    if isinstance(cell, Gain):
        return f"{cell.value * 100:+.1f} pp"
    if isinstance(cell, float):
        return f"{cell:.1%}"
    return str(cell)


def metric_is_acc(metric: str) -> bool:
    return "acc" in metric


def metric_cell(metric: str, value: float | None):
    """Accuracies stay floats (shown as %); other metrics (a loss) are shown with 4 decimals."""
    if value is None or metric_is_acc(metric):
        return value
    return f"{value:.4f}"


def _raw(cell):
    if cell is None:
        return ""
    if isinstance(cell, Gain):
        return cell.value
    return cell


def acc_cell(trial: Trial, prefix: str) -> Acc | None:
    """``<prefix>acc`` with its CI (e.g. prefix ``test/coco_val/``), or None when not logged."""
    value = trial.metric(prefix + "acc")
    if value is None:
        return None
    return Acc(value, trial.metric(prefix + "acc_ci_low"), trial.metric(prefix + "acc_ci_high"))


def _gain(a, b) -> Gain | None:
    return Gain(b.value - a.value) if isinstance(a, Acc) and isinstance(b, Acc) else None


def prediction_modes(trials: list[Trial], sets: list[str]) -> list[tuple[str, str]]:
    """(metric infix, label) of the prediction modes logged: the primary one, plus ``generate/`` under eval.mode=both."""
    primary = next((t.params["eval.mode"] for t in trials if t.params.get("eval.mode") in ("choice", "generate")), "choice")
    modes = [("", primary)]
    if any(f"{kind}/{s}/generate/acc" in t.metrics for t in trials for s in sets for kind in ("base", "test")):
        modes.append(("generate/", "generate"))
    return modes


def model_table(trials: list[Trial], sets: list[str], metric: str = "val/acc", mode: str = "max") -> Table:
    """(a) Base against fine-tuned accuracy of each family's best run, per eval set and prediction mode."""
    headers = ["family", "model", "prediction", "run"] + [h for s in sets for h in (s, f"{s} gain")]
    rows = []
    for family, t in best_per_family(trials, metric, mode).items():
        checkpoint = t.params.get("base_checkpoint", t.params.get("model.checkpoint", "?"))
        for infix, label in prediction_modes(trials, sets):
            base = [acc_cell(t, f"base/{s}/{infix}") for s in sets]
            tuned = [acc_cell(t, f"test/{s}/{infix}") for s in sets]
            rows.append([family, f"base ({checkpoint})", label, t.name] + [c for b in base for c in (b, "")])
            rows.append([family, "fine-tuned", label, t.name] + [c for b, f in zip(base, tuned) for c in (f, _gain(b, f))])
    note = (f"Best run per family by its best epoch of `{metric}` ({mode}); accuracy with its 95% Wilson interval; "
            "prediction: choice = likelihood of the 9 answers, generate = greedy text parsed to an area.")  # fmt: skip
    return Table("models", "Models: base vs fine-tuned", headers, rows, note)


def swept_keys(trials: list[Trial], candidates=ABLATION_KEYS) -> list[str]:
    """Candidate keys that take at least two values among the trials."""
    return [k for k in candidates if len({t.params.get(k) for t in trials if k in t.params}) > 1]


def sort_values(values) -> list[str]:
    def key(v):
        try:
            return (0, float(v), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(v))

    return sorted(values, key=key)


def ablation_table(trials: list[Trial], sets: list[str], keys: list[str], metric: str = "val/acc", mode: str = "max") -> Table:
    """(b) Best and mean test accuracy per value of every swept key (and family)."""
    headers = ["key", "value", "family", "trials", "completed", f"best {metric}"]
    headers += [h for s in sets for h in (f"{s} best", f"{s} mean")]
    rows = []
    for key in keys:
        families = sorted({t.family for t in trials})
        for value in sort_values({t.params[key] for t in trials if key in t.params}):
            for family in families:
                group = [t for t in trials if t.params.get(key) == value and t.family == family]
                if not group:
                    continue
                vals = [v for v in (t.best(metric, mode) for t in group) if v is not None]
                best = (max(vals) if mode == "max" else min(vals)) if vals else None
                row = [key, value, family, len(group), sum(t.status == "completed" for t in group), metric_cell(metric, best)]
                for s in sets:
                    tested = [t for t in group if t.metric(f"test/{s}/acc") is not None]
                    top = max(tested, key=lambda t: t.metric(f"test/{s}/acc"), default=None)
                    mean, low, high = mean_interval([t.metric(f"test/{s}/acc") for t in tested])
                    row += [acc_cell(top, f"test/{s}/") if top else None, Acc(mean, low, high) if mean is not None else None]
                rows.append(row)
    note = ("Trials grouped by each swept key; a trial stopped early has no test metrics and counts in `trials` only. "
            "best: the best trial's accuracy with its 95% Wilson interval; mean: over the group's tested trials, with a "
            "95% Student-t interval when there are two or more.")  # fmt: skip
    return Table("ablations", "Ablations: test accuracy per swept value", headers, rows, note)


def per_area_table(trials: list[Trial], sets: list[str], metric: str = "val/acc", mode: str = "max") -> Table:
    """(c) Long form of the per-class accuracy (the areas of the answer grid, or the relations),
    base and fine-tuned, of each family's best run; the classes are those of the run's task."""
    rows = []
    for family, t in best_per_family(trials, metric, mode).items():
        for s in sets:
            for slug in t.task.slugs:
                base, tuned = t.metric(f"base/{s}/acc/{slug}"), t.metric(f"test/{s}/acc/{slug}")
                gain = Gain(tuned - base) if base is not None and tuned is not None else None
                rows.append([family, s, slug, base, tuned, gain])
    return Table("per_area", "Per-area accuracy (best run per family)", ["family", "eval set", "area", "base", "fine-tuned", "gain"], rows)


def per_area_grids(table: Table, trials: list[Trial], metric: str = "val/acc", mode: str = "max") -> str:
    """(c) as Markdown: per (family, eval set) the answer grid of the run's task (rows x columns of
    areas; one row of classes for a task without a grid), each cell ``base -> fine-tuned``."""
    out = [f"### {table.title}", "", "Each cell: base → fine-tuned accuracy on the targets of that class.", ""]
    tasks = {family: t.task for family, t in best_per_family(trials, metric, mode).items()}
    groups: dict[tuple[str, str], dict[str, tuple]] = {}
    for family, s, slug, base, tuned, _ in table.rows:
        groups.setdefault((family, s), {})[slug] = (base, tuned)
    for (family, s), cells in groups.items():
        task = tasks[family]
        side = task.grid_side() or task.n_classes
        rows = [task.answer_names[r * side : (r + 1) * side] for r in range(task.n_classes // side)]
        cols, labels = _grid_labels(task, side)
        out += [f"**{family}, {s}**", "", "| | " + " | ".join(cols) + " |", "|---|" + "---:|" * side]
        for label, names in zip(labels, rows):
            line = [label] + [" → ".join(format_cell(v) for v in cells.get(slug_of(n), (None, None))) for n in names]
            out.append("| " + " | ".join(line) + " |")
        out.append("")
    return "\n".join(out)


def _grid_labels(task, side: int) -> tuple[list[str], list[str]]:
    """Column and row labels of a task's answer grid: the names' last and first words when they
    split that way (``left center right``, ``top center bottom``), else the names / numbers."""
    names = task.answer_names
    if not task.grid_side():
        return list(names), [""]
    rows = [names[r * side].split(" ")[0] for r in range(side)]
    cols = [names[c].split(" ")[-1] for c in range(side)]
    if len(set(rows)) == side and len(set(cols)) == side:
        return cols, rows
    return [str(c + 1) for c in range(side)], [str(r + 1) for r in range(side)]


def bias_tables(trials: list[Trial], sets: list[str], metric: str = "val/acc", mode: str = "max") -> list[Table]:
    """(d) Each task's own bias index, base against fine-tuned, one table per index (the centre
    bias of absolute_position, slug ``center_bias``), with the share of answers naming the classes
    the index is about."""
    best = best_per_family(trials, metric, mode)
    keys: dict[str, object] = {}
    for t in best.values():
        for key in t.task.bias([], []):
            keys.setdefault(key, t.task)
    tables = []
    for key, task in keys.items():
        shares = task.bias_classes()
        headers = ["family", "eval set", "run", f"base {key}", f"fine-tuned {key}"]
        headers += [h for c in shares for h in (f"base {c} share", f"fine-tuned {c} share")]
        rows = []
        for family, t in best.items():
            if key not in t.task.bias([], []):
                continue
            for s in sets:
                row = [family, s, t.name, t.metric(f"base/{s}/{key}"), t.metric(f"test/{s}/{key}")]
                rows += [row + [t.metric(f"{k}/{s}/pred_frac/{c}") for c in shares for k in ("base", "test")]]
        note = task.bias_note() + "".join(f"; {c} share: share of all answers that say `{c}`" for c in shares) + "."
        tables.append(Table(key, f"{key.replace('_', ' ').capitalize()}: base vs fine-tuned", headers, rows, note))
    return tables


def trials_table(trials: list[Trial], sets: list[str], keys: list[str], metric: str = "val/acc", mode: str = "max") -> Table:
    """Every trial: status, swept values, epochs run, best validation metric, test accuracy per set."""
    headers = ["run", "family", "status", *keys, "epochs", f"best {metric}"] + [f"{s} acc" for s in sets]
    rows = []
    for t in trials:
        epochs = max((step for step, _ in t.curves.get(metric, [])), default=None)
        best = t.best(metric, mode)
        rows.append([t.name, t.family, t.status, *[t.params.get(k) for k in keys], epochs, metric_cell(metric, best)]
                    + [t.metric(f"test/{s}/acc") for s in sets])  # fmt: skip
    return Table("trials", "Trials", headers, rows)
