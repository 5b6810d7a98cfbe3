"""Held-out and training accuracy by step, one line pair per run, from relative_variants.jsonl (README, Tasks).

    python benchmarks/plot_relative_pools.py                  # WIDE (the wide pool) against R0 (the narrow pool)
    python benchmarks/plot_relative_pools.py --tags WIDE R0 R1 --out docs/figures/relative_pools.png

Reads the lines ``bench_relative_variants.py`` appended to ``benchmarks/results/relative_variants.jsonl``
(the last run of each tag wins where a tag was run twice) and draws held-out accuracy (solid) and
training-scene accuracy (dashed) against optimizer steps, with the 32.3% target-cell baseline and chance.
A large gap between a run's two lines is memorising; the two lines together is a run that generalises.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_relative_learns import save_accuracy_figure  # benchmarks/, the script's own folder

REPO = Path(__file__).resolve().parents[1]
LABELS = {"WIDE": "wide pool (25 combinations)", "R0": "narrow pool (10 combinations)",
          "R1": "narrow pool, batch order 1", "V4": "narrow pool, 4 references per target"}  # fmt: skip


def curves(path: Path, tags: list[str]) -> dict[str, list[dict]]:
    """tag -> its evaluation lines sorted by step (the last run of a tag only: steps restart at a new run)."""
    runs: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        point = json.loads(line)
        tag = point.get("tag")
        if tag in tags and point.get("train_acc") is not None and point.get("test_acc") is not None:
            if runs.get(tag) and point["step"] <= runs[tag][-1]["step"]:
                runs[tag] = []  # a later run of the same tag
            runs.setdefault(tag, []).append(point)
    missing = [t for t in tags if t not in runs]
    if missing:
        raise SystemExit(f"no evaluation lines for tag(s) {', '.join(missing)} in {path}; run bench_relative_variants.py --tag ... first")
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tags", nargs="+", default=["WIDE", "R0"])
    p.add_argument("--results", default=str(REPO / "benchmarks/results/relative_variants.jsonl"))
    p.add_argument("--out", default=str(REPO / "docs/figures/relative_pools.png"))
    p.add_argument("--baseline", type=float, default=0.323, help="the held-out split's target-cell baseline")
    a = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = curves(Path(a.results), a.tags)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for i, tag in enumerate(a.tags):
        steps = [q["step"] for q in runs[tag]]
        colour = f"C{i}"
        name = LABELS.get(tag, tag)
        ax.plot(steps, [q["test_acc"] for q in runs[tag]], color=colour, marker="o", label=f"{name}: held-out")
        ax.plot(steps, [q["train_acc"] for q in runs[tag]], color=colour, linestyle="--", marker=".", label=f"{name}: training scenes")
    ax.axhline(a.baseline, color="tab:red", linestyle=":", linewidth=1, label=f"target-cell baseline {a.baseline:.1%}")
    save_accuracy_figure(fig, ax, "relative position, tiny LLaVA-NeXT on CPU: held-out vs training scenes", Path(a.out))
    print(a.out)


if __name__ == "__main__":
    main()
