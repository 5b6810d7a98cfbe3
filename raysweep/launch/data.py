"""Ray Data datasets of scenes made on the fly from scene indices.

What travels through the object store is cheap: blocks of positions. Each map task rebuilds the
(cached) scene set and renders its batch locally, so ``scene_dataset(cfg)`` yields the same rows as
``raysweep generate`` in any shard and any order.
"""

from __future__ import annotations

import numpy as np
import ray

from raysweep._configlib import to_dict


_TOOLS: dict[str, tuple] = {}


def _scene_tools(cfg):
    """The task's scene set and the Renderer of ``cfg``, built once per worker process."""
    from raysweep.scenes import Renderer
    from raysweep.tasks import task_for

    key = repr(to_dict(cfg))
    if key not in _TOOLS:
        _TOOLS.clear()
        _TOOLS[key] = (task_for(cfg).scenes(cfg), Renderer(cfg))
    return _TOOLS[key]


def render_batch(batch: dict, cfg, encode: bool = True) -> dict:
    """Ray Data batch function: ``{"id": positions}`` -> the dataset columns of those scenes."""
    from raysweep.datasets.synthetic import scene_columns

    scenes, renderer = _scene_tools(cfg)
    cols = scene_columns(scenes, renderer, batch["id"], encode=encode)
    if not encode:
        cols["image"] = np.stack(cols["image"])
    return {k: (v if isinstance(v, np.ndarray) else np.asarray(v, dtype=object)) for k, v in cols.items()}


def scene_dataset(cfg, encode: bool = True, batch_size: int = 256, num_blocks: int | None = None) -> "ray.data.Dataset":
    """A lazy Ray dataset of every scene of ``cfg`` (a DataConfig), rendered where it is consumed."""
    from raysweep.tasks import task_for

    n = len(task_for(cfg).scenes(cfg))
    ds = ray.data.range(n, override_num_blocks=num_blocks) if num_blocks else ray.data.range(n)
    return ds.map_batches(render_batch, fn_kwargs={"cfg": cfg, "encode": encode}, batch_size=batch_size, batch_format="numpy")
