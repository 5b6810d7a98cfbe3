"""Replicates over ``sweep.seeds`` (no Ray): a point of the space is its values without the seed.

The best point of a group is chosen by the mean over its seeds of each trial's best validation
metric, not by its luckiest seed; :func:`mean_interval` gives that mean a 95% t interval.
"""

from __future__ import annotations

import math

from raysweep.sweep.config import SEED_KEY


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """Mean and two-sided Student-t interval of ``values`` (no interval for fewer than two)."""
    values = [float(v) for v in values if v is not None and v == v]
    if not values:
        return None, None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None, None
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = t.ppf(0.5 + level / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def point_key(values: dict) -> str:
    """A trial's point of the space: its swept values without ``train.seed`` (``all`` when nothing else is swept)."""
    kept = sorted((k, str(v)) for k, v in values.items() if k != SEED_KEY)
    return ",".join(f"{k}={v}" for k, v in kept) or "all"


def seed_points(trials: list[dict], mode: str) -> dict[str, dict]:
    """Trials of the summary (``values``, ``best``, ``test``, ``status``) grouped by point, with means over seeds.

    Returns:
        point key -> ``{"trials", "seeds", "best": (mean, low, high), "test": {key: (mean, low, high)}, "completed"}``
    """
    points: dict[str, dict] = {}
    for t in trials:
        p = points.setdefault(point_key(t["values"]), {"trials": [], "seeds": []})
        p["trials"].append(t)
        p["seeds"].append(t["values"].get(SEED_KEY))
    for p in points.values():
        p["best"] = mean_interval([t["best"] for t in p["trials"]])
        keys = sorted({k for t in p["trials"] for k in t["test"]})
        p["test"] = {k: mean_interval([t["test"].get(k) for t in p["trials"]]) for k in keys}
        p["completed"] = sum(t["status"] == "completed" for t in p["trials"])
    return points


def best_seeded_groups(trials: list[dict], mode: str) -> dict[str, dict]:
    """For each group, its best point by the mean over seeds; the trial returned is that point's best seed.

    The returned trial carries ``seed_mean``: the point's key, its seeds and its means with intervals,
    which the summary prints and the parent run logs.
    """
    sign = 1 if mode == "max" else -1
    best: dict[str, tuple] = {}
    for key, p in seed_points(trials, mode).items():
        mean = p["best"][0]
        if mean is None:
            continue
        group = p["trials"][0]["group"]
        merit = (p["completed"] > 0, sign * mean)
        if group not in best or merit > best[group][0]:
            best[group] = (merit, key, p)
    groups = {}
    for group, (_, key, p) in best.items():
        candidates = [t for t in p["trials"] if t["best"] is not None]
        pick = max(candidates, key=lambda t: (t["status"] == "completed", sign * t["best"]))
        groups[group] = {**pick, "seed_mean": {"point": key, "seeds": p["seeds"], "best": p["best"], "test": p["test"]}}
    return groups
