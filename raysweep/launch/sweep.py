"""``raysweep sweep``: a Ray Tune search whose trials are full Ray Train runs.

Tune calls :func:`trial_fn`, a function trainable that builds the trial's config and runs
:func:`raysweep.launch.train.run_training` with a ``TuneReportCallback`` (the current Train V2
integration, not the deprecated ``Tuner(trainer)``), so every epoch's report reaches ASHA. MLflow
gets a parent run per sweep and a child per trial; at the end the summary (best trial per group)
is printed and logged, and the best adapter of each group is registered.

Every trial's state transitions go to raysweep's ledger (:mod:`raysweep.sweep.ledger`): the trial
records ``started``/``trained``/``completed``/``errored``, its Train worker (rank 0) each epoch when
the epoch's checkpoint is reported, the driver the scheduler's stops as ASHA decides them. Summaries, the exit status and ``--resume`` read the
ledger, not Tune's trial statuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from raysweep import storage
from raysweep._configlib import flatten, to_dict
from raysweep.launch.console import BoardCallback, init_sweep_ray
from raysweep.launch.resources import check_data_cpus, cluster_gpu_check, concurrent_trials, trial_resources
from raysweep.launch.train import init_ray
from raysweep.sweep.ledger import LEDGER_DIR, Ledger, load_listeners, sweep_exit_status
from raysweep.sweep.space import check_space, trial_config, trial_count
from raysweep.tracking import RunLogger, register_adapter, tracking_uri
from raysweep.training.base_cache import CACHE_DIR, BaseCache

STATE_FILE = "raysweep_sweep.json"
# Tune uploads its experiment state (the trial list --resume restores) at most every sync_period
# (5 minutes by default): a driver killed before the first upload leaves a state without trials
# on remote storage, and --resume would start them again from scratch with empty configs.
STATE_SYNC_S = 10


def _space_to_tune(space: dict) -> dict:
    kinds = {"grid": tune.grid_search, "choice": tune.choice, "uniform": lambda v: tune.uniform(*v),
             "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}  # fmt: skip
    return {key: kinds[kind](values) for key, spec in space.items() for kind, values in spec.items()}


def _ledger(config: dict) -> Ledger:
    return Ledger(config["ledger"], load_listeners(config.get("callbacks", [])))


def trial_fn(config: dict) -> None:
    """One Tune trial: a full training run, its epochs reported to Tune, its transitions to the ledger.

    A trial the ledger already holds as completed or stopped by the scheduler (a resume after the
    driver died) only repeats its last result to Tune and returns: nothing is trained again.
    """
    from raysweep.errors import find_user_error
    from raysweep.launch.train import run_training

    trial_id = tune.get_context().get_trial_id()
    ledger = _ledger(config)
    state = ledger.state(trial_id)
    if state.status in ("completed", "stopped_early"):
        if state.last_metrics:
            tune.report(state.last_metrics)
        return
    ledger.record(trial_id, "started", values=config["values"])
    cfg = trial_config(config["base"], config["values"], Path(config["configs_root"]))
    cfg.train.name = trial_id
    cfg.train.storage_path = config["trials_path"]
    tags = {"raysweep.role": "trial", "raysweep.sweep": config["sweep"], "raysweep.trial_id": trial_id,
            "raysweep.trial_status": "running", **config.get("provenance", {}),
            **{f"raysweep.space.{k}": str(v) for k, v in config["values"].items()}}  # fmt: skip
    reporter = CountingReport()
    try:
        outcome = run_training(cfg, parent_run_id=config["parent_run_id"], callbacks=[reporter], tags=tags,
                               register=False, quiet=True, reuse_tag=("raysweep.trial_id", trial_id),
                               loop_callbacks=config.get("loop_callbacks"), on_trained=lambda: ledger.record(trial_id, "trained"),
                               ledger={"location": config["ledger"], "trial_id": trial_id, "callbacks": config.get("callbacks", [])},
                               base_cache=config.get("base_cache"))  # fmt: skip
    except Exception as err:
        user = find_user_error(err)
        ledger.record(trial_id, "errored", error=str(user or err).strip().splitlines()[-1][:500] if str(user or err).strip() else type(err).__name__,
                      user_error=user is not None)  # fmt: skip
        raise
    if not reporter.reported and state.last_metrics:
        # Resumed after its last epoch (killed during the final evaluation): this attempt trained
        # nothing, and Tune refuses a trial that ends without its metric in a result.
        tune.report(state.last_metrics)
    ledger.record(trial_id, "completed", run_id=outcome.run_id)
    RunLogger(outcome.tracking_uri, outcome.run_id).set_tags({"raysweep.trial_status": "completed", "raysweep.status": "completed"})


class CountingReport(TuneReportCallback):
    """Ray's TuneReportCallback that also counts the reports of this attempt."""

    reported = 0

    def after_report(self, *args, **kwargs):
        self.reported += 1
        return super().after_report(*args, **kwargs)


