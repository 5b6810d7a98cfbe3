"""Metrics of a task, as plain functions of (targets, predictions).

Targets and predictions are labels: indices into the task's answer vocabulary
(:attr:`raysweep.tasks.base.Task.answer_names`); a prediction of -1 means "unparsed" (a generate
answer the parser could not map) and counts as wrong everywhere. :func:`summary` names every
per-class metric by the task's class slugs (``acc/top_left``, ``acc/left``) and adds the task's own
bias index (the centre bias of ``absolute_position``).
"""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% for z=1.96); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(targets: list[int], preds: list[int]) -> float:
    """Share of predictions equal to their target (0 for no rows)."""
    return sum(t == p for t, p in zip(targets, preds)) / len(targets) if targets else 0.0


def per_class_accuracy(targets: list[int], preds: list[int], n_classes: int) -> list[float | None]:
    """Accuracy per target class, in label order (None for a class without rows)."""
    out = []
    for label in range(n_classes):
        pairs = [(t, p) for t, p in zip(targets, preds) if t == label]
        out.append(sum(t == p for t, p in pairs) / len(pairs) if pairs else None)
    return out


def macro_accuracy(targets: list[int], preds: list[int], n_classes: int) -> float:
    """Mean of the per-class accuracies over the classes that have rows."""
    values = [a for a in per_class_accuracy(targets, preds, n_classes) if a is not None]
    return sum(values) / len(values) if values else 0.0


def confusion_matrix(targets: list[int], preds: list[int], n_classes: int) -> list[list[int]]:
    """``m[target][prediction]`` counts, n_classes x n_classes; unparsed predictions are left out."""
    m = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(targets, preds):
        if 0 <= p < n_classes:
            m[t][p] += 1
    return m


def prediction_distribution(preds: list[int], n_classes: int) -> list[float]:
    """Share of all predictions that name each class (the bias map; unparsed not counted)."""
    n = len(preds)
    return [sum(p == a for p in preds) / n if n else 0.0 for a in range(n_classes)]


def parse_failure_rate(preds: list[int]) -> float:
    """Share of unparsed (-1) predictions."""
    return sum(p < 0 for p in preds) / len(preds) if preds else 0.0


def agreement(a: list[int], b: list[int]) -> float:
    """Share of rows where two prediction lists agree (e.g. choice vs generate)."""
    return sum(x == y for x, y in zip(a, b)) / len(a) if a else 0.0


def summary(targets: list[int], preds: list[int], task) -> dict:
    """All metrics of ``task`` with flat keys (MLflow-ready) plus ``confusion``, ``per_class`` and
    ``pred_dist`` lists (label order)."""
    n_classes = task.n_classes
    n = len(targets)
    correct = sum(t == p for t, p in zip(targets, preds))
    low, high = wilson_interval(correct, n)
    per_class = per_class_accuracy(targets, preds, n_classes)
    dist = prediction_distribution(preds, n_classes)
    out = {
        "n": n,
        "acc": correct / n if n else 0.0,
        "acc_ci_low": low,
        "acc_ci_high": high,
        "macro_acc": macro_accuracy(targets, preds, n_classes),
        "parse_fail_rate": parse_failure_rate(preds),
        **task.bias(targets, preds),
    }
    for i, slug in enumerate(task.slugs):
        rows = sum(t == i for t in targets)
        ok = sum(t == i and p == i for t, p in zip(targets, preds))
        lo, hi = wilson_interval(ok, rows)
        out[f"acc/{slug}"] = per_class[i] if per_class[i] is not None else float("nan")
        out[f"acc_ci_low/{slug}"] = lo
        out[f"acc_ci_high/{slug}"] = hi
        out[f"pred_frac/{slug}"] = dist[i]
    out["confusion"] = confusion_matrix(targets, preds, n_classes)
    out["per_class"] = per_class
    out["pred_dist"] = dist
    return out
