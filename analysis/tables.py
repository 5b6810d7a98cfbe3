"""The report's tables as plain data, rendered to Markdown (formatted) and CSV (raw numbers).

A cell is a ``str``, an ``int``, a ``float`` (an accuracy, shown as a percentage), :class:`Acc`
(an accuracy with its 95% Wilson interval; three CSV columns), :class:`Gain` (a difference of
accuracies, shown in percentage points) or ``None`` (missing, shown as ``-``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from raysweep.metrics import AREA_SLUGS

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
                    accs = [a for a in (t.metric(f"test/{s}/acc") for t in group) if a is not None]
                    row += [max(accs) if accs else None, sum(accs) / len(accs) if accs else None]
                rows.append(row)
    note = "Trials grouped by each swept key; a trial stopped early has no test metrics and counts in `trials` only."
    return Table("ablations", "Ablations: test accuracy per swept value", headers, rows, note)


def per_area_table(trials: list[Trial], sets: list[str], metric: str = "val/acc", mode: str = "max") -> Table:
    """(c) Long form of the 3x3 per-area accuracy, base and fine-tuned, of each family's best run."""
    rows = []
    for family, t in best_per_family(trials, metric, mode).items():
        for s in sets:
            for slug in AREA_SLUGS:
                base, tuned = t.metric(f"base/{s}/acc/{slug}"), t.metric(f"test/{s}/acc/{slug}")
                gain = Gain(tuned - base) if base is not None and tuned is not None else None
                rows.append([family, s, slug, base, tuned, gain])
    return Table("per_area", "Per-area accuracy (best run per family)", ["family", "eval set", "area", "base", "fine-tuned", "gain"], rows)


def per_area_grids(table: Table) -> str:
    """(c) as Markdown: one 3x3 grid per (family, eval set), each cell ``base -> fine-tuned``."""
    out = [f"### {table.title}", "", "Each cell: base → fine-tuned accuracy on the targets in that area.", ""]
    groups: dict[tuple[str, str], dict[str, tuple]] = {}
    for family, s, slug, base, tuned, _ in table.rows:
        groups.setdefault((family, s), {})[slug] = (base, tuned)
    for (family, s), cells in groups.items():
        out += [f"**{family}, {s}**", "", "| | left | center | right |", "|---|---:|---:|---:|"]
        for row_name in ("top", "center", "bottom"):
            line = [row_name]
            for col in ("left", "center", "right"):
                slug = "center" if row_name == col == "center" else f"{row_name}_{col}"
                base, tuned = cells.get(slug, (None, None))
                line.append(f"{format_cell(base)} → {format_cell(tuned)}")
            out.append("| " + " | ".join(line) + " |")
        out.append("")
    return "\n".join(out)


def center_bias_table(trials: list[Trial], sets: list[str], metric: str = "val/acc", mode: str = "max") -> Table:
    """(d) Centre-bias index and the share of 'center' answers, base against fine-tuned."""
    headers = ["family", "eval set", "run", "base center_bias", "fine-tuned center_bias", "base center share", "fine-tuned center share"]
    rows = []
    for family, t in best_per_family(trials, metric, mode).items():
        for s in sets:
            rows.append([family, s, t.name, t.metric(f"base/{s}/center_bias"), t.metric(f"test/{s}/center_bias"),
                         t.metric(f"base/{s}/pred_frac/center"), t.metric(f"test/{s}/pred_frac/center")])  # fmt: skip
    note = ("center_bias: share of `center` answers among questions whose target lies elsewhere "
            "(0 for a perfect model, 1/9 = 11.1% for uniform guessing); center share: share of all answers that say `center`.")  # fmt: skip
    return Table("center_bias", "Centre bias: base vs fine-tuned", headers, rows, note)


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
