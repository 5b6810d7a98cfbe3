"""Rows for training and evaluation, on every worker, without Ray.

Synthetic rows are rendered where they are used (only positions are shared), Parquet rows are
read once per process. The data order of an epoch is a pure function of (seed, epoch), and every
worker takes the same fixed number of steps, so uneven shards cannot hang a collective and a run
resumed from a checkpoint sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from raysweep.errors import UserError


class RowSource:
    """Indexable rows (dicts with image, prompt, answer, area, ...)."""

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def rows(self, positions) -> list[dict]:  # pragma: no cover - interface
        raise NotImplementedError

    def labels(self) -> np.ndarray:  # pragma: no cover - interface
        """Every row's ``label`` (index into its task's answers), to stratify splits by."""
        raise NotImplementedError

    def for_epoch(self, epoch: int) -> "RowSource":
        """The rows of ``epoch`` (from 0): the source itself, except for a data.curriculum's phases."""
        return self


class SyntheticRows(RowSource):
    """Scenes of a DataConfig, rendered on demand as PIL images (no PNG round trip)."""

    def __init__(self, data_cfg, positions: np.ndarray | None = None):
        from raysweep.scenes import Renderer
        from raysweep.tasks import task_for

        self.task = task_for(data_cfg)
        self.scenes, self.renderer = self.task.scenes(data_cfg), Renderer(data_cfg)
        self.positions = np.arange(len(self.scenes)) if positions is None else np.asarray(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def rows(self, positions) -> list[dict]:
        from PIL import Image

        out = []
        for pos in positions:
            scene = self.scenes[int(self.positions[int(pos)])]
            out.append({
                "scene_id": scene.scene_id,
                "image": Image.fromarray(self.renderer.render(scene.objects)),
                "prompt": self.scenes.prompt(scene),
                "answer": self.scenes.answer(scene),
                "label": self.scenes.label(scene),
                "area": scene.area,
                "cell_row": scene.row,  # the target's cell: the relative task's target-cell baseline reads it
                "cell_col": scene.col,
                "ref_row": getattr(scene, "ref_row", None),  # relative_position's reference cell (None otherwise)
                "ref_col": getattr(scene, "ref_col", None),
                "grounding": self.scenes.grounding(scene),  # [end char of a name in prompt, row, col] per named object
            })  # fmt: skip
        return out

    def labels(self) -> np.ndarray:
        return self.scenes.labels()[self.positions]


class ParquetRows(RowSource):
    """Rows of a Parquet dataset folder, optionally a subset of its positions.

    ``clean``: a set written with training-row corruptions (``raysweep generate data.label_noise=...``)
    gives its true label and answer instead of the trained ones (validation and evaluation rows).
    """

    def __init__(self, path, positions: np.ndarray | None = None, table=None, task=None, clean: bool = False):
        from raysweep.datasets import open_dataset

        self.path, self.clean = str(path), clean
        if table is None:
            dataset = open_dataset(path)
            columns = ["scene_id", "image", "prompt", "answer", "label", "area", "cell_row", "cell_col"]
            table, task = dataset.read(columns=columns + _optional_columns(dataset)), dataset.task
        self.table, self.task = table, task  # the task of the set's rows (its answer names)
        self.positions = np.arange(self.table.num_rows) if positions is None else np.asarray(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def rows(self, positions) -> list[dict]:
        idx = [int(self.positions[int(p)]) for p in positions]
        rows = self.table.take(idx).to_pylist()
        if self.clean:
            for row in rows:
                if row.get("true_label") is not None:
                    row["label"], row["answer"] = row["true_label"], row["true_answer"]
        return rows

    def labels(self) -> np.ndarray:
        labels = np.asarray(self.table.column("label").to_numpy())
        if self.clean and "true_label" in self.table.column_names:
            truth = self.table.column("true_label").to_numpy(zero_copy_only=False)
            labels = np.where(np.isnan(truth.astype(float)), labels, truth).astype(labels.dtype)
        return labels[self.positions]


def _optional_columns(dataset) -> list[str]:
    """The columns older sets lack, where the set has them: ``ref_row``/``ref_col`` (relative_position's
    reference cell) and ``true_label``/``true_answer`` (a set written with corruptions)."""
    import pyarrow.parquet as pq

    if not dataset.parts:
        return []
    schema = pq.read_schema(dataset.parts[0])
    return [c for c in ("ref_row", "ref_col", "true_label", "true_answer") if schema.get_field_index(c) >= 0]


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions: ``val_fraction`` of each label to validation, chosen by the seed."""
    rng = np.random.default_rng([seed, 11])
    val = []
    for a in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == a))
        val.extend(members[: int(round(len(members) * val_fraction))])
    val = np.sort(np.asarray(val, np.int64))
    return np.setdiff1d(np.arange(len(labels)), val), val


def train_val_sources(cfg) -> tuple[RowSource, RowSource]:
    """Training and validation rows of a RunConfig's data section.

    The training rows carry the data section's corruptions, size, resampling and mixing
    (:mod:`raysweep.training.corrupt`); the validation rows never do.
    """
    data = cfg.data
    train, val = _plain_sources(data, data.source)
    if not data.corrupted():
        return train, val
    from raysweep.training.corrupt import CurriculumRows, build_training_rows

    second = None
    if data.mix.source:
        second = _plain_sources(replace(data, fraction=1.0, size=0), data.mix.source)[0]  # never its val part
        if tuple(second.task.answer_names) != tuple(train.task.answer_names):
            raise UserError(f"data.mix.source {data.mix.source!r} answers {list(second.task.answer_names)}, but data.source "
                            f"{data.source!r} answers {list(train.task.answer_names)}; mix sets of the same task")  # fmt: skip
    if data.curriculum:
        ratios = sorted({phase.mix_ratio for phase in data.curriculum})
        return CurriculumRows(data, {r: build_training_rows(data, train, second, r) for r in ratios}), val
    return build_training_rows(data, train, second), val


def _plain_sources(data, source: str) -> tuple[RowSource, RowSource]:
    """(train, val) rows of ``source`` ('synthetic' or a name in data.parquet), uncorrupted."""
    if source == "synthetic":
        if data.split == "val":
            raise UserError("data.split=val is the validation part; train with data.split=train (or all)")
        if data.split == "train":
            return SyntheticRows(data), SyntheticRows(replace(data, split="val", fraction=1.0))
        # split all/test: hold out val_fraction of the scenes by area
        full = SyntheticRows(data)
        train, val = stratified_split(full.labels(), data.val_fraction, data.seed)
        return SyntheticRows(data, train), SyntheticRows(data, val)
    if source not in data.parquet:
        known = ", ".join(["synthetic", *data.parquet]) or "synthetic"
        raise UserError(f"data.source: unknown source {source!r}; known: {known} (add it under data.parquet)")
    full = ParquetRows(data.parquet[source])
    train, val = stratified_split(full.labels(), data.val_fraction, data.seed)
    if data.fraction < 1.0:
        rng = np.random.default_rng([data.seed, 12])
        train = np.sort(rng.choice(train, size=max(1, int(round(len(train) * data.fraction))), replace=False))
    return ParquetRows(full.path, train, full.table, full.task), ParquetRows(full.path, val, full.table, full.task, clean=True)


def eval_source(eval_set, config_root: Path | None = None) -> RowSource:
    """Rows of an EvalSet (a Parquet folder or a data YAML), limited to a seeded sample if asked."""
    if eval_set.path:
        src: RowSource = ParquetRows(eval_set.path, clean=True)  # scored against the truth
    else:
        from raysweep.config import load_config

        src = SyntheticRows(load_config(eval_set.config, eval_set.overrides).data)
    return limit_rows(src, eval_set.limit, seed=0)


def limit_rows(src: RowSource, limit: int, seed: int) -> RowSource:
    """A seeded sample of at most ``limit`` rows (the same sample every time)."""
    if not limit or limit >= len(src):
        return src
    rng = np.random.default_rng([seed, 13])
    keep = np.sort(rng.choice(len(src), size=limit, replace=False))
    src.positions = src.positions[keep]
    return src


def steps_per_epoch(n_rows: int, batch_size: int, world_size: int, grad_accum: int, fixed: int = 0) -> int:
    """Optimizer steps per epoch: ``fixed`` or one pass over the rows (at least 1)."""
    if fixed:
        return fixed
    return max(1, math.ceil(n_rows / (batch_size * world_size * grad_accum)))


def epoch_batches(n_rows: int, epoch: int, seed: int, rank: int, world_size: int, n_batches: int, batch_size: int) -> list[list[int]]:
    """This rank's micro batches of an epoch: a seeded permutation, dealt round-robin to ranks.

    The permutation is repeated as needed so every rank gets exactly ``n_batches`` full batches.
    """
    rng = np.random.default_rng([seed, 21, epoch])
    need = n_batches * batch_size * world_size
    order = np.concatenate([rng.permutation(n_rows) for _ in range(math.ceil(need / n_rows))])[:need]
    mine = order.reshape(n_batches, world_size, batch_size)[:, rank, :]
    return mine.tolist()
