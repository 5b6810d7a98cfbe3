"""Balance audit of a dataset: counts per area and per attribute value, with chi-square p-values."""

from __future__ import annotations

from collections import Counter

from scipy.stats import chisquare

from raysweep.datasets.store import read_dataset, read_manifest

ATTRIBUTES = ("shape", "color", "size", "n_distractors", "category")


def uniformity_p(counts: list[int]) -> float:
    """Chi-square p-value that the counts come from a uniform distribution (1.0 when exactly equal)."""
    if len(counts) < 2 or sum(counts) == 0:
        return 1.0
    if len(set(counts)) == 1:
        return 1.0
    return float(chisquare(counts).pvalue)


def audit(path) -> dict:
    """Counts per answer class of the set's task (every class, including empty ones; ``area``
    holds them, the absolute task's classes being the areas) and per value of each present attribute."""
    from raysweep.tasks import task_of_manifest

    task = task_of_manifest(read_manifest(path))
    table = read_dataset(path, columns=["label", *ATTRIBUTES])
    labels = Counter(table.column("label").to_pylist())
    counts = [labels.get(a, 0) for a in range(task.n_classes)]
    report = {
        "rows": table.num_rows,
        "task": task.name,
        "answer_names": list(task.answer_names),
        "grid_side": task.grid_side(),
        "area": {"counts": counts, "p_uniform": uniformity_p(counts)},
        "attributes": {},
    }
    for name in ATTRIBUTES:
        values = [v for v in table.column(name).to_pylist() if v not in (None, "")]
        if not values:
            continue
        counts = Counter(values)
        ordered = dict(sorted(counts.items(), key=lambda kv: str(kv[0])))
        report["attributes"][name] = {"counts": ordered, "p_uniform": uniformity_p(list(ordered.values()))}
    return report


def format_report(report: dict) -> str:
    side = report.get("grid_side")
    counts = report["area"]["counts"]
    if side:
        lines = [f"rows: {report['rows']}", "", f"per area ({side}x{side}, row-major from top left):"]
        for r in range(side):
            lines.append("  " + " ".join(f"{c:8d}" for c in counts[r * side : (r + 1) * side]))
    else:
        lines = [f"rows: {report['rows']}", "", f"per answer ({report['task']}):"]
        lines += [f"  {name:16s} {c:8d}" for name, c in zip(report["answer_names"], counts)]
    lines.append(f"  chi-square p (uniform): {report['area']['p_uniform']:.4g}")
    for name, info in report["attributes"].items():
        lines.append("")
        lines.append(f"per {name}:  (chi-square p uniform: {info['p_uniform']:.4g})")
        for value, count in info["counts"].items():
            lines.append(f"  {str(value):16s} {count:8d}")
    return "\n".join(lines)
