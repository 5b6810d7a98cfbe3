"""Replicates in a report: trials that differ only in ``train.seed``, as means with 95% t intervals."""

from __future__ import annotations

from raysweep.sweep.seeds import mean_interval

from analysis.runs import Trial
from analysis.tables import Acc, Table, metric_cell, metric_is_acc

SEED_KEY = "train.seed"


def seed_groups(trials: list[Trial], keys: list[str]) -> dict[tuple, list[Trial]]:
    """Trials by (family, swept values other than the seed); only groups run with two seeds or more."""
    groups: dict[tuple, list[Trial]] = {}
    for t in trials:
        point = tuple((k, t.params.get(k)) for k in keys if k != SEED_KEY)
        groups.setdefault((t.family, point), []).append(t)
    return {k: g for k, g in groups.items() if len({t.params.get(SEED_KEY) for t in g}) > 1}


def seed_table(trials: list[Trial], sets: list[str], keys: list[str], metric: str = "val/acc", mode: str = "max") -> Table | None:
    """Mean over seeds of each point: best ``metric`` and test accuracy per eval set (None: no replicates)."""
    groups = seed_groups(trials, keys)
    if not groups:
        return None
    headers = ["family", "point", "seeds", f"mean best {metric}"] + [f"{s} mean acc" for s in sets]
    rows = []
    for (family, point), group in groups.items():
        best = mean_interval([t.best(metric, mode) for t in group])
        best_cell = Acc(*best) if best[0] is not None and metric_is_acc(metric) else metric_cell(metric, best[0])
        accs = [mean_interval([t.metric(f"test/{s}/acc") for t in group]) for s in sets]
        rows.append([family, ", ".join(f"{k}={v}" for k, v in point) or "all", ", ".join(sorted(str(t.params.get(SEED_KEY)) for t in group)),
                     best_cell, *[Acc(*a) if a[0] is not None else None for a in accs]])  # fmt: skip
    note = "Trials that differ only in train.seed (sweep.seeds): the mean over seeds with its 95% Student-t interval."
    return Table("seeds", "Mean over seeds", headers, rows, note)
