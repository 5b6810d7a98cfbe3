"""``raysweep train``: one fine-tuning run as a Ray Train job, tracked in MLflow.

The driver creates the MLflow run, starts a ``TorchTrainer`` whose workers run
:func:`train_loop_per_worker` (the core's :func:`~raysweep.training.loop.run_epochs` over a DeepSpeed or
DDP :class:`~raysweep.training.engine.WorkerTrainer`, fed and reported by Ray Train),
then evaluates the base model and the best adapter on the eval sets as Ray Data batch inference on
model replicas (:mod:`raysweep.launch.inference`) and logs everything: params, per-epoch metrics, test metrics, heatmaps, the adapter, optionally a
registered model version with an alias.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import ray.train
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, LoggingConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from raysweep import storage
from raysweep._configlib import flatten, from_dict, to_dict
from raysweep.config import RunConfig
from raysweep.tracking import RunLogger, register_adapter, registry_tags, tracking_uri
from raysweep.training.loop import ConsoleProgress, LoopCallback, load_callback, run_epochs


SWITCHES_CURRICULUM_PHASES = True  # each epoch's rows come from train_src.for_epoch(epoch) (pre-flight reads this)


def quiet_library_warnings() -> None:
    """Deprecation chatter of torch/transformers/DeepSpeed in every worker's log helps nobody."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    try:  # Ray Train's worker logs every report's whole metrics dict at INFO, under a logger named by its file path
        import logging

        from ray.train.v2._internal.execution import context

        logging.getLogger(context.__file__).setLevel(logging.WARNING)
    except (ImportError, AttributeError):  # a private module: gone or moved, the lines come back, nothing breaks
        pass