def _epoch_metrics(result: dict) -> dict:
    """The training loop's metrics in a Tune result (``train/...``, ``val/...``, epoch bookkeeping), not Tune's own."""
    keep = ("epoch", "best_epoch", "early_stopped")
    return {k: v for k, v in result.items() if ("/" in k or k in keep) and isinstance(v, (int, float)) and not isinstance(v, bool)}


class LedgerASHA(ASHAScheduler):
    """ASHA that writes each stop into the ledger at the moment it decides it (before Tune acts on it)."""

    def __init__(self, ledger: str, callbacks: list[str], **kwargs):
        super().__init__(**kwargs)
        self._ledger_config = {"ledger": ledger, "callbacks": list(callbacks)}

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:  # with the result it judged: the driver may die before that epoch is recorded
            _ledger(self._ledger_config).record(trial.trial_id, "stopped_early", epoch=result.get("epoch"), metrics=_epoch_metrics(result))
        return decision


class LedgerCallback(tune.Callback):
    """The driver's side of the ledger: trials whose process died before it could record why."""

    def __init__(self, ledger: str, callbacks: list[str]):
        self._ledger_config = {"ledger": ledger, "callbacks": list(callbacks)}

    def on_trial_error(self, iteration, trials, trial, **info):
        ledger = _ledger(self._ledger_config)
        if ledger.state(trial.trial_id).status != "errored":  # killed before trial_fn could say why
            ledger.record(trial.trial_id, "errored", error=f"trial process ended ({type(trial.error).__name__ if getattr(trial, 'error', None) else 'killed'})",
                          user_error=False)  # fmt: skip


def start_base_evaluations(base: dict, space: dict, configs_root: Path, cache_location: str) -> list:
    """Ray tasks that evaluate each distinct base model of the sweep once, into its cache.

    The points are the grid and choice values (sampled ranges at their low end); a trial whose base
    is not among them (a sampled model key) evaluates its own and caches it. Only entries the cache
    lacks are started (a resumed sweep starts none for what it has). Returns the task refs.
    """
    from raysweep.launch.train import base_eval_task
    from raysweep.sweep.space import check_points
    from raysweep.training.base_cache import BaseCache, base_key

    cache = BaseCache(cache_location)
    listed = {k for k, spec in space.items() if next(iter(spec)) in ("grid", "choice")}
    points = [p for p in check_points(space) if all(k in listed or p[k] == next(iter(space[k].values()))[0] for k in p)]
    todo: dict[tuple, object] = {}
    for values in points or [{}]:
        cfg = trial_config(base, values, configs_root)
        if not (cfg.train.eval_base and cfg.train.eval_sets):
            continue
        keys = tuple(base_key(cfg, s) for s in cfg.train.eval_sets)
        if keys not in todo and any(cache.get(k) is None for k in keys):
            todo[keys] = cfg
    refs = []
    for keys, cfg in todo.items():
        for key in keys:
            cache.mark_pending(key)
        task = ray.remote(num_cpus=cfg.train.cpus_per_worker, num_gpus=1 if cfg.train.use_gpu else 0)(base_eval_task)
        refs.append(task.remote(to_dict(cfg), cache_location))
    return refs


