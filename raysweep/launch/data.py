"""Ray Data pipelines: the training input of ``train.data_loader=ray_data`` and scenes made on the fly.

The training input (:func:`training_dataset`) is one row per training micro batch, so a batch is
never split or merged on its way::

    range(steps x workers)                          the epoch's batch numbers, train.data_batches_per_task a block
      -> map_batches(BatchStage)   train.data_cpus  RowsStage: this epoch's seeded permutation -> the batch's
                                                    positions -> rows (scenes rendered, or Parquet rows
                                                    taken), the training split's corruptions;
                                                    CollateStage: the family's collate -> ready tensors
      -> Ray Train: streaming_split(workers, equal=True) -> get_dataset_shard("train")
      -> iter_batches(batch_size=1, prefetch_batches)   in the Train worker

Rows and collate run in one task, so rendered images never travel through the object store (as two
``map_batches`` with equal resources, Ray would fuse them into one task anyway).

Batch ``i`` of epoch ``e`` holds entries ``i*B .. (i+1)*B-1`` of the permutation
:func:`raysweep.training.data.epoch_batches` deals (seed, epoch): with one worker the batches and
their order are exactly the ``worker`` loader's (``preserve_order``), with more workers each epoch
consumes the same first ``steps x B x workers`` entries, each once, dealt by Ray. The epoch reaches
the map tasks through :class:`EpochClock`, which rank 0 sets before every epoch: each epoch is one
execution of the dataset, started only when every worker has asked for it (Ray's split barrier).

The data stages run as Ray tasks on CPUs that are not the Train workers' (Ray Train excludes its
workers' resources from Ray Data's budget), one CPU each by default: a task runs a single-threaded
processor, and a fractional request let two tasks share the core next to the Train worker, which
then lost part of its own (measured: README, Data plane). A row that fails in a stage stops the run
with one line naming the dataset, the row and the reason (a :class:`~raysweep.errors.UserError`).
"""

from __future__ import annotations

import functools
import os
import pickle
import sys

import numpy as np
import ray

from raysweep._configlib import from_dict, to_dict
from raysweep.errors import UserError

SERVED: dict[int, list[list[int]]] = {}  # epoch (from 0) -> positions of the batches this process's worker was served (tests, debugging)
_CACHE: dict[str, object] = {}


@ray.remote(num_cpus=0, max_restarts=-1)
class EpochClock:
    """The epoch the training input serves now (from 0); rank 0 sets it before each epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def set(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def get(self) -> int:
        return self.epoch


def retire_on_cancel(fn):
    """A Ray Data task function that ends its worker process when Ray cancels it mid-call.

    Ray Data shuts an execution down (a Train worker failed, the consumer stopped) by cancelling its
    running tasks with ``ray.cancel(force=False)``: a ``KeyboardInterrupt`` raised wherever the task
    is, and the worker process is then reused for the next task. A stage imports torch and the
    family's processor lazily, on its first batch; an interrupt inside that import leaves the process
    with half-initialised modules that can never be imported again (torch: ``generic_type: cannot
    initialize type "RpcBackendOptions"``, ``name 'adadelta' is not defined``), so every later task
    placed there failed, and a run restarted after a worker fault died of it. Here the interrupted
    process exits instead (``os._exit``, status 1): the cancelled task stays cancelled, and Ray starts
    a clean worker for the next one. Called outside a Ray worker (a driver, a test) the interrupt
    propagates as usual.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            if ray._private.worker.global_worker.mode != ray.WORKER_MODE:  # a driver's Ctrl-C
                raise
            print(f"raysweep: Ray cancelled {fn.__name__} in worker {os.getpid()}; the process exits so that "
                  "no half-imported module is reused", file=sys.stderr, flush=True)  # fmt: skip
            os._exit(1)

    return wrapper


def _cached(kind: str, key: str, build):
    """One object per (kind, config) per process: Ray reuses its worker processes across tasks."""
    full = f"{kind}:{key}"
    if full not in _CACHE:
        for old in [k for k in _CACHE if k.startswith(f"{kind}:")]:
            del _CACHE[old]
        _CACHE[full] = build()
    return _CACHE[full]


def dataset_name(cfg) -> str:
    """How errors name the training source: ``synthetic`` or the Parquet set's name and folder."""
    data = cfg.data
    return "synthetic scenes" if data.source == "synthetic" else f"{data.source} ({data.parquet.get(data.source, '?')})"


