"""Held-out relative-position accuracy by step with and without train.grounding_weight (README, Tasks).

    python benchmarks/plot_relative_grounding.py                      # every relative_grounding_*.json, WIDE for reference
    python benchmarks/plot_relative_grounding.py --runs G1 G1CS3 --out docs/figures/relative_grounding.png
    python benchmarks/plot_relative_grounding.py --files relative_grounding_G1CS3.json relative_tower_PTALL.json \
        relative_base_FTALL.json relative_base_FTALL3K.json --out docs/figures/relative_pretrained_base.png

Reads the reports ``bench_relative_learns.py --out benchmarks/results/relative_grounding_<TAG>.json``
wrote (held-out accuracy on 300 scenes of relative_test.yaml every 250 steps) and, as the run without
the grounding loss, the held-out line of WIDE in ``relative_variants.jsonl`` (the config itself,
cosine over 3,000 steps). Draws accuracy against optimizer steps with the 32.3% target-cell
baseline, the 67.5% reference-cell baseline and chance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_relative_learns import save_accuracy_figure  # benchmarks/, the script's own folder
from plot_relative_pools import curves

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results"


def label(report: dict, tag: str) -> str:
    """A legend entry from the report's overrides: ``G1CS3: grounding 1, colour_split, norm 3``."""
    short = {"train.grounding_weight": "grounding", "model.checkpoint": "base", "model.tiny_vision_filters": "", "model.tiny_vision_position_norm": "norm"}
    parts = []
    for item in report["overrides"]:
        key, _, value = item.partition("=")
        if key == "data.colors":
            continue
        if key == "data.combos":
            parts.append("wider pool")
            continue
        name = short.get(key, key.split(".")[-1])
        parts.append(f"{name} {value}".strip() if name else value)
    if report.get("tower_pretrain"):
        parts.append(f"tower pre-trained {report['tower_pretrain']} steps")
    return f"{tag}: " + ", ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="*", help="tags of relative_grounding_<TAG>.json (default: all)")
    p.add_argument("--files", nargs="*", help="report files in benchmarks/results/ to draw instead (any bench_relative_learns.py --out)")
    p.add_argument("--title", default="relative position, held-out: the grounding loss")
    p.add_argument("--out", default=str(REPO / "docs/figures/relative_grounding.png"))
    a = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [RESULTS / f"relative_grounding_{t}.json" for t in a.runs] if a.runs else sorted(RESULTS.glob("relative_grounding_*.json"))
    if a.files:
        paths = [RESULTS / f for f in a.files]
    fig, ax = plt.subplots(figsize=(6.8, 4.0), dpi=120)
    wide = curves(RESULTS / "relative_variants.jsonl", ["WIDE"])["WIDE"]
    ax.plot([q["step"] for q in wide], [q["test_acc"] for q in wide], color="grey", marker=".", label="WIDE: the config, no grounding loss")
    for i, path in enumerate(paths):
        report = json.loads(path.read_text())
        tag = path.stem.removeprefix("relative_grounding_").removeprefix("relative_tower_").removeprefix("relative_base_")
        ax.plot([q["step"] for q in report["curve"]], [q["acc"] for q in report["curve"]], color=f"C{i}", marker="o", label=label(report, tag))
    ax.axhline(0.323, color="tab:red", linestyle=":", linewidth=1, label="target-cell baseline 32.3%")
    ax.axhline(0.675, color="tab:purple", linestyle=":", linewidth=1, label="reference-cell baseline 67.5%")
    ax.axhline(0.9, color="black", linestyle="-", linewidth=0.6, label="the issue's 90%")
    ax.set_xlim(0, 3050)
    save_accuracy_figure(fig, ax, a.title, Path(a.out), legend_size=6)
    print(a.out)


if __name__ == "__main__":
    main()
