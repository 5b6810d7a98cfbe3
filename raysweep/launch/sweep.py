"""``raysweep sweep``: a Ray Tune search whose trials are full Ray Train runs.

Tune calls :func:`trial_fn`, a function trainable that builds the trial's config and runs
:func:`raysweep.launch.train.run_training` with a ``TuneReportCallback`` (the current Train V2
integration, not the deprecated ``Tuner(trainer)``), so every epoch's report reaches ASHA. MLflow
gets a parent run per sweep and a child per trial; at the end the summary (best trial per group)
is printed and logged, and the best adapter of each group is registered.
"""

from __future__ import annotations

import json
from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from raysweep import storage
from raysweep._configlib import flatten, to_dict
from raysweep.launch.console import BoardCallback, init_sweep_ray
from raysweep.launch.resources import cluster_gpu_check, concurrent_trials, trial_resources
from raysweep.launch.train import init_ray
from raysweep.sweep.space import check_space, trial_config
from raysweep.tracking import RunLogger, register_adapter, tracking_uri

STATE_FILE = "raysweep_sweep.json"


def _space_to_tune(space: dict) -> dict:
    kinds = {"grid": tune.grid_search, "choice": tune.choice, "uniform": lambda v: tune.uniform(*v),
             "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}  # fmt: skip
    return {key: kinds[kind](values) for key, spec in space.items() for kind, values in spec.items()}


def trial_fn(config: dict) -> None:
    """One Tune trial: a full training run, its epochs reported to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysweep.launch.train import run_training

    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    cfg = trial_config(config["base"], config["values"], Path(config["configs_root"]))
    cfg.train.name = trial_id
    cfg.train.storage_path = config["trials_path"]
    tags = {"raysweep.role": "trial", "raysweep.sweep": config["sweep"], "raysweep.trial_id": trial_id,
            "raysweep.trial_status": "running", **{f"raysweep.space.{k}": str(v) for k, v in config["values"].items()}}  # fmt: skip
    outcome = run_training(cfg, parent_run_id=config["parent_run_id"], callbacks=[TuneReportCallback()], tags=tags,
                           register=False, quiet=True, reuse_tag=("raysweep.trial_id", trial_id))  # fmt: skip
    RunLogger(outcome.tracking_uri, outcome.run_id).set_tags({"raysweep.trial_status": "completed"})


def max_concurrent(cfg, capacity) -> int | None:
    """Trials at once (None: no limit, Tune queues them): ``sweep.max_concurrent``, else what the cluster holds at its largest."""
    return concurrent_trials(trial_resources(cfg), capacity, cfg.sweep.max_concurrent)


def run_sweep(cfg, configs_root: Path, resume: bool = False, verbose: bool = False) -> dict:
    """Run (or resume) the sweep of ``cfg.sweep``; returns the summary. ``verbose``: Ray's own lines too."""
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
    capacity = cluster_gpu_check(cfg)
    uri = tracking_uri(cfg.mlflow)
    base = to_dict(cfg)
    space = sweep.search_space()  # with sweep.seeds as a train.seed axis
    n_points = check_space(base, space, configs_root)
    keys = list(space)
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
                                 tags={"raysweep.role": "sweep", "raysweep.sweep": sweep.name})  # fmt: skip
        parent.log_params({f"sweep.{k}": v for k, v in flatten(base["sweep"]).items()})
        storage.write_json(state_path, {"parent_run_id": parent.run_id, "tracking_uri": uri})
        scheduler = FIFOScheduler()
        if sweep.scheduler == "asha":
            # max_t one past the last epoch: ASHA must never stop a trial that is simply finishing,
            # or its final evaluation (after the last report) would be cut off.
            scheduler = ASHAScheduler(time_attr="epoch", max_t=cfg.train.epochs + 1, grace_period=sweep.grace_period,
                                      reduction_factor=sweep.reduction_factor, stop_last_trials=False)  # fmt: skip
        concurrent = max_concurrent(cfg, capacity)
        at_once = f"up to {concurrent} at once" if concurrent else "as many at once as the autoscaler provides"
        print(f"sweep {sweep.name}: {n_points * sweep.num_samples} trials ({sweep.scheduler}), {at_once}; "
              f"MLflow parent run {parent.run_id}", flush=True)  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(trial_fn, {"CPU": sweep.trial_cpus}),
            param_space={"values": _space_to_tune(space), "base": base, "configs_root": str(configs_root),
                         "parent_run_id": parent.run_id, "sweep": sweep.name, "trials_path": storage.join(exp_dir, "trials")},
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, scheduler=scheduler,
                                        num_samples=sweep.num_samples, max_concurrent_trials=concurrent,
                                        trial_dirname_creator=lambda t: t.trial_id),
            run_config=tune.RunConfig(name=sweep.name, **storage.ray_storage(sweep.storage_path), verbose=0,
                                      callbacks=[BoardCallback(sweep.metric, keys, cfg.train.epochs)]),
        )  # fmt: skip
    results = tuner.fit()
    if results.num_terminated + results.num_errors < n_points * sweep.num_samples:
        # Tune caught a stop signal (Ctrl+C) and saved its state: no summary of a half sweep.
        print(f"\nsweep {sweep.name} interrupted; its state is saved under {exp_dir}. Continue with:\n"
              f"  raysweep sweep <same config and overrides> --resume", flush=True)  # fmt: skip
        return {"interrupted": True, "parent_metrics": {"errored": 0}}
    errors = {r.metrics.get("trial_id") or r.path.rstrip("/").rsplit("/", 1)[-1]: str(r.error).splitlines()[0] for r in results if r.error}
    from raysweep.sweep.summary import collect_trials, format_summary, register_groups

    summary = collect_trials(uri, parent.run_id, sweep, cfg.train.epochs, errors)

    text = format_summary(summary, sweep, cfg.train.eval_sets)
    print(text)
    parent.log_metrics(summary["parent_metrics"])
    _log_text(parent, text, summary)
    if sweep.register_best:
        for line in register_groups(uri, summary, cfg, register_adapter):
            print(line)
    parent.end("FINISHED" if not errors else "FAILED")
    print(f"\nMLflow: mlflow ui --backend-store-uri {uri}   (experiment '{cfg.mlflow.experiment}', parent run {parent.run_id})")
    return summary


def _log_text(parent: RunLogger, text: str, summary: dict) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "summary.md").write_text(text + "\n")
        (Path(tmp) / "summary.json").write_text(json.dumps(summary["trials"], indent=2, default=str))
        parent.log_artifacts(tmp, "summary")