class RayTrainReport(LoopCallback):
    """The loop's reports on a Ray Train worker: MLflow and the sweep's ledger (rank 0), then
    ``ray.train.report`` with the checkpoint.

    Each epoch is logged once whatever restarts happen (a worker group restarted from an older
    checkpoint reports an epoch again), and nothing is logged for a trial the ledger holds as
    stopped or completed (an orphaned worker of a stopped trial goes on for a moment).
    """

    def __init__(self, logger: RunLogger | None, ledger=None, trial_id: str = ""):
        self.logger, self.ledger, self.trial_id = logger, ledger, trial_id

    def report(self, ctx, metrics: dict, checkpoint: Path | None) -> None:
        if ctx.rank == 0 and self.logger:
            if self.ledger is None or self.ledger.state(self.trial_id).status not in ("stopped_early", "completed"):
                if self.ledger is not None:
                    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                    self.ledger.record(self.trial_id, "epoch", epoch=ctx.epoch, metrics=numbers)
                if not self.logger.has_step("train/loss", ctx.epoch):
                    self.logger.log_metrics(metrics, step=ctx.epoch)
        kept = Checkpoint.from_directory(str(checkpoint)) if checkpoint else None
        ray.train.report(metrics, checkpoint=kept, checkpoint_dir_name=f"epoch-{ctx.epoch:03d}" if kept else None)


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: :func:`~raysweep.training.loop.run_epochs` fed by Ray. Reads only ``config``.

    ``config["loop_callbacks"]``: ``(module:Class, kwargs)`` pairs of extra loop callbacks built
    here (how tests inject faults at the loop's hooks).
    """
    from raysweep.training.data import epoch_batches, limit_rows, steps_per_epoch, train_val_sources
    from raysweep.training.engine import TrainState, WorkerTrainer

    quiet_library_warnings()
    cfg = from_dict(RunConfig, config["run"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    train_src, val_src = train_val_sources(cfg)
    val_src = limit_rows(val_src, cfg.train.val_limit, cfg.train.seed)
    n_steps = steps_per_epoch(len(train_src), cfg.train.batch_size, world, cfg.train.grad_accum, cfg.train.steps_per_epoch)
    micro_steps = n_steps * cfg.train.grad_accum
    checkpoint = ray.train.get_checkpoint()
    feed = None
    if cfg.train.data_loader == "ray_data":  # the first epoch's pipeline starts now, while the model is built
        from raysweep.launch.data import EpochFeed

        feed = EpochFeed(ray.train.get_dataset_shard("train"), config["epoch_clock"], rank, micro_steps, cfg.train.epochs,
                         cfg.train.prefetch_batches, world)  # fmt: skip
        feed.start(_checkpoint_epoch(checkpoint))
    trainer = WorkerTrainer(cfg, rank, world, device if device.type == "cuda" else None, total_steps=n_steps * cfg.train.epochs)
    logger = RunLogger(config["mlflow_uri"], config["run_id"]) if rank == 0 and config.get("run_id") else None
    if logger and not config.get("resumed"):
        logger.log_params({"trainable_params": trainer.trainable_params, "total_params": trainer.built.total_params,
                           "strategy": trainer.strategy, "world_size": world, "steps_per_epoch": n_steps,
                           "train_rows": len(train_src), "val_rows": len(val_src)})  # fmt: skip

    state = TrainState()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = trainer.load(Path(directory))
        if rank == 0:
            print(f"resumed from epoch {state.epoch} (step {state.step})", flush=True)

    def batches(epoch: int):
        if feed is not None:  # rendered and collated by raysweep.launch.data's pipeline
            return feed.batches(epoch)
        positions = epoch_batches(len(train_src), epoch, cfg.train.seed, rank, world, micro_steps, cfg.train.batch_size)
        rows = train_src.for_epoch(epoch)  # a data.curriculum's phase; the source itself otherwise
        return (trainer.prepare(rows.rows(p)) for p in positions)

    callbacks = [ConsoleProgress(micro_steps, cfg.train.batch_size, cfg.train.log_every)] if rank == 0 else []
    ledger = None
    if config.get("ledger"):
        from raysweep.sweep.ledger import Ledger, load_listeners

        ledger = Ledger(config["ledger"]["location"], load_listeners(config["ledger"]["callbacks"]))
    callbacks += [RayTrainReport(logger, ledger, (config.get("ledger") or {}).get("trial_id", "")), *(load_callback(path, kwargs) for path, kwargs in config.get("loop_callbacks", []))]
    run_epochs(trainer, cfg.train, batches, lambda: trainer.validate(val_src, cfg.eval.batch_size), state, callbacks,
               rank=rank, world_size=world)  # fmt: skip


def _checkpoint_epoch(checkpoint) -> int:
    """Epochs completed in a Ray Train checkpoint (0 without one), read before any model is built."""
    if not checkpoint:
        return 0
    from raysweep.training.engine import STATE_FILE

    with checkpoint.as_directory() as directory:
        return int(json.loads((Path(directory) / STATE_FILE).read_text())["epoch"])


@dataclass
class TrainingOutcome:
    run_id: str
    run_dir: Path
    adapter_dir: Path | None
    metrics: dict
    history: list[dict]
    registered_version: int | None = None
    tracking_uri: str = ""


def default_run_name(cfg) -> str:
    return cfg.train.name or f"{cfg.model.family}-{time.strftime('%Y%m%d-%H%M%S')}"


# Ray Train V2 sends a worker's print() to Train's logger and - because Ray wraps the worker's
# sys.stdout - also to the original print, so every line printed in a worker (the epoch lines, the
# final evaluation's) reaches the driver twice. Ray's own switch for that patch turns it off; the
# lines still reach the driver once, through Ray's log streaming. Merged with a job's runtime_env
# (Ray merges the two since 2.8).
WORKER_ENV_VARS = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def worker_runtime_env(**env_vars: str) -> dict:
    """The ``runtime_env`` raysweep's ``ray.init`` calls give: :data:`WORKER_ENV_VARS` plus ``env_vars``."""
    return {"env_vars": {**WORKER_ENV_VARS, **env_vars}}


def init_ray() -> None:
    """Connect to $RAY_ADDRESS or start a local Ray once per process (workers get :data:`WORKER_ENV_VARS`)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if ray.is_initialized():
        return
    # The dashboard serves the state API that Ray Train's placement-group cleaner polls; without
    # it the log fills with "Failed to query Ray Train Controller actor state".
    ray.init(log_to_driver=True, runtime_env=worker_runtime_env(), **local_ray_options())


def local_ray_options() -> dict:
    """``ray.init`` options of a Ray raysweep starts itself (none when joining $RAY_ADDRESS).

    Ray keeps at most one idle worker process per CPU and kills the others after a second; on a
    small machine the ray_data pipeline's fractional-CPU tasks then lose their processes between
    epochs (validation runs meanwhile), and every epoch re-imports torch and transformers and
    rebuilds the processor in new ones (seconds of waiting, measured). A soft limit of 4 processes
    per CPU (at least 8) keeps them.
    """
    if os.environ.get("RAY_ADDRESS"):
        return {}
    return {"_system_config": {"num_workers_soft_limit": max(8, 4 * (os.cpu_count() or 1))}}


def run_training(cfg, parent_run_id: str | None = None, callbacks: list | None = None, tags: dict | None = None,
                 register: bool | None = None, quiet: bool = False, reuse_tag: tuple[str, str] | None = None,
                 loop_callbacks: list[tuple[str, dict]] | None = None, on_trained=None,
                 ledger: dict | None = None, base_cache: str | None = None,
                 data_hooks: list[tuple[str, dict]] | None = None) -> TrainingOutcome:  # fmt: skip
    """Fine-tune ``cfg`` on Ray Train, evaluate base vs fine-tuned, log it all to MLflow.

    ``reuse_tag=(key, value)`` continues the MLflow run carrying that tag (a restarted sweep trial)
    instead of starting another; Ray Train resumes from the run's latest checkpoint by its name.
    ``callbacks`` are Ray Train's (the driver's); ``loop_callbacks`` are ``("module:Class", kwargs)``
    pairs that every worker builds and hands to the training loop (tests inject faults this way).
    ``on_trained()`` is called when training has ended, before the final evaluation.
    ``ledger``: ``{"location", "trial_id", "callbacks"}`` of a sweep trial: rank 0 records each epoch
    there and logs nothing for a trial the ledger holds as stopped or completed. ``base_cache``: a
    sweep's base-evaluation cache (:mod:`raysweep.training.base_cache`). ``data_hooks``:
    ``("module:function", kwargs)`` pairs the ray_data pipeline's stages call for every batch (tests'
    faults, :mod:`raysweep.launch.data`).
    """
    import yaml

    from raysweep.sweep.paths import resolve_paths

    init_ray()
    # The workers start in folders of their own, not the driver's: relative input paths (a local
    # model.checkpoint, datasets, eval sets, the DeepSpeed file) are made absolute here, where they mean
    # what the user meant. A sweep trial's are already absolute (raysweep.sweep.paths).
    cfg = resolve_paths(copy.deepcopy(cfg), Path.cwd())
    name = default_run_name(cfg)
    uri = tracking_uri(cfg.mlflow)
    tags = {"raysweep.family": cfg.model.family, "raysweep.checkpoint": cfg.model.checkpoint, **(tags or {})}
    resolved = to_dict(cfg)
    logger = RunLogger.find(uri, cfg.mlflow.experiment, *reuse_tag) if reuse_tag else None
    resumed = logger is not None
    if logger is None:
        logger = RunLogger.start(uri, cfg.mlflow.experiment, name, parent_run_id, tags)
    run_location = storage.join(cfg.train.storage_path, name)
    run_dir = Path(run_location) if not storage.is_uri(run_location) else None
    order = "min" if cfg.train.early_stop_metric.endswith("loss") else "max"
    try:  # from here on the run exists in MLflow: whatever fails ends it FAILED (KILLED on Ctrl-C), never RUNNING
        if not resumed:
            logger.log_params({**flatten(resolved), "family": cfg.model.family, "base_checkpoint": cfg.model.checkpoint})
        datasets, data_config, clock = None, None, None
        if cfg.train.data_loader == "ray_data":
            datasets, data_config, clock = _ray_data_input(cfg, data_hooks)
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"run": resolved, "mlflow_uri": uri, "run_id": logger.run_id, "resumed": resumed, "ledger": ledger,
                               "loop_callbacks": list(loop_callbacks or []), "epoch_clock": clock},
            datasets=datasets,
            dataset_config=data_config,
            scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                                         resources_per_worker={"CPU": cfg.train.cpus_per_worker}),
            run_config=ray.train.RunConfig(
                name=name, **storage.ray_storage(cfg.train.storage_path), callbacks=callbacks or None,
                failure_config=FailureConfig(max_failures=cfg.train.max_failures),
                logging_config=LoggingConfig(log_level="WARNING"),
                checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints,
                                                   checkpoint_score_attribute=cfg.train.early_stop_metric,
                                                   checkpoint_score_order=order),
            ),
        )  # fmt: skip
        result = trainer.fit()
    except BaseException:
        logger.end("FAILED" if not isinstance(sys.exc_info()[1], KeyboardInterrupt) else "KILLED")
        raise
    try:
        if on_trained is not None:
            on_trained()
        outcome = _evaluate_and_log(cfg, result, logger, uri, resolved, run_dir, run_location, order, register, quiet, base_cache)
    except BaseException:  # nor when the final evaluation or registration fails
        logger.end("FAILED" if not isinstance(sys.exc_info()[1], KeyboardInterrupt) else "KILLED")
        raise
    if not quiet:
        print(format_final_table(cfg, outcome))
    return outcome


def _ray_data_input(cfg, hooks=None):
    """``datasets``, ``dataset_config`` and the :class:`~raysweep.launch.data.EpochClock` of a ray_data run.

    Order is preserved so that one worker's batches are exactly the ``worker`` loader's (an exact
    resume); Ray Train keeps its workers' CPUs out of Ray Data's budget.
    """
    from ray.data import ExecutionOptions
    from ray.train import DataConfig

    from raysweep.launch.data import EpochClock, training_dataset
    from raysweep.training.data import steps_per_epoch, train_val_sources

    n_rows = len(train_val_sources(cfg)[0])
    micro_steps = cfg.train.grad_accum * steps_per_epoch(n_rows, cfg.train.batch_size, cfg.train.num_workers,
                                                         cfg.train.grad_accum, cfg.train.steps_per_epoch)  # fmt: skip
    clock = EpochClock.remote()
    options = ExecutionOptions(preserve_order=True)
    dataset = training_dataset(cfg, n_rows, micro_steps, clock, hooks or ())
    return {"train": dataset}, DataConfig(datasets_to_split=["train"], execution_options=options), clock


def _evaluate_and_log(cfg, result, logger, uri, resolved, run_dir, run_location, order, register, quiet, base_cache):
    """The end of a run: final evaluation, artifacts, best adapter, registration; the run ends FINISHED."""
    import yaml

    best = _best_checkpoint(result, cfg.train.early_stop_metric, order)
    metrics: dict = {}
    adapter_dir = history = None
    with tempfile.TemporaryDirectory() as tmp:
        if best is not None:
            with best.as_directory() as directory:
                history = json.loads((Path(directory) / "trainer_state.json").read_text())["history"]
                adapter_dir = Path(tmp) / "adapter"
                shutil.copytree(Path(directory) / "adapter", adapter_dir)
        if not quiet:
            print("evaluating base and fine-tuned models on the eval sets ...", flush=True)
        metrics = _final_eval(cfg, adapter_dir, Path(tmp) / "eval", quiet, base_cache)
        base_from = Path(tmp) / "eval" / "base_from.json"
        if base_from.is_file():  # where each set's base metrics came from (a sweep's shared cache, or evaluated here)
            logger.set_tags({"raysweep.base_from": ",".join(f"{k}={v}" for k, v in json.loads(base_from.read_text()).items())})
        logger.log_metrics(metrics)
        logger.log_artifacts(Path(tmp) / "eval", "eval")
        if adapter_dir is not None:
            (adapter_dir / "run_config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
            logger.log_artifacts(adapter_dir, "adapter")
            if run_dir:
                shutil.rmtree(run_dir / "best_adapter", ignore_errors=True)
                shutil.copytree(adapter_dir, run_dir / "best_adapter")
            else:
                storage.upload_folder(adapter_dir, storage.join(run_location, "best_adapter"))
        version = None
        if adapter_dir is not None and (cfg.mlflow.register if register is None else register):
            version = register_adapter(
                uri, logger.run_id, adapter_dir, yaml.safe_dump(resolved, sort_keys=False),
                cfg.mlflow.registered_model or f"raysweep-{cfg.model.family}", cfg.mlflow.alias,
                {**registry_tags(resolved), "run_id": logger.run_id},
            )  # fmt: skip
    logger.end("FINISHED")
    return TrainingOutcome(logger.run_id, run_dir or Path("."), (run_dir / "best_adapter") if run_dir and adapter_dir else None,
                           metrics, history or [], version, uri)  # fmt: skip


def _best_checkpoint(result, metric: str, order: str):
    candidates = [(c, m) for c, m in (result.best_checkpoints or []) if metric in m]
    if not candidates:
        return result.checkpoint
    pick = min if order == "min" else max
    return pick(candidates, key=lambda cm: cm[1][metric])[0]


BASE_WAIT_S = 3600  # how long a trial waits for the base evaluation its sweep's driver started


def _final_eval(cfg, adapter_dir, out_dir: Path, quiet: bool, base_cache: str | None = None) -> dict:
    """Base and fine-tuned models on the eval sets, as Ray Data batch inference on the model replicas
    the finished run's resources allow (:mod:`raysweep.launch.inference`); scored and reported here."""
    if not cfg.train.eval_sets:
        return {}
    from raysweep.launch.inference import final_eval_predictor
    from raysweep.training.final_eval import evaluate_sets

    return evaluate_sets(cfg, adapter_dir, out_dir, progress=not quiet, base_cache=base_cache, wait_s=BASE_WAIT_S,
                         predictor_for=final_eval_predictor(cfg))  # fmt: skip