class RowsStage:
    """Batch numbers -> the rows of those batches, in this epoch's permutation (the pipeline's first step)."""

    def __init__(self, run: dict, n_rows: int, n_batches: int, batch_size: int, clock, hooks=()):
        self.run, self.n_rows, self.n_batches, self.batch_size = run, n_rows, n_batches, batch_size
        self.clock, self.hooks = clock, list(hooks)

    def rows(self, ids) -> tuple[int, list[np.ndarray], list[list[dict]]]:
        """(epoch from the clock, each batch's (B,) positions, each batch's rows) of batch numbers ``ids``."""
        from raysweep.config import RunConfig
        from raysweep.training.data import epoch_batches, train_val_sources

        key = repr(self.run)
        cfg = _cached("cfg", key, lambda: from_dict(RunConfig, self.run))
        source = _cached("train_rows", key, lambda: train_val_sources(cfg)[0])
        epoch = ray.get(self.clock.get.remote())
        order = _cached("order", f"{key}:{epoch}",  # the epoch's whole deal, once per process (not per batch)
                        lambda: np.asarray(epoch_batches(self.n_rows, epoch, cfg.train.seed, 0, 1, self.n_batches, self.batch_size)))  # fmt: skip
        positions, rows = [], []
        phase = source.for_epoch(epoch)  # a curriculum's phase
        for i in map(int, ids):
            for hook in self.hooks:
                _call_hook(hook, "rows", epoch, i)
            positions.append(order[i])
            rows.append(phase.rows(order[i]))
        return epoch, positions, rows


class CollateStage:
    """Rows of a batch -> the family's ready training batch, pickled (the pipeline's second step)."""

    def __init__(self, run: dict, hooks=()):
        self.run, self.hooks = run, list(hooks)

    def collate(self, rows: list[dict], epoch: int, batch_id: int) -> bytes:
        """``family.collate(rows, train=True)`` pickled; a row that fails is one :class:`UserError` line."""
        from raysweep.config import RunConfig
        from raysweep.models import get_family
        from raysweep.tasks import training_task

        key = repr(self.run)
        cfg = _cached("cfg", key, lambda: from_dict(RunConfig, self.run))
        family = get_family(cfg.model.family)
        built = _cached("collator", repr(to_dict(cfg.model)) + repr(to_dict(cfg.data)),
                        lambda: family.build_collator(cfg.model, training_task(cfg.data)))  # fmt: skip
        if cfg.train.grounding_weight:  # the name positions and cells for the grounding loss (WorkerTrainer)
            built.extras.update(grounding=True, grounding_grid=cfg.data.grid_size)
        for hook in self.hooks:
            _call_hook(hook, "collate", epoch, batch_id)
        return pickle.dumps(collate_or_name_row(family, built, rows, dataset_name(cfg)), protocol=5)


class BatchStage:
    """Batch numbers -> ready training batches: :class:`RowsStage` then :class:`CollateStage` in one
    task (a Ray Data UDF), so a batch's rendered images never leave the process that collates them."""

    def __init__(self, rows: RowsStage, collate: CollateStage):
        self.rows_stage, self.collate_stage = rows, collate

    def __call__(self, batch: dict) -> dict:
        ids = batch["id"].tolist()
        epoch, positions, rows = self.rows_stage.rows(ids)
        out = [self.collate_stage.collate(r, epoch, i) for i, r in zip(ids, rows)]
        return {"id": np.asarray(ids, np.int64), "epoch": np.full(len(ids), epoch, np.int64),
                "positions": np.stack(positions).astype(np.int64), "batch": np.asarray(out, dtype=object)}  # fmt: skip


def collate_or_name_row(family, built, rows: list[dict], name: str) -> dict:
    """``family.collate(built, rows, train=True)``; when it fails, the first row that fails alone
    becomes one line: ``UserError("<dataset>: row <id>: <reason> ...")``."""
    try:
        return family.collate(built, rows, train=True)
    except UserError:
        raise
    except Exception as batch_err:  # noqa: BLE001 - any processor failure is named by its row
        for row in rows:
            try:
                family.collate(built, [row], train=True)
            except Exception as err:  # noqa: BLE001
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                row_id = row.get("scene_id", row.get("image_id", "?"))
                raise UserError(f"{name}: row {row_id}: {family.name} cannot collate it ({reason}); remove the row "
                                "or screen the set again with raysweep inspect") from None  # fmt: skip
        raise batch_err


def _call_hook(hook, stage: str, epoch: int, batch_id: int) -> None:
    """``(module:function, kwargs)``: a test's fault at a data stage, called with the stage, epoch and batch."""
    import importlib

    path, kwargs = hook
    module, _, name = path.partition(":")
    getattr(importlib.import_module(module), name)(stage=stage, epoch=epoch, batch_id=batch_id, **(kwargs or {}))


