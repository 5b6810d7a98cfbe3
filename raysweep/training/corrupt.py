"""The training rows as trained on: resampled, sized, mixed and corrupted on purpose (no Ray).

The paper's open questions (why full-COCO fine-tuning collapses, how synthetic and real data
should be combined) need the training data taken apart one factor at a time. Every factor is a
``data.*`` key applied here, to the training split only (validation and test rows stay clean), so
every loader - the positions loader, Ray Data, ``raysweep generate`` - gets the same rows:

1. ``data.area_distribution`` / ``data.size``: which source rows are trained on, per class counts
   by largest remainder (exactly ``data.size`` rows; repeats only where a class has too few rows);
2. ``data.mix``: ``round(n * ratio)`` of the ``n`` rows from a second source (its training part);
3. ``data.label_noise``: exactly ``round(n * p)`` rows trained on another class;
4. ``data.answer_format_noise``: exactly ``round(n * q)`` answers rewritten as free phrases.

Every choice is seeded by ``data.seed`` and a purpose tag and fixed per row: row ``i`` is corrupted
the same way in every epoch, on every worker. A corrupted row keeps its true geometry in ``area``
(and ``true_label``/``true_answer``); ``label``/``answer`` are what the model is trained on.
"""

from __future__ import annotations

import numpy as np

from raysweep.errors import UserError

_TAG_PICK, _TAG_MIX, _TAG_NOISE, _TAG_FORMAT = 31, 32, 33, 34


class TrainingRows:
    """Rows of one or more sources at fixed picks, with per-row trained labels and answers.

    A :class:`~raysweep.training.data.RowSource` (duck-typed here to keep this module free of
    import cycles): ``len``, ``rows(positions)``, ``labels()``, ``task`` and ``summary``.
    """

    def __init__(self, sources: list, picks: np.ndarray, labels: np.ndarray, answers: list[str | None], kinds: list[str],
                 task, summary: dict):  # fmt: skip
        self.sources, self.picks, self._labels, self.answers, self.kinds = sources, picks, labels, answers, kinds
        self.task, self.summary = task, summary
        self.positions = np.arange(len(picks))  # limit_rows narrows this, as for the other sources

    def __len__(self) -> int:
        return len(self.positions)

    def for_epoch(self, epoch: int):
        return self

    def rows(self, positions) -> list[dict]:
        idx = [int(self.positions[int(p)]) for p in positions]
        out: list[dict | None] = [None] * len(idx)
        for s, source in enumerate(self.sources):  # one read per source, not per row
            mine = [k for k, i in enumerate(idx) if self.picks[i, 0] == s]
            if mine:
                for k, row in zip(mine, source.rows([int(self.picks[idx[k], 1]) for k in mine])):
                    out[k] = dict(row)
        for k, i in enumerate(idx):
            row = out[k]
            row["true_label"], row["true_answer"] = int(row["label"]), row["answer"]
            row["label"] = int(self._labels[i])
            row["answer"] = self.answers[i] if self.answers[i] is not None else self.task.answer_names[row["label"]]
            row["corruption"] = self.kinds[i]
        return out  # type: ignore[return-value]

    def labels(self) -> np.ndarray:
        return self._labels[self.positions]


class CurriculumRows:
    """One :class:`TrainingRows` per curriculum phase, all of the same length; :meth:`for_epoch`
    gives the phase of an epoch. ``rows`` without a phase chosen is an error, never phase 1 by accident."""

    def __init__(self, data_cfg, phases: dict[float, TrainingRows]):
        self.data_cfg, self.phases = data_cfg, phases
        first = phases[data_cfg.phase_ratio(0)]
        self.task, self.summary, self.current = first.task, first.summary, None
        self.positions = first.positions

    def __len__(self) -> int:
        return len(next(iter(self.phases.values())))

    def for_epoch(self, epoch: int) -> TrainingRows:
        """The training rows of ``epoch`` (from 0)."""
        return self.phases[self.data_cfg.phase_ratio(epoch)]

    def rows(self, positions) -> list[dict]:
        raise UserError("data.curriculum: the training launcher must take each epoch's rows from "
                        "train_src.for_epoch(epoch); this one does not (see README, Paper experiments)")  # fmt: skip

    def labels(self) -> np.ndarray:
        return self.for_epoch(0).labels()


def class_weights(data_cfg, task) -> np.ndarray | None:
    """The distribution ``data.area_distribution`` asks for (normalised), or None (as the source comes)."""
    dist = data_cfg.area_distribution
    if dist in ("", None):
        return None
    if dist == "uniform":
        weights = np.ones(task.n_classes)
    elif dist == "coco":
        weights = np.asarray(coco_area_counts(data_cfg, task), float)
    else:
        weights = np.asarray(dist, float)
    return weights / weights.sum()


