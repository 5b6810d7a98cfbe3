"""Small in-memory rows of synthetic scenes, for tests, benchmarks and the quickstart (no disk)."""

from __future__ import annotations


def synthetic_rows(n: int, canvas_size: int = 84, seed: int = 42, offset: int = 0, **data_overrides) -> list[dict]:
    """``n`` dataset rows (same columns as the Parquet store) spread evenly over a scene set."""
    from raysweep.config import DataConfig
    from raysweep.datasets.synthetic import scene_columns
    from raysweep.scenes import Renderer
    from raysweep.tasks import task_for

    cfg = DataConfig(canvas_size=canvas_size, antialias=1, seed=seed, **data_overrides)
    scenes = task_for(cfg).scenes(cfg)
    step = max(1, len(scenes) // max(n, 1))
    positions = [(offset + i * step) % len(scenes) for i in range(n)]
    cols = scene_columns(scenes, Renderer(cfg), positions)
    return [dict(zip(cols, values)) for values in zip(*cols.values())]
