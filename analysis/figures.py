"""The report's figures (matplotlib, Agg back-end): area heatmaps, ablation lines, validation curves."""

from __future__ import annotations

import tempfile
from pathlib import Path

from raysweep.plots import area_heatmap, class_bars

from analysis.runs import Trial
from analysis.tables import sort_values

LOG_X_KEYS = ("data.fraction", "train.lr")
STATUS_COLOURS = {"completed": "tab:green", "stopped_early": "tab:orange", "errored": "tab:red"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def area_pair(trial: Trial, eval_set: str, path: Path) -> Path | None:
    """Base and fine-tuned per-class accuracy of ``trial`` on ``eval_set``, side by side (None if neither
    logged): heatmaps when the classes of the run's task form a grid, else bars."""
    task = trial.task
    panels = []
    for kind, label in (("base", "base"), ("test", "fine-tuned")):
        values = [trial.metric(f"{kind}/{eval_set}/acc/{slug}") for slug in task.slugs]
        if any(v is not None for v in values):
            panels.append((label, [float("nan") if v is None else v for v in values]))
    if not panels:
        return None
    plt = _pyplot()
    from matplotlib.image import imread

    with tempfile.TemporaryDirectory() as tmp:
        def panel(i, label, values):
            title, png = f"{trial.family} {label}: {eval_set}", Path(tmp) / f"{i}.png"
            if task.grid_side():
                return area_heatmap(values, title, png, fmt="{:.0%}", cbar_label="accuracy", vmin=0.0, vmax=1.0,
                                    area_names=list(task.answer_names))  # fmt: skip
            return class_bars(values, list(task.answer_names), title, png, vmax=1.0)

        images = [imread(panel(i, label, values)) for i, (label, values) in enumerate(panels)]
    fig, axes = plt.subplots(1, len(images), figsize=(4.8 * len(images), 4.2), dpi=120)
    for ax, image in zip([axes] if len(images) == 1 else axes, images):
        ax.imshow(image)
        ax.axis("off")
    fig.suptitle(f"accuracy by target class, run {trial.name}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def is_numeric_key(trials: list[Trial], key: str) -> bool:
    try:
        [float(t.params[key]) for t in trials if key in t.params]
    except ValueError:
        return False
    return True


def ablation_lines(trials: list[Trial], key: str, sets: list[str], path: Path) -> Path | None:
    """Test accuracy (best and mean over trials) against the value of a numeric swept key, per eval set and family."""
    if not is_numeric_key(trials, key):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    drawn = False
    for family in sorted({t.family for t in trials}):
        for s in sets:
            xs, best, mean = [], [], []
            for value in sort_values({t.params[key] for t in trials if key in t.params and t.family == family}):
                accs = [a for t in trials if t.params.get(key) == value and t.family == family
                        for a in [t.metric(f"test/{s}/acc")] if a is not None]  # fmt: skip
                if accs:
                    xs.append(float(value))
                    best.append(max(accs))
                    mean.append(sum(accs) / len(accs))
            if xs:
                (line,) = ax.plot(xs, best, marker="o", label=f"{family} {s} (best)")
                ax.plot(xs, mean, marker=".", linestyle="--", color=line.get_color(), alpha=0.6, label=f"{family} {s} (mean)")
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    if key in LOG_X_KEYS:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"test accuracy vs {key}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def val_curves(trials: list[Trial], metric: str, path: Path) -> Path | None:
    """``metric`` per epoch for every trial, coloured by status: ASHA's early stops show as short lines.

    A sweep over several model families is coloured by family instead (status stays in the line
    style: dashed = stopped early or errored).
    """
    curves = [(t, t.curves.get(metric, [])) for t in trials]
    curves = [(t, c) for t, c in curves if c]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    families = sorted({t.family for t, _ in curves})
    by_family = len(families) > 1
    palette = dict(zip(families, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    seen = set()
    for trial, points in curves:
        key = trial.family if by_family else trial.status
        colour = palette[key] if by_family else STATUS_COLOURS.get(trial.status, "tab:gray")
        label = key if key not in seen else None
        seen.add(key)
        style = "-" if not by_family or trial.status == "completed" else "--"
        steps, values = zip(*points)
        ax.plot(steps, values, marker=".", color=colour, alpha=0.8, label=label, linestyle=style)
        ax.annotate(trial.name, (steps[-1], values[-1]), fontsize=6, alpha=0.7, xytext=(3, 0), textcoords="offset points")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(title="model family" if by_family else "trial status", fontsize=7)
    ax.set_title(f"{metric} per epoch, {len(curves)} trials", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