def max_concurrent(cfg, capacity) -> int | None:
    """Trials at once (None: no limit, Tune queues them): ``sweep.max_concurrent``, else what the cluster holds at its largest."""
    trials = concurrent_trials(trial_resources(cfg, data=True), capacity, cfg.sweep.max_concurrent)
    check_data_cpus(cfg, capacity, trials or 1, sweep=True)
    return trials


def run_sweep(cfg, configs_root: Path, resume: bool = False, verbose: bool = False, provenance: dict | None = None,
              loop_callbacks: list[tuple[str, dict]] | None = None) -> dict:  # fmt: skip
    """Run (or resume) the sweep of ``cfg.sweep``; returns the summary with ``exit_status`` (see
    :func:`raysweep.sweep.ledger.sweep_exit_status`). ``verbose``: Ray's own lines too. ``provenance``:
    MLflow tags for the parent and every trial. ``loop_callbacks``: ``("module:Class", kwargs)`` pairs
    handed to every trial's training loop (tests inject faults this way)."""
    from raysweep.errors import UserError

    sweep = cfg.sweep
    exp_dir = storage.join(sweep.storage_path, sweep.name)
    state_path = storage.join(exp_dir, STATE_FILE)
    if resume and not storage.exists(state_path):
        raise UserError(f"--resume: no sweep state at {exp_dir}; run without --resume first")
    if not resume and storage.exists(state_path):
        raise UserError(f"sweep {sweep.name} already exists at {exp_dir}; continue it with --resume or set sweep.name=...")
    init_sweep_ray(verbose)
    init_ray()
    capacity = cluster_gpu_check(cfg, sweep=True)
    uri = tracking_uri(cfg.mlflow)
    base = to_dict(cfg)
    space = sweep.search_space()  # with sweep.seeds as a train.seed axis
    n_points = check_space(base, space, configs_root)
    keys = list(space)
    ledger_location = storage.join(exp_dir, LEDGER_DIR)
    base_cache = storage.join(exp_dir, CACHE_DIR)
    ledger = Ledger(ledger_location, load_listeners(sweep.callbacks))
    if resume:
        exp_fs, exp_path = storage.filesystem(exp_dir)
        if not tune.Tuner.can_restore(exp_path, storage_filesystem=exp_fs):
            raise UserError(f"--resume: no sweep state at {exp_dir}; run without --resume first")
        parent = RunLogger(uri, storage.read_json(state_path)["parent_run_id"])
        print(f"resuming sweep {sweep.name} from {exp_dir}", flush=True)
        tuner = tune.Tuner.restore(exp_path, tune.with_resources(trial_fn, {"CPU": sweep.trial_cpus}), storage_filesystem=exp_fs,
                                   resume_unfinished=True, resume_errored=True)  # fmt: skip
    else:
        parent = RunLogger.start(uri, cfg.mlflow.experiment, sweep.name,
                                 tags={"raysweep.role": "sweep", "raysweep.sweep": sweep.name, **(provenance or {})})  # fmt: skip
        parent.log_params({f"sweep.{k}": v for k, v in flatten(base["sweep"]).items()})
        storage.write_json(state_path, {"parent_run_id": parent.run_id, "tracking_uri": uri})
        scheduler = FIFOScheduler()
        if sweep.scheduler == "asha":
            # max_t one past the last epoch: ASHA must never stop a trial that is simply finishing,
            # or its final evaluation (after the last report) would be cut off.
            scheduler = LedgerASHA(ledger_location, sweep.callbacks, time_attr="epoch", max_t=cfg.train.epochs + 1, grace_period=sweep.grace_period,
                                      reduction_factor=sweep.reduction_factor, stop_last_trials=False)  # fmt: skip
        concurrent = max_concurrent(cfg, capacity)
        at_once = f"up to {concurrent} at once" if concurrent else "as many at once as the autoscaler provides"
        print(f"sweep {sweep.name}: {n_points * sweep.num_samples} trials ({sweep.scheduler}), {at_once}; "
              f"MLflow parent run {parent.run_id}", flush=True)  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(trial_fn, {"CPU": sweep.trial_cpus}),
            param_space={"values": _space_to_tune(space), "base": base, "configs_root": str(configs_root),
                         "parent_run_id": parent.run_id, "sweep": sweep.name, "trials_path": storage.join(exp_dir, "trials"),
                         "ledger": ledger_location, "callbacks": list(sweep.callbacks), "provenance": provenance or {},
                         "base_cache": base_cache,
                         "loop_callbacks": list(loop_callbacks or [])},
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, scheduler=scheduler,
                                        num_samples=sweep.num_samples, max_concurrent_trials=concurrent,
                                        trial_dirname_creator=lambda t: t.trial_id),
            run_config=tune.RunConfig(name=sweep.name, **storage.ray_storage(sweep.storage_path), verbose=0,
                                      sync_config=tune.SyncConfig(sync_period=STATE_SYNC_S),
                                      callbacks=[LedgerCallback(ledger_location, sweep.callbacks),
                                                 BoardCallback(sweep.metric, keys, cfg.train.epochs)]),
        )  # fmt: skip
    base_refs = start_base_evaluations(base, space, configs_root, base_cache)
    tuner.fit()
    _finish_base_evaluations(base_refs)
    expected = trial_count(space, sweep.num_samples)
    states = ledger.states()
    if sweep_exit_status(states, expected) == 130:
        # Tune caught a stop signal (Ctrl+C) and saved its state: no summary of a half sweep.
        for trial_id, state in states.items():
            if not state.finished:
                ledger.record(trial_id, "interrupted")
        print(f"\nsweep {sweep.name} interrupted; {sum(s.finished for s in states.values())} of {expected} trials finished, "
              f"its state is saved under {exp_dir}. Continue with:\n  raysweep sweep <same config and overrides> --resume", flush=True)  # fmt: skip
        return {"interrupted": True, "exit_status": 130, "parent_metrics": {"errored": 0}}
    from raysweep.sweep.summary import collect_trials, format_summary, register_groups

    summary = collect_trials(uri, parent.run_id, sweep, cfg.train.epochs, states)
    summary["parent_metrics"]["sweep/base_evaluations"] = BaseCache(base_cache).evaluations()
    text = format_summary(summary, sweep, cfg.train.eval_sets)
    print(text)
    parent.log_metrics(summary["parent_metrics"])
    _log_text(parent, text, summary)
    if sweep.register_best:
        for line in register_groups(uri, summary, cfg, register_adapter, ledger):
            print(line)
    status = sweep_exit_status(states, expected)
    parent.end("FINISHED" if status == 0 else "FAILED")
    print(f"\nMLflow: mlflow ui --backend-store-uri {uri}   (experiment '{cfg.mlflow.experiment}', parent run {parent.run_id})")
    summary["exit_status"] = status
    if status == 2:
        first = next(s for s in states.values() if s.status == "errored")
        summary["user_error"] = f"every errored trial was refused as bad input, e.g. trial {first.trial_id}: {first.error}"
    return summary


def _finish_base_evaluations(refs: list) -> None:
    """Wait for the base evaluations (done long before in practice); a failed one is a note, its trials evaluated their own."""
    import sys

    for ref in refs:
        try:
            ray.get(ref)
        except Exception as err:  # the trials fell back to their own base evaluation
            print(f"raysweep: note: a shared base-model evaluation failed ({str(err).strip().splitlines()[-1][:200]}); "
                  "its trials evaluated the base themselves", file=sys.stderr)  # fmt: skip


def _log_text(parent: RunLogger, text: str, summary: dict) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "summary.md").write_text(text + "\n")
        (Path(tmp) / "summary.json").write_text(json.dumps(summary["trials"], indent=2, default=str))
        parent.log_artifacts(tmp, "summary")