def training_dataset(cfg, n_rows: int, micro_steps: int, clock, hooks=()) -> "ray.data.Dataset":
    """The lazy training input of a RunConfig: ``micro_steps x num_workers`` rows per epoch, one per batch.

    Args:
        cfg: the RunConfig (``train.batch_size``, ``train.num_workers``, ``train.seed``, model, data).
        n_rows: rows of the training split (the permutation's length).
        micro_steps: micro batches per worker per epoch.
        clock: an :class:`EpochClock` handle, set by rank 0 before each epoch.
        hooks: ``("module:function", kwargs)`` called in the stages for every batch (tests' faults).

    Columns: ``id`` (batch number in the epoch), ``epoch``, ``positions`` (B,) row positions of the
    training split, ``batch`` (the pickled dict of tensors ``family.collate`` returned).
    """
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    run = to_dict(cfg)
    n_batches = micro_steps * cfg.train.num_workers
    per_task = min(cfg.train.data_batches_per_task, n_batches)
    ds = ray.data.range(n_batches, override_num_blocks=-(-n_batches // per_task))
    stage = BatchStage(RowsStage(run, n_rows, n_batches, cfg.train.batch_size, clock, hooks), CollateStage(run, hooks))
    return ds.map_batches(_batch_fn, fn_kwargs={"stage": stage}, batch_size=per_task, batch_format="numpy",
                          num_cpus=cfg.train.data_cpus)


@retire_on_cancel
def _batch_fn(batch: dict, stage: BatchStage) -> dict:
    return stage(batch)


def shard_batches(shard, n_batches: int, epoch: int, prefetch_batches: int = 2):
    """This worker's ``n_batches`` ready batches of ``epoch`` from its Ray Data shard (an iterator of dicts).

    Raises RuntimeError if the shard serves another epoch's rows or runs dry early (Ray Train splits
    the dataset equally, so every worker gets the same count and no collective waits on one).
    """
    taken = 0
    served = SERVED.setdefault(epoch, [])
    for old in [e for e in SERVED if e < epoch - 1]:
        del SERVED[old]
    for row in shard.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=prefetch_batches):
        if int(row["epoch"][0]) != epoch:
            raise RuntimeError(f"the training input served epoch {int(row['epoch'][0])} rows during epoch {epoch}")
        taken += 1
        served.append(row["positions"][0].tolist())
        yield pickle.loads(row["batch"][0])
        if taken == n_batches:
            return
    if taken < n_batches:
        raise RuntimeError(f"the training input ran dry after {taken} of {n_batches} batches in epoch {epoch}")


_END = object()


class EpochFeed:
    """A Train worker's batches of every epoch from its Ray Data shard, each epoch's pipeline started ahead.

    An epoch's execution (its tasks scheduled, its first batches rendered and collated) is started in
    a background thread before the loop asks for it: the first epoch's while the model is built, each
    next one's as soon as this one is safe to leave - with one worker once all its rows have arrived
    (a few steps before the epoch ends), with more after the epoch's last step (whose all-reduce
    means every rank holds all its rows, so no task of this epoch still reads the clock) - so it
    overlaps the epoch's last steps, validation and the checkpoint. Rank 0 sets the
    :class:`EpochClock` first; Ray starts the execution once every worker has asked. The batches
    are the same whenever the pipeline starts.
    """

    def __init__(self, shard, clock, rank: int, n_batches: int, epochs: int, prefetch_batches: int = 4, world_size: int = 1):
        self.shard, self.clock, self.rank, self.n_batches, self.epochs = shard, clock, rank, n_batches, epochs
        self.world_size = world_size
        self.prefetch_batches = prefetch_batches
        self.queues: dict[int, object] = {}

    def start(self, epoch: int) -> None:
        """Begin filling ``epoch``'s batches in the background (no-op past the last epoch or when started)."""
        import queue
        import threading

        if epoch >= self.epochs or epoch in self.queues:
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch_batches)
        self.queues[epoch] = q

        def fill() -> None:
            try:
                if self.rank == 0:
                    ray.get(self.clock.set.remote(epoch))
                for batch in shard_batches(self.shard, self.n_batches, epoch, self.prefetch_batches):
                    q.put(batch)
                q.put(_END)
                if self.world_size == 1:  # every row of this epoch is here: nobody else reads the clock
                    self.start(epoch + 1)
            except BaseException as err:  # noqa: BLE001 - handed to the loop, which raises it
                q.put(err)

        threading.Thread(target=fill, name=f"raysweep-epoch-{epoch}", daemon=True).start()

    def batches(self, epoch: int):
        """The ready batches of ``epoch``, in order; starts the next epoch's pipeline after the last one."""
        self.start(epoch)
        q = self.queues[epoch]
        taken = 0
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            taken += 1
            yield item
            if taken == self.n_batches:  # after the epoch's last step: its all-reduce means every rank has all its rows
                self.start(epoch + 1)
        del self.queues[epoch]


def _scene_tools(cfg):
    """The task's scene set and the Renderer of ``cfg``, built once per worker process."""
    from raysweep.scenes import Renderer
    from raysweep.tasks import task_for

    return _cached("scene_tools", repr(to_dict(cfg)), lambda: (task_for(cfg).scenes(cfg), Renderer(cfg)))


@retire_on_cancel
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
