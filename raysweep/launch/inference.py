"""Evaluation as Ray Data batch inference: eval rows -> ``map_batches`` over a pool of model replicas.

::

    from_items(rows of every (set, mode) job, pickled)        one row per eval row, with its job and index
      -> map_batches(Replica, concurrency=replicas,            each replica (a Ray actor: one GPU on a GPU
                     num_gpus=1 | num_cpus=c)                  cluster) builds the model once, then predicts
      -> predictions in the rows' order (preserve_order), matched back by (job, index)

All sets and modes of one model go through one execution, so a replica builds its model once per
model (base, then the adapter). The final evaluation of `raysweep train`/`sweep` takes by default
the resources its finished run released (``train.num_workers`` replicas of ``train.cpus_per_worker``
CPUs and a GPU each with ``train.use_gpu``) - never more, so queued trials are not starved;
`raysweep eval` one replica of ``eval.replica_cpus``. ``eval.replicas`` overrides both.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import ray

from raysweep._configlib import from_dict, to_dict


class Replica:
    """A Ray Data UDF actor holding one model: batches of pickled rows -> predictions."""

    def __init__(self, model: dict, build_task, adapter: bytes | None, threads: int, batch_size: int, max_new_tokens: int,
                 jobs: list[tuple[str, object]]):  # fmt: skip
        import tempfile

        import torch

        from raysweep.models import get_family
        from raysweep.models.config import ModelConfig

        torch.set_num_threads(threads)
        cfg = from_dict(ModelConfig, model)
        self.family = get_family(cfg.family)
        self.built = self.family.build(cfg, build_task)
        if adapter is not None:
            with tempfile.TemporaryDirectory() as tmp:
                _unpack(adapter, Path(tmp))
                self.built = self.family.load_adapter(self.built, Path(tmp))
        self.batch_size, self.max_new_tokens, self.jobs = batch_size, max_new_tokens, jobs  # jobs: (mode, task) each

    def __call__(self, batch: dict) -> dict:
        from raysweep.evaluate import for_task, predict_rows

        started = time.time()
        jobs = batch["job"]
        out = {"job": jobs, "index": batch["index"], "area": np.zeros(len(jobs), np.int64), "text": np.empty(len(jobs), dtype=object),
               "new_tokens": np.zeros(len(jobs), np.int64), "error": np.empty(len(jobs), dtype=object)}  # fmt: skip
        for job in np.unique(jobs):  # a batch may straddle two jobs (sets or modes)
            where = np.flatnonzero(jobs == job)
            mode, task = self.jobs[int(job)]
            rows = [pickle.loads(batch["row"][i]) for i in where]
            preds, errors = predict_rows(for_task(self.built, task), rows, mode, self.batch_size, self.max_new_tokens)
            for k, (i, p) in enumerate(zip(where, preds)):
                out["area"][i], out["text"][i], out["new_tokens"][i] = p.area, p.text, p.new_tokens
                out["error"][i] = errors.get(k, "")
        out["started"] = np.full(len(jobs), started)
        out["finished"] = np.full(len(jobs), time.time())
        return out


class RayDataPredictor:
    """Predictions of one model by ``replicas`` Ray Data replicas; the same interface as
    :class:`raysweep.evaluate.LocalPredictor` (jobs ``(rows, mode, task)`` -> ``(predictions,
    errors, seconds)`` each, in order; ``seconds`` is the whole execution's, replica start-up
    excluded, shared by its jobs in proportion to their rows)."""

    def __init__(self, model_cfg, build_task, adapter_dir=None, replicas: int = 1, cpus: float = 1.0, gpus: float = 0,
                 threads: int = 1, batch_size: int = 16, max_new_tokens: int = 15):  # fmt: skip
        self.model, self.build_task, self.adapter_dir = to_dict(model_cfg), build_task, adapter_dir
        self.replicas, self.cpus, self.gpus, self.threads = replicas, cpus, gpus, threads
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.last_rows_per_s = 0.0  # rows / (last batch finished - first batch started), replica start-up excluded

    def predict(self, jobs: list[tuple[list[dict], str, object]]) -> list[tuple[list, dict, float]]:
        from ray.data import DataContext

        from raysweep.models.base import Prediction

        if not jobs or not sum(len(rows) for rows, _, _ in jobs):
            return [([], {}, 0.0) for _ in jobs]
        context = DataContext.get_current()
        context.enable_progress_bars, context.print_on_execution_start = False, False
        context.execution_options.preserve_order = True
        items = [{"job": j, "index": i, "row": pickle.dumps(row, protocol=5)} for j, (rows, _, _) in enumerate(jobs) for i, row in enumerate(rows)]
        blocks = max(self.replicas, -(-len(items) // self.batch_size))
        adapter = _pack(Path(self.adapter_dir)) if self.adapter_dir is not None else None
        ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            Replica, fn_constructor_kwargs={"model": self.model, "build_task": self.build_task, "adapter": adapter, "threads": self.threads,
                                            "batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens,
                                            "jobs": [(mode, task) for _, mode, task in jobs]},
            batch_size=self.batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=self.replicas),
            num_cpus=self.cpus, num_gpus=self.gpus,
        )  # fmt: skip
        got = ds.select_columns(["job", "index", "area", "text", "new_tokens", "error", "started", "finished"]).take_all()
        seconds = max(r["finished"] for r in got) - min(r["started"] for r in got)
        self.last_rows_per_s = len(got) / seconds if seconds > 0 else 0.0
        total = len(got)
        out = []
        for j, (rows, _, _) in enumerate(jobs):
            mine = sorted((r for r in got if r["job"] == j), key=lambda r: r["index"])
            if [r["index"] for r in mine] != list(range(len(rows))):
                raise RuntimeError(f"batch inference returned {len(mine)} of {len(rows)} predictions of job {j}")
            preds = [Prediction(int(r["area"]), str(r["text"] or ""), None, int(r["new_tokens"])) for r in mine]
            errors = {int(r["index"]): r["error"] for r in mine if r["error"]}
            if errors and len(errors) == len(rows):
                raise RuntimeError(f"every row failed to predict: {next(iter(errors.values()))}")
            out.append((preds, errors, seconds * len(rows) / total))
        return out


def final_eval_predictor(cfg):
    """``predictor_for(adapter_dir)`` of a finished run's final evaluation: the resources it released."""
    from raysweep.tasks import training_task

    replicas = cfg.eval.replicas or cfg.train.num_workers
    return lambda adapter: RayDataPredictor(cfg.model, training_task(cfg.data), adapter, replicas, cfg.train.cpus_per_worker,
                                            1 if cfg.train.use_gpu else 0, cfg.train.threads, cfg.eval.batch_size,
                                            cfg.eval.max_new_tokens)  # fmt: skip


def _pack(directory: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(directory), arcname=".")
    return buf.getvalue()


def _unpack(blob: bytes, directory: Path) -> None:
    import io
    import tarfile

    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(directory, filter="data")
