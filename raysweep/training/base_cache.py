"""Base-model evaluations shared by a sweep's trials: each (base model, eval set) is evaluated once.

Every trial of a grid sweep used to evaluate the same base model again on the same eval sets; on a
7B model with the paper's eval sets that is the largest avoidable cost of a sweep. The cache lives
with the sweep (``<sweep storage>/<name>/base_cache/``), survives ``--resume`` and is keyed by what
determines the result, so it is never used across different keys:

* the whole resolved ``model`` and ``eval`` sections,
* the task the model is built for (the tiny models' tokenizer is made from its answers),
* the eval set's identity (:func:`raysweep.provenance.eval_set_identity`: a Parquet set's content
  hash, or a rendered set's resolved data config and limit).

Layout of one entry ``<key>/``: ``metrics.json`` (written last: an entry without it is incomplete),
``reports/`` (the evaluation's JSON, predictions and heatmaps), ``pending.json`` (the sweep's driver
has started this evaluation; trials wait for it instead of repeating it) and one
``evaluated-<random>.json`` per evaluation that actually ran, which is what
``sweep/base_evaluations`` counts. No Ray here.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

from raysweep import storage

CACHE_DIR = "base_cache"
REPLICA_KEYS = ("replicas", "replica_cpus")  # how many model replicas evaluate, and their CPUs: not part of a result


def base_key(cfg, eval_set) -> str:
    """The cache key of evaluating ``cfg``'s base model on one ``train.eval_sets`` entry (hex SHA-256)."""
    from raysweep._configlib import to_dict
    from raysweep.provenance import eval_set_identity

    payload = {
        "model": to_dict(cfg.model),
        "eval": {k: v for k, v in to_dict(cfg.eval).items() if k not in REPLICA_KEYS},  # results do not depend on them
        "task": {k: v for k, v in to_dict(cfg.data).items() if k in ("task", "area_names", "areas_per_side")},
        "set": eval_set_identity(eval_set),
        "set_name": eval_set.name,  # metric keys carry the name
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


class BaseCache:
    """Cached base-model metrics and reports under ``location`` (a local folder or a URI)."""

    def __init__(self, location: str):
        self.location = location

    def _at(self, key: str, *parts: str) -> str:
        return storage.join(self.location, key, *parts)

    def get(self, key: str) -> dict | None:
        """``{"metrics": {...}, "key": key}`` of a complete entry, or None."""
        path = self._at(key, "metrics.json")
        return storage.read_json(path) if storage.exists(path) else None

    def pending(self, key: str) -> bool:
        return storage.exists(self._at(key, "pending.json"))

    def mark_pending(self, key: str) -> None:
        storage.write_json(self._at(key, "pending.json"), {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})

    def clear_pending(self, key: str) -> None:
        fs, path = storage.filesystem(self._at(key, "pending.json"))
        if storage.exists(self._at(key, "pending.json")):
            fs.delete_file(path)

    def put(self, key: str, metrics: dict, reports: Path) -> None:
        """Store one evaluation's metrics and its reports folder; counts as one evaluation that ran."""
        storage.write_json(self._at(key, f"evaluated-{uuid.uuid4().hex[:8]}.json"), {"time": time.time(), "host": socket.gethostname()})
        if self.get(key) is None:
            storage.upload_folder(reports, self._at(key, "reports"))
            storage.write_json(self._at(key, "metrics.json"), {"key": key, "metrics": metrics})

    def fetch_reports(self, key: str, dst: Path) -> None:
        """Copy an entry's reports into the local folder ``dst``."""
        import pyarrow.fs as pafs

        fs, path = storage.filesystem(self._at(key, "reports"))
        dst.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(path, str(dst), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())

    def wait(self, key: str, timeout_s: float, poll_s: float = 2.0) -> dict | None:
        """The entry, waiting up to ``timeout_s`` while the driver's evaluation of it is pending."""
        deadline = time.time() + timeout_s
        while True:
            hit = self.get(key)
            if hit is not None or not self.pending(key) or time.time() >= deadline:
                return hit
            time.sleep(poll_s)

    def evaluations(self) -> int:
        """How many base evaluations actually ran (both modes of one set count once)."""
        return sum(1 for rel in storage.list_files(self.location) if rel.rsplit("/", 1)[-1].startswith("evaluated-"))


def evaluate_base_sets(cfg, out_dir: Path, cache: BaseCache | None, evaluate, wait_s: float = 0.0) -> tuple[dict, dict]:
    """Base metrics of every eval set, from ``cache`` where it holds them, the rest by one ``evaluate`` call.

    Args:
        evaluate: ``[(set_index, report_folder), ...] -> [metrics, ...]``: evaluates the base model on
            those sets together (one model build for all), writing each set's reports in its folder.
        wait_s: how long to wait for an evaluation the sweep's driver has started.

    Returns:
        (metrics, where each set's came from: ``{set name: "evaluated" | "cache:<key>"}``)
    """
    metrics: dict = {}
    source: dict = {}
    missing = []
    for i, eval_set in enumerate(cfg.train.eval_sets):
        key = base_key(cfg, eval_set) if cache else None
        hit = cache.wait(key, wait_s) if cache else None
        if hit is not None:
            metrics.update(hit["metrics"])
            cache.fetch_reports(key, Path(out_dir) / eval_set.name)
            source[eval_set.name] = f"cache:{key}"
        else:
            missing.append((i, key))
    if not missing:
        return metrics, source
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / str(i) for i, _ in missing]
        for (i, key), folder, found in zip(missing, folders, evaluate([(i, f) for (i, _), f in zip(missing, folders)])):
            name = cfg.train.eval_sets[i].name
            folder.mkdir(parents=True, exist_ok=True)
            if cache:
                cache.put(key, found, folder)
            storage.upload_folder(str(folder), str(Path(out_dir) / name))
            metrics.update(found)
            source[name] = "evaluated"
    return metrics, source
