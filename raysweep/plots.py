"""Small figures shared by the data and evaluation commands (matplotlib, Agg back-end, no display)."""

from __future__ import annotations

from pathlib import Path



def area_heatmap(
    values,
    title: str,
    path: str | Path,
    fmt: str = "{:d}",
    cbar_label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    area_names: list[str] | None = None,
) -> Path:
    """Write a heatmap PNG of one value per answer area, each value printed in its cell.

    Args:
        values: ``side * side`` numbers in row-major order from top left, or a ``side x side`` nested list.
        title: figure title.
        path: PNG path to write (parent folders are created).
        fmt: ``str.format`` pattern of the cell text, e.g. ``"{:d}"`` for counts, ``"{:.1%}"`` for accuracies.
        cbar_label: label of the colour bar.
        cmap: matplotlib colour map name.
        vmin: lower end of the colour scale (default: the smallest value); pass 0 and 1 for accuracies
            so that figures of different models compare.
        vmax: upper end of the colour scale (default: the largest value).
        area_names: names of the areas, row-major (the task's answer names; default: row and column
            numbers). Rows and columns are labelled with the first and second word of the names when
            they split that way.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.asarray(values, dtype=float)
    side = int(round(grid.size**0.5))
    if side * side != grid.size:
        raise ValueError(f"area_heatmap needs a square number of values, got {grid.size}")
    grid = grid.reshape(side, side)
    names = list(area_names or [])
    row_labels, col_labels = _axis_labels(names, side)

    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(side), col_labels)
    ax.set_yticks(range(side), row_labels)
    ax.set_title(title, fontsize=10)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if cbar_label:
        colorbar.set_label(cbar_label)
    low, high = image.norm.vmin, image.norm.vmax
    middle = (low + high) / 2 if high is not None and low is not None else 0
    for r in range(side):
        for c in range(side):
            value = grid[r, c]
            text = fmt.format(int(value) if _is_int_format(fmt) else value) if np.isfinite(value) else "-"
            # Dark text on the bright end of viridis-like maps, light text elsewhere.
            colour = "black" if np.isfinite(value) and value > middle else "white"
            ax.text(c, r, text, ha="center", va="center", color=colour, fontsize=9)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Lay out, write (parent folders created) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _is_int_format(fmt: str) -> bool:
    return fmt.rstrip("}").endswith(("d", "n")) and "{" in fmt


def _axis_labels(names: list[str], side: int) -> tuple[list[str], list[str]]:
    """Row labels (``top``, ``center``, ``bottom``) and column labels (``left``, ``center``, ``right``)."""
    if len(names) == side * side:
        rows = [names[r * side].split(" ")[0] for r in range(side)]
        cols = [names[c].split(" ")[-1] for c in range(side)]
        if len(set(rows)) == side and len(set(cols)) == side:
            return rows, cols
    return [str(r) for r in range(side)], [str(c) for c in range(side)]


def class_bars(values, names: list[str], title: str, path: str | Path, vmax: float | None = None) -> Path:
    """Write a bar chart PNG of one share per class (classes that form no grid), value on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    heights = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 1.6, 3.4), dpi=120)
    ax.bar(range(len(names)), np.nan_to_num(heights), color="#4c72b0")
    for i, v in enumerate(heights):
        ax.text(i, (0 if np.isnan(v) else v) + 0.01, "-" if np.isnan(v) else f"{v:.0%}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(names)), names)
    top = vmax or (float(np.nanmax(heights)) if np.isfinite(heights).any() and np.nanmax(heights) > 0 else 1.0)
    ax.set_ylim(0, top * 1.12)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def probe_lines(curves: dict[str, list[float]], chance: float, title: str, path: str | Path) -> Path:
    """Probe accuracy by layer, one line per model (base, fine-tuned), chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=120)
    for name, values in curves.items():
        ax.plot(range(len(values)), values, marker="o", label=name)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(max(len(v) for v in curves.values())))
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("held-out probe accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