def base_eval_task(run: dict, base_cache: str) -> int:
    """Evaluate one base model on its config's eval sets into a sweep's cache (a Ray task of the driver).

    A failure removes nothing but the ``pending`` marks, so waiting trials evaluate for themselves.
    """
    from raysweep.training.base_cache import BaseCache, base_key
    from raysweep.training.final_eval import evaluate_sets

    quiet_library_warnings()
    cfg = from_dict(RunConfig, run)
    cache = BaseCache(base_cache)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            evaluate_sets(cfg, None, Path(tmp), progress=False, base_cache=base_cache)
    except Exception:
        for s in cfg.train.eval_sets:
            cache.clear_pending(base_key(cfg, s))
        raise
    return len(cfg.train.eval_sets)


def format_final_table(cfg, outcome: TrainingOutcome) -> str:
    """Base against fine-tuned accuracy per eval set."""
    lines = ["", f"run {outcome.run_id}  (MLflow experiment '{cfg.mlflow.experiment}')",
             f"{'eval set':20s} {'base':>8s} {'fine-tuned':>11s}"]  # fmt: skip
    for s in cfg.train.eval_sets:
        base = outcome.metrics.get(f"base/{s.name}/acc")
        tuned = outcome.metrics.get(f"test/{s.name}/acc")
        fmt = lambda v: f"{v:.1%}" if v is not None else "-"  # noqa: E731
        lines.append(f"{s.name:20s} {fmt(base):>8s} {fmt(tuned):>11s}")
    if outcome.adapter_dir:
        lines.append(f"best adapter: {outcome.adapter_dir}")
    if outcome.registered_version:
        lines.append(f"registered: models:/{cfg.mlflow.registered_model or 'raysweep-' + cfg.model.family}@{cfg.mlflow.alias} (version {outcome.registered_version})")
    return "\n".join(lines)
