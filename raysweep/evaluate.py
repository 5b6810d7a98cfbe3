"""Evaluation of a built model on dataset rows: predictions -> metrics -> JSON + heatmap PNGs.

``evaluate_rows`` is what ``raysweep eval`` and the training loop call; ``write_report`` writes the
artefacts (``metrics.json``, ``predictions.jsonl``, ``acc_by_area.png``, ``pred_share_by_area.png``,
``confusion.png``) into a folder, for example one that becomes MLflow artifacts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from raysweep import metrics


def predict_rows(built, rows: list[dict], mode: str = "choice", batch_size: int = 16, max_new_tokens: int = 15, progress=None):
    """Predictions for ``rows`` in batches (no gradients, model in eval mode).

    Returns:
        ``(predictions, errors)``: one prediction per row, and ``{row index: "Type: message"}`` for the
        rows the family could not take (their prediction is -1). When every row fails, the
        first error is raised instead.
    """
    import torch

    from raysweep.models import get_family

    family = get_family(built.family)
    was_training = built.model.training
    built.model.eval()
    preds, errors = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                got, failed = _predict_batch(family, built, batch, mode, max_new_tokens)
                preds.extend(got)
                errors.extend((start + i, err) for i, err in failed)
                if progress:
                    progress(len(preds), len(rows))
    finally:
        built.model.train(was_training)
    if errors and len(errors) == len(rows):
        raise errors[0][1]  # every row failed: a fault of the model or the set, not of one row
    return preds, {i: f"{type(err).__name__}: {err}" for i, err in errors}


def _predict_batch(family, built, batch: list[dict], mode: str, max_new_tokens: int):
    """Predictions of a batch; when it fails, row by row, so that one row the family cannot take
    (an image its processor refuses, a damaged file) fails alone: area -1 and its error."""
    from raysweep.models.base import Prediction

    # Any exception: a systematic fault fails every row, and predict_rows raises it then.
    try:
        return family.predict(built, batch, mode=mode, max_new_tokens=max_new_tokens), []
    except Exception as err:  # noqa: BLE001
        if len(batch) == 1:
            return [Prediction(-1)], [(0, err)]
    preds, failed = [], []
    for i, row in enumerate(batch):
        try:
            preds.extend(family.predict(built, [row], mode=mode, max_new_tokens=max_new_tokens))
        except Exception as err:  # noqa: BLE001
            preds.append(Prediction(-1))
            failed.append((i, err))
    return preds, failed


def for_task(built, task):
    """``built`` answering ``task`` (its answer names scored and parsed); itself when it already does."""
    from dataclasses import replace

    if task is None or task == built.task:
        return built
    return replace(built, task=task, extras={})


def evaluate_rows(
    built, rows: list[dict], mode: str = "choice", batch_size: int = 16, max_new_tokens: int = 15,
    leniency: str = "lenient", progress=None, task=None,
) -> dict:
    """Predict ``rows`` and score them against their ``label`` in ``task`` (default: the model's).

    Returns:
        Flat metric keys (``acc``, ``acc_ci_low``, ``acc_ci_high``, ``macro_acc``, ``acc/<class_slug>``,
        ``pred_frac/<class_slug>``, ``parse_fail_rate``, the task's bias index (``center_bias``), ``n``,
        ``seconds``, ``rows_per_s``, ``failed_rows``: rows that failed alone, scored wrong with their
        ``error`` in ``predictions``) plus non-scalar entries ``confusion`` (classes x classes),
        ``per_class``, ``pred_dist``, ``predictions`` (one dict per row), ``answer_names`` and
        ``mode``/``leniency``. :func:`scalar_metrics` keeps only the numbers.
    """
    built = for_task(built, task)
    started = time.perf_counter()
    preds, errors = predict_rows(built, rows, mode, batch_size, max_new_tokens, progress)
    return score_predictions(rows, preds, errors, built.task, mode, leniency, time.perf_counter() - started, max_new_tokens)


def score_predictions(rows: list[dict], preds: list, errors: dict[int, str], task, mode: str = "choice",
                      leniency: str = "lenient", seconds: float = 0.0, max_new_tokens: int = 15) -> dict:  # fmt: skip
    """The :func:`evaluate_rows` result of predictions made elsewhere (e.g. by Ray Data replicas).

    Args:
        rows: the rows, in order (each with ``label``; ``scene_id`` is kept in ``predictions``).
        preds: one :class:`~raysweep.models.base.Prediction` per row, in the rows' order.
        errors: ``{row index: "Type: message"}`` of rows that failed alone.
        task: the :class:`~raysweep.tasks.Task` that scores them; ``seconds``: the prediction time.
    """
    labels = [p.area if mode == "choice" else task.parse(p.text, leniency) for p in preds]
    targets = [int(r["label"]) for r in rows]
    result = metrics.summary(targets, labels, task)
    result.update(task.baselines(rows))  # the task's data-only controls, next to the model's accuracy
    result["answer_names"] = list(task.answer_names)
    result.update(mode=mode, leniency=leniency if mode == "generate" else "n/a", seconds=seconds,
                  rows_per_s=len(rows) / seconds if seconds else 0.0, failed_rows=len(errors))
    result["predictions"] = [
        {"scene_id": r.get("scene_id"), "label": t, "pred": a, "text": p.text, **({"new_tokens": p.new_tokens} if mode == "generate" else {}),
         **({"error": errors[i]} if i in errors else {})}
        for i, (r, t, a, p) in enumerate(zip(rows, targets, labels, preds))
    ]
    if mode == "generate":  # the collapse of full-COCO fine-tuning shows here: empty or looping answers
        result["mean_new_tokens"] = sum(p.new_tokens for p in preds) / max(1, len(preds))
        result["empty_answer_rate"] = sum(not p.text.strip() for p in preds) / max(1, len(preds))
        result["budget_used_rate"] = sum(p.new_tokens >= max_new_tokens for p in preds) / max(1, len(preds))
    return result


def scalar_metrics(result: dict, prefix: str = "") -> dict[str, float]:
    """The numeric entries of an :func:`evaluate_rows` result (for MLflow ``log_metrics``)."""
    return {f"{prefix}{k}": float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_report(result: dict, out_dir, title: str = "", task=None) -> dict[str, Path]:
    """Write ``metrics.json``, ``predictions.jsonl`` and two figures into ``out_dir``: accuracy by
    target class and share of predictions, as heatmaps when the task's classes form a grid
    (``acc_by_area.png``, ``pred_share_by_area.png``), else as bars (``acc_by_class.png``,
    ``pred_share_by_class.png``)."""
    from raysweep.plots import area_heatmap, class_bars

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "predictions": out / "predictions.jsonl"}
    body = {k: v for k, v in result.items() if k != "predictions"}
    paths["metrics"].write_text(json.dumps(_finite(body), indent=2))
    with paths["predictions"].open("w") as fh:
        for row in result.get("predictions", []):
            fh.write(json.dumps(row) + "\n")
    label = f"{title} ({result.get('mode', '')})".strip()
    per_class = [v if v is not None else float("nan") for v in result["per_class"]]
    names = list(task.answer_names) if task is not None else result.get("answer_names")
    if task is None or task.grid_side():
        paths["acc_by_area"] = area_heatmap(per_class, f"accuracy by target area {label}", out / "acc_by_area.png",
                                            fmt="{:.0%}", vmin=0.0, vmax=1.0, area_names=names)
        paths["pred_share_by_area"] = area_heatmap(result["pred_dist"], f"share of predictions {label}", out / "pred_share_by_area.png",
                                                   fmt="{:.0%}", vmin=0.0, area_names=names, cmap="magma")
    else:
        paths["acc_by_class"] = class_bars(per_class, names, f"accuracy by target class {label}", out / "acc_by_class.png", vmax=1.0)
        paths["pred_share_by_class"] = class_bars(result["pred_dist"], names, f"share of predictions {label}", out / "pred_share_by_class.png")
    return paths


def format_table(result: dict, task) -> str:
    """A plain-text summary: headline numbers, the task's bias index, and accuracy and prediction
    share per class (as the grid when the classes form one)."""
    bias = "  ".join(f"{k.replace('_', ' ')} {result[k]:.1%}" for k in task.bias([], []) if k in result)
    bias += "".join(f"  {k.replace('_', ' ')} {v:.1%}" for k, v in result.items() if k.endswith("_baseline"))
    lines = [
        f"mode {result['mode']}  n={result['n']}  acc {result['acc']:.1%} "
        f"[{result['acc_ci_low']:.1%}, {result['acc_ci_high']:.1%}]  macro {result['macro_acc']:.1%}  "
        f"parse failures {result['parse_fail_rate']:.1%}  " + (bias + "  " if bias else "")
        + f"({result['rows_per_s']:.1f} rows/s)"
        + (f"  FAILED rows {result['failed_rows']} (scored wrong; errors in predictions.jsonl)" if result.get("failed_rows") else ""),
    ]
    side = task.grid_side()
    for label, values in (("accuracy by target class", result["per_class"]), ("share of predictions", result["pred_dist"])):
        lines.append(label)
        if side:
            for r in range(side):
                cells = values[r * side : (r + 1) * side]
                lines.append("  " + "  ".join(f"{'-':>6}" if v is None else f"{v:>6.1%}" for v in cells))
        else:
            lines.append("  " + "  ".join(f"{n} {'-' if v is None else f'{v:.1%}'}" for n, v in zip(task.answer_names, values)))
    return "\n".join(lines)


def _finite(value):
    """NaN -> None, recursively, so that metrics.json is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class LocalPredictor:
    """Predictions in this process: the model is built once, on first use, by ``build()`` (-> Built).

    The in-process counterpart of :class:`raysweep.launch.inference.RayDataPredictor`: both take
    jobs ``(rows, mode, task)`` and return ``(predictions, errors, seconds)`` per job, in order.
    """

    def __init__(self, build, batch_size: int = 16, max_new_tokens: int = 15, progress: bool = False):
        self.build, self.batch_size, self.max_new_tokens, self.progress = build, batch_size, max_new_tokens, progress
        self.built = None

    def predict(self, jobs: list[tuple[list[dict], str, object]]) -> list[tuple[list, dict, float]]:
        if self.built is None:
            self.built = self.build()
        out = []
        for rows, mode, task in jobs:
            started = time.perf_counter()
            preds, errors = predict_rows(for_task(self.built, task), rows, mode, self.batch_size, self.max_new_tokens)
            out.append((preds, errors, time.perf_counter() - started))
        return out