def coco_area_counts(data_cfg, task) -> list[int]:
    """``area_counts_before_caps`` of the COCO set named by ``data.area_distribution_from``, in label order."""
    from raysweep.datasets.store import read_manifest

    where = data_cfg.area_distribution_from
    path = data_cfg.parquet.get(where, where)
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError, UserError) as err:
        raise UserError(f"data.area_distribution_from: {where!r} is not a readable dataset ({err}); name a COCO set "
                        "in data.parquet or give its folder") from None  # fmt: skip
    counts = manifest.get("area_counts_before_caps") or manifest.get("area_counts")
    if not counts:
        raise UserError(f"data.area_distribution_from: {path} has no area_counts_before_caps in its manifest "
                        "(it is not a COCO set built by raysweep coco)")  # fmt: skip
    if isinstance(counts, dict):
        counts = [counts.get(name, counts.get(str(i), 0)) for i, name in enumerate(task.answer_names)]
    if len(counts) != task.n_classes:
        raise UserError(f"data.area_distribution_from: {path} counts {len(counts)} classes, task {task.name} has {task.n_classes}")
    return [int(c) for c in counts]


def class_counts(n: int, weights: np.ndarray) -> np.ndarray:
    """``n`` split over the classes by ``weights``, exactly (largest remainder, ties to the lower class)."""
    raw = n * weights
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def pick_rows(labels: np.ndarray, n: int, weights: np.ndarray | None, rng: np.random.Generator, what: str) -> np.ndarray:
    """Positions of ``n`` rows: per class by ``weights`` (with repeats where a class runs short), or a
    seeded sample without repeats keeping the source's own distribution."""
    if weights is None:
        if n > len(labels):
            raise UserError(f"data.size: {n} training questions asked of {what}, which has {len(labels)}; lower "
                            "data.size or set data.area_distribution (which resamples with repeats)")  # fmt: skip
        return np.sort(rng.choice(len(labels), size=n, replace=False))
    picks = []
    for label, count in enumerate(class_counts(n, weights)):
        members = np.flatnonzero(labels == label)
        if count and not len(members):
            raise UserError(f"data.area_distribution asks for {count} rows of class {label} but {what} has none of it")
        if count:
            reps = -(-count // len(members))
            picks.append(np.concatenate([rng.permutation(members) for _ in range(reps)])[:count])
    return np.sort(np.concatenate(picks)) if picks else np.empty(0, np.int64)


def build_training_rows(data_cfg, primary, second=None, ratio: float | None = None) -> TrainingRows:
    """The training rows of ``data_cfg`` from the ``primary`` training source (and ``second``, the
    mixing source's training part), at mixing ``ratio`` (default ``data.mix.ratio``)."""
    task = primary.task
    ratio = data_cfg.mix.ratio if ratio is None else ratio
    n = data_cfg.size or len(primary)
    n_mix = int(round(n * ratio)) if second is not None else 0
    weights = class_weights(data_cfg, task)
    picks_primary = pick_rows(primary.labels(), n - n_mix, weights, np.random.default_rng([data_cfg.seed, _TAG_PICK]),
                              f"data.source {data_cfg.source!r}")  # fmt: skip
    parts = [np.stack([np.zeros_like(picks_primary), picks_primary], 1)]
    sources = [primary]
    if n_mix:
        rng = np.random.default_rng([data_cfg.seed, _TAG_MIX])
        reps = -(-n_mix // len(second))
        mixed = np.sort(np.concatenate([rng.permutation(len(second)) for _ in range(reps)])[:n_mix])
        parts.append(np.stack([np.ones_like(mixed), mixed], 1))
        sources.append(second)
    picks = np.concatenate(parts).astype(np.int64)
    true = np.concatenate([primary.labels()[picks_primary], *([second.labels()[picks[len(picks_primary):, 1]]] if n_mix else [])])
    labels = true.copy()
    kinds = [""] * len(picks)
    answers: list[str | None] = [None] * len(picks)

    noisy = _exact_share(len(picks), data_cfg.label_noise, np.random.default_rng([data_cfg.seed, _TAG_NOISE]))
    rng = np.random.default_rng([data_cfg.seed, _TAG_NOISE, 1])
    for i in noisy:
        labels[i] = other_label(task, int(true[i]), data_cfg.label_noise_to, rng)
        kinds[i] = "label_noise"
    rephrased = _exact_share(len(picks), data_cfg.answer_format_noise, np.random.default_rng([data_cfg.seed, _TAG_FORMAT]))
    for i in rephrased:
        answers[i] = task.free_phrase(int(labels[i]), int(i))
        kinds[i] = "label_noise+answer_format" if kinds[i] else "answer_format"
    summary = {
        "rows": int(len(picks)), "from_mix": int(n_mix), "relabelled": int(len(noisy)), "rephrased": int(len(rephrased)),
        "repeated": int(len(picks_primary) - len(np.unique(picks_primary))),
        "class_counts": np.bincount(labels, minlength=task.n_classes).tolist(),
        "true_class_counts": np.bincount(true, minlength=task.n_classes).tolist(),
    }  # fmt: skip
    return TrainingRows(sources, picks, labels, answers, kinds, task, summary)


def _exact_share(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(n * fraction)`` of ``range(n)``, chosen by ``rng``, sorted."""
    return np.sort(rng.permutation(n)[: int(round(n * fraction))])


def other_label(task, label: int, kind: str, rng: np.random.Generator) -> int:
    """A class other than ``label``: uniform over the others, or one of its :meth:`Task.neighbours`."""
    if kind == "neighbor":
        choices = [c for c in task.neighbours(label) if c != label]
    else:
        choices = [c for c in range(task.n_classes) if c != label]
    if not choices:
        raise UserError(f"data.label_noise: task {task.name} has no class other than {task.answer_names[label]!r}")
    return int(choices[int(rng.integers(len(choices)))])
