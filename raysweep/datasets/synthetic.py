"""Rows of synthetic scene datasets and ``raysweep generate``: scenes to Parquet, in parallel.

Part files cover fixed ranges of positions (``rows_per_part``), independent of the number of
workers, so 1 or N workers write the same files byte for byte.
"""

from __future__ import annotations

import hashlib
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from raysweep._configlib import to_dict
from raysweep.datasets.store import DatasetWriter, rows_to_table, write_table
from raysweep.scenes import Renderer, encode_png
from raysweep.tasks import task_for


def scene_columns(scenes, renderer: Renderer, positions, encode: bool = True) -> dict[str, list]:
    """Column lists for the scenes at ``positions`` of a task's scene set (PNG bytes, or raw arrays if
    not ``encode``)."""
    cfg = scenes.cfg
    cols: dict[str, list] = {k: [] for k in (
        "scene_id", "split", "source", "image", "width", "height", "question", "prompt", "answer", "label", "area",
        "cell_row", "cell_col", "ref_row", "ref_col", "shape", "color", "size", "n_distractors", "distractors", "seed",
    )}  # fmt: skip
    for pos in positions:
        scene = scenes[int(pos)]
        pixels = renderer.render(scene.objects)
        question = scenes.question(scene)
        cols["scene_id"].append(scene.scene_id)
        cols["split"].append(cfg.split)
        cols["source"].append("synthetic")
        cols["image"].append(encode_png(pixels) if encode else pixels)
        cols["width"].append(cfg.canvas_size)
        cols["height"].append(cfg.canvas_size)
        cols["question"].append(question)
        cols["prompt"].append(cfg.prompt_prefix + question)
        cols["answer"].append(scenes.answer(scene))
        cols["label"].append(scenes.label(scene))
        cols["area"].append(scene.area)
        cols["cell_row"].append(scene.row)
        cols["cell_col"].append(scene.col)
        cols["ref_row"].append(getattr(scene, "ref_row", None))  # the reference object of relative_position
        cols["ref_col"].append(getattr(scene, "ref_col", None))
        cols["shape"].append(scene.shape)
        cols["color"].append(scene.color)
        cols["size"].append(scene.size)
        cols["n_distractors"].append(len(scene.distractors))
        cols["distractors"].append(scene.distractors_json())
        cols["seed"].append(cfg.seed)
    return cols


def _write_part(cfg, staging: str, index: int, start: int, stop: int) -> tuple[int, int]:
    scenes, renderer = task_for(cfg).scenes(cfg), Renderer(cfg)
    if cfg.corrupted():
        columns = corrupted_columns(cfg, scenes, renderer, range(start, stop))
    else:
        columns = scene_columns(scenes, renderer, range(start, stop))
    write_table(rows_to_table(columns), Path(staging) / f"part-{index:05d}.parquet")
    return index, stop - start


def training_rows_of(cfg):
    """The corrupted training rows of a synthetic DataConfig (what ``raysweep generate`` writes for it)."""
    from raysweep.training.corrupt import build_training_rows
    from raysweep.training.data import SyntheticRows

    return build_training_rows(cfg, SyntheticRows(cfg))


def corrupted_columns(cfg, scenes, renderer: Renderer, positions) -> dict[str, list]:
    """:func:`scene_columns` of the training rows at ``positions``, with the trained label and answer, the
    truth in ``true_label``/``true_answer`` and the row's ``corruption``."""
    rows = training_rows_of(cfg)
    picks = [int(rows.picks[int(p), 1]) for p in positions]
    cols = scene_columns(scenes, renderer, picks)
    cols["true_label"], cols["true_answer"] = list(cols["label"]), list(cols["answer"])
    cols["label"] = [int(rows.labels()[int(p)]) for p in positions]
    cols["answer"] = [rows.answers[int(p)] or rows.task.answer_names[label] for p, label in zip(positions, cols["label"])]
    cols["corruption"] = [rows.kinds[int(p)] for p in positions]
    return cols


def generate(cfg, out_dir, workers: int = 1, rows_per_part: int = 2000, overwrite: bool = False, progress: bool = True) -> dict:
    """Render every scene of ``cfg`` (a DataConfig) into a Parquet dataset at ``out_dir``.

    With training-row corruptions (data.label_noise, data.area_distribution, data.size,
    data.answer_format_noise) it writes the training rows as training would see them, the truth
    beside them, and their summary in the manifest's ``corruption``.
    """
    from raysweep.errors import UserError

    scenes = task_for(cfg).scenes(cfg)
    n = len(scenes)
    corruption = None
    if cfg.corrupted():
        if cfg.mix.source or cfg.curriculum:
            raise UserError("data.mix / data.curriculum combine sources while training; generate writes one source "
                            "(leave data.mix.source and data.curriculum empty here)")  # fmt: skip
        if cfg.split in ("val", "test"):
            raise UserError(f"data.split={cfg.split}: corruptions apply to training rows only; generate data.split=train "
                            "(or all) with them, or leave them off for validation and test sets")  # fmt: skip
        rows = training_rows_of(cfg)
        n, corruption = len(rows), rows.summary
    ranges = [(i, start, min(start + rows_per_part, n)) for i, start in enumerate(range(0, n, rows_per_part))]
    bar = _progress(len(ranges), f"generate {cfg.split}", progress)
    with DatasetWriter(out_dir, overwrite=overwrite) as writer:
        if workers <= 1:
            for index, start, stop in ranges:
                _write_part(cfg, str(writer.staging), index, start, stop)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_write_part, cfg, str(writer.staging), *r) for r in ranges]
                for fut in as_completed(futures):
                    fut.result()
                    bar.update(1)
        bar.close()
        manifest = {
            "kind": "synthetic",
            "rows": n,
            "parts": len(ranges),
            "pool_size": scenes.pool_size,
            "config": to_dict(cfg),
            "ids_sha256": hashlib.sha256(np.asarray(scenes.ids, np.int64).tobytes()).hexdigest(),
        }
        if corruption is not None:
            manifest["corruption"] = corruption
        return writer.publish(manifest)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="part", disable=not enabled, file=sys.stderr, dynamic_ncols=True)
