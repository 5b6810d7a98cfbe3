"""Metrics of the absolute-position task, as plain functions of (targets, predictions).

Areas are indices 0..8 (row-major from top left); a prediction of -1 means "unparsed" (a generate
answer the parser could not map) and counts as wrong everywhere.
"""

from __future__ import annotations

import math

N_AREAS = 9
CENTER = 4
AREA_SLUGS = [
    "top_left", "top_center", "top_right",
    "center_left", "center", "center_right",
    "bottom_left", "bottom_center", "bottom_right",
]  # fmt: skip


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


def per_area_accuracy(targets: list[int], preds: list[int], n_areas: int = N_AREAS) -> list[float | None]:
    """Accuracy per target area, row-major (None for an area without rows); reshape to 3x3 to plot."""
    out = []
    for area in range(n_areas):
        pairs = [(t, p) for t, p in zip(targets, preds) if t == area]
        out.append(sum(t == p for t, p in pairs) / len(pairs) if pairs else None)
    return out


def macro_accuracy(targets: list[int], preds: list[int], n_areas: int = N_AREAS) -> float:
    """Mean of the per-area accuracies over the areas that have rows."""
    values = [a for a in per_area_accuracy(targets, preds, n_areas) if a is not None]
    return sum(values) / len(values) if values else 0.0


def confusion_matrix(targets: list[int], preds: list[int], n_areas: int = N_AREAS) -> list[list[int]]:
    """``m[target][prediction]`` counts, n_areas x n_areas; unparsed predictions are left out."""
    m = [[0] * n_areas for _ in range(n_areas)]
    for t, p in zip(targets, preds):
        if 0 <= p < n_areas:
            m[t][p] += 1
    return m


def prediction_distribution(preds: list[int], n_areas: int = N_AREAS) -> list[float]:
    """Share of all predictions that name each area (the centre-bias map; unparsed not counted)."""
    n = len(preds)
    return [sum(p == a for p in preds) / n if n else 0.0 for a in range(n_areas)]


def center_bias(targets: list[int], preds: list[int], center: int = CENTER) -> float:
    """Share of ``center`` predictions among rows whose target is elsewhere (1/9 ~ unbiased chance)."""
    off = [p for t, p in zip(targets, preds) if t != center]
    return sum(p == center for p in off) / len(off) if off else 0.0


def parse_failure_rate(preds: list[int]) -> float:
    """Share of unparsed (-1) predictions."""
    return sum(p < 0 for p in preds) / len(preds) if preds else 0.0


def agreement(a: list[int], b: list[int]) -> float:
    """Share of rows where two prediction lists agree (e.g. choice vs generate)."""
    return sum(x == y for x, y in zip(a, b)) / len(a) if a else 0.0


def summary(targets: list[int], preds: list[int], n_areas: int = N_AREAS) -> dict:
    """All metrics with flat keys (MLflow-ready) plus ``confusion`` (9x9) and ``per_area`` lists."""
    n = len(targets)
    correct = sum(t == p for t, p in zip(targets, preds))
    low, high = wilson_interval(correct, n)
    per_area = per_area_accuracy(targets, preds, n_areas)
    dist = prediction_distribution(preds, n_areas)
    out = {
        "n": n,
        "acc": correct / n if n else 0.0,
        "acc_ci_low": low,
        "acc_ci_high": high,
        "macro_acc": macro_accuracy(targets, preds, n_areas),
        "parse_fail_rate": parse_failure_rate(preds),
        "center_bias": center_bias(targets, preds),
    }
    slugs = AREA_SLUGS if n_areas == N_AREAS else [f"area{i}" for i in range(n_areas)]
    for i, slug in enumerate(slugs):
        rows = sum(t == i for t in targets)
        ok = sum(t == i and p == i for t, p in zip(targets, preds))
        lo, hi = wilson_interval(ok, rows)
        out[f"acc/{slug}"] = per_area[i] if per_area[i] is not None else float("nan")
        out[f"acc_ci_low/{slug}"] = lo
        out[f"acc_ci_high/{slug}"] = hi
        out[f"pred_frac/{slug}"] = dist[i]
    out["confusion"] = confusion_matrix(targets, preds, n_areas)
    out["per_area"] = per_area
    out["pred_dist"] = dist
    return out
