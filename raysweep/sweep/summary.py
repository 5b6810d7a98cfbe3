"""The end of a sweep: trial statuses, the best trial per group, registration (no Ray).

Statuses and epoch counts come from raysweep's trial ledger (:mod:`raysweep.sweep.ledger`), metrics
from the sweep's MLflow child runs, so a resumed sweep summarises every trial it ever ran. Each
run's MLflow status is made to match its trial's outcome: FINISHED when completed, KILLED with the
tag ``raysweep.status=stopped_early`` when the scheduler stopped it, FAILED only for errors.
"""

from __future__ import annotations

import re

from raysweep.sweep.space import group_key


RUN_STATUS = {"completed": "FINISHED", "stopped_early": "KILLED", "errored": "FAILED", "interrupted": "KILLED"}


def collect_trials(uri: str, parent_run_id: str, sweep, max_epochs: int, states: dict) -> dict:
    """Every trial of the sweep with status, epochs, best validation metric and test accuracies.

    Args:
        states: trial id -> :class:`~raysweep.sweep.ledger.TrialState`, the ledger's record. A trial
            with an MLflow run but no ledger entry (a sweep from before the ledger) counts as
            completed when its run says so, else as stopped early.
    """
    from mlflow import MlflowClient

    from raysweep.sweep.ledger import TrialState

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                  max_results=10000)  # fmt: skip
    runs = {run.data.tags.get("raysweep.trial_id", run.info.run_id): run for run in children}
    trials = []
    for trial_id in sorted(set(runs) | set(states)):
        run = runs.get(trial_id)
        tags, params, metrics = (run.data.tags, run.data.params, run.data.metrics) if run else ({}, {}, {})
        state = states.get(trial_id)
        if state is None:
            state = TrialState(trial_id, status="completed" if tags.get("raysweep.trial_status") == "completed" else "stopped_early")
        status = state.status if state.status in RUN_STATUS else "interrupted"
        if state.epochs:
            values = [m.get(sweep.metric) for _, m in sorted(state.epochs.items()) if m.get(sweep.metric) is not None]
            epochs = len(state.epochs)
        else:
            history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, sweep.metric)} if run else {}
            values, epochs = [history[k] for k in sorted(history)], len(history)
        if run is not None:
            _match_run_status(client, run, status)
        space_values = {k[len("raysweep.space."):]: v for k, v in tags.items() if k.startswith("raysweep.space.")} or {
            k: str(v) for k, v in state.values.items()}  # fmt: skip
        trials.append({
            "trial_id": trial_id,
            "run_id": run.info.run_id if run else None,
            "status": status,
            "epochs": epochs,
            "best": (max if sweep.mode == "max" else min)(values) if values else None,
            "values": space_values,
            "group": group_key({**space_values, **params}, sweep.group_by),
            "family": params.get("family", ""),
            "params": {k: params.get(k, space_values.get(k)) for k in sweep.group_by},
            "test": {k: v for k, v in metrics.items() if k.startswith(("test/", "base/")) and k.count("/") == 2 and k.endswith("/acc")},
            "adapter_uri": f"runs:/{run.info.run_id}/adapter" if run and status == "completed" else None,
            "error": state.error or None,
            "registered": state.registered,
        })  # fmt: skip
    trials.sort(key=lambda t: t["trial_id"])
    def merit(t):
        # Completed trials first (they have test metrics and an adapter), then the metric.
        return (t["status"] == "completed", t["best"] if sweep.mode == "max" else -t["best"])

    groups: dict[str, dict] = {}
    for t in trials:
        if t["best"] is None:
            continue
        g = groups.get(t["group"])
        if g is None or merit(t) > merit(g):
            groups[t["group"]] = t
    if getattr(sweep, "seeds", None):
        from raysweep.sweep.seeds import best_seeded_groups

        groups = best_seeded_groups(trials, sweep.mode)  # the best point by its mean over seeds
    trial_epochs = sum(t["epochs"] for t in trials)
    parent_metrics = {"trials": len(trials), "trial_epochs": trial_epochs, "grid_trial_epochs": len(trials) * max_epochs,
                      "completed": sum(t["status"] == "completed" for t in trials),
                      "stopped_early": sum(t["status"] == "stopped_early" for t in trials),
                      "errored": sum(t["status"] == "errored" for t in trials)}  # fmt: skip
    for name, t in groups.items():
        slug = _slug(name)
        parent_metrics[f"best/{slug}/{_slug(sweep.metric)}"] = t["best"]
        for key, value in t["test"].items():
            parent_metrics[f"best/{slug}/{key}"] = value
        for key, (mean, low, high) in _seed_means(t).items():
            parent_metrics.update({f"best/{slug}/{key}_seed_mean": mean, **({f"best/{slug}/{key}_seed_ci_low": low,
                                   f"best/{slug}/{key}_seed_ci_high": high} if low is not None else {})})  # fmt: skip
    return {"trials": trials, "groups": groups, "parent_metrics": parent_metrics}


def _match_run_status(client, run, status: str) -> None:
    """The MLflow run's status and tags as the ledger says (a scheduler stop is KILLED, never FAILED)."""
    tags = run.data.tags
    if tags.get("raysweep.trial_status") != status:
        client.set_tag(run.info.run_id, "raysweep.trial_status", status)
    if tags.get("raysweep.status") != status:
        client.set_tag(run.info.run_id, "raysweep.status", status)
    if run.info.status != RUN_STATUS[status]:
        client.set_terminated(run.info.run_id, RUN_STATUS[status])


def _seed_means(t: dict) -> dict:
    """``{metric: (mean, low, high)}`` over the seeds of a group best's point (empty without sweep.seeds)."""
    seeds = t.get("seed_mean")
    if not seeds:
        return {}
    return {k: v for k, v in {"val": seeds["best"], **seeds["test"]}.items() if v[0] is not None}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "all"


def format_summary(summary: dict, sweep, eval_sets) -> str:
    """Markdown tables: every trial, then the best trial of each group."""
    sets = [s.name for s in eval_sets]
    keys = list(sweep.space)
    head = ["trial", "status", "epochs", f"best {sweep.metric}", *keys, *[f"{s} base" for s in sets], *[f"{s} tuned" for s in sets]]
    lines = ["", f"### Sweep {sweep.name}: trials", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(v):
        return f"{v:.1%}" if isinstance(v, (int, float)) else "-"

    def row(t):
        best = f"{t['best']:.4f}" if t["best"] is not None else "-"
        return [t["trial_id"], t["status"], str(t["epochs"]), best, *[str(t["values"].get(k, "-")) for k in keys],
                *[pct(t["test"].get(f"base/{s}/acc")) for s in sets], *[pct(t["test"].get(f"test/{s}/acc")) for s in sets]]  # fmt: skip

    lines += ["| " + " | ".join(row(t)) + " |" for t in summary["trials"]]
    lines += ["", f"### Best trial per group ({', '.join(sweep.group_by) or 'all trials'})", "",
              "| group | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 1)]  # fmt: skip
    lines += ["| " + name + " | " + " | ".join(row(t)) + " |" for name, t in sorted(summary["groups"].items())]
    seeded = {name: t for name, t in sorted(summary["groups"].items()) if t.get("seed_mean")}
    if seeded:
        cols = [f"best {sweep.metric}", *[f"{s} tuned" for s in sets]]
        lines += ["", "### Mean over seeds of each group's best point (95% t interval)", "",
                  "| group | point | seeds | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]  # fmt: skip
        for name, t in seeded.items():
            sm = t["seed_mean"]
            cells = [_mean_cell(sm["best"], "{:.4f}"), *[_mean_cell(sm["test"].get(f"test/{s}/acc"), "{:.1%}") for s in sets]]
            lines.append(f"| {name} | {sm['point']} | {', '.join(map(str, sm['seeds']))} | " + " | ".join(cells) + " |")
    m = summary["parent_metrics"]
    lines += ["", f"{m['trials']} trials, {m['stopped_early']} stopped early by ASHA, {m['errored']} errored; "
              f"{m['trial_epochs']} trial-epochs of {m['grid_trial_epochs']} for the full grid."]  # fmt: skip
    if "sweep/base_evaluations" in m:
        lines.append(f"Base-model evaluations that ran: {m['sweep/base_evaluations']} (each distinct base model and eval set once, shared by the trials).")
    return "\n".join(lines)


def _mean_cell(stat, fmt: str) -> str:
    mean, low, high = stat or (None, None, None)
    if mean is None:
        return "-"
    return fmt.format(mean) + (f" [{fmt.format(low)}, {fmt.format(high)}]" if low is not None else "")


def register_groups(uri: str, summary: dict, cfg, register, ledger=None) -> list[str]:
    """Register the best completed adapter of each group; alias ``best-<group>`` and ``champion`` per family.

    With a ``ledger``, each registration is recorded there and a trial already registered (a resumed
    sweep whose driver died while registering) is not registered again.
    """
    import tempfile
    from pathlib import Path

    import mlflow
    import yaml

    from raysweep.tracking import registry_tags

    mlflow.set_tracking_uri(uri)
    lines, champions = [], {}
    for name, t in sorted(summary["groups"].items()):
        if t["status"] != "completed" or not t["adapter_uri"]:
            lines.append(f"group {name}: best trial {t['trial_id']} did not complete; nothing registered")
            continue
        done = [r for r in t.get("registered", []) if r.get("group") == name]
        if done:
            model_name, version = done[-1]["model"], int(done[-1]["version"])
            lines.append(f"group {name}: registered models:/{model_name}@{done[-1]['alias']} (version {version}, trial {t['trial_id']}; before the resume)")
            merit = t["seed_mean"]["best"][0] if t.get("seed_mean") else t["best"]
            score = merit if cfg.sweep.mode == "max" else -merit
            if model_name not in champions or score > champions[model_name][0]:
                champions[model_name] = (score, version)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=t["adapter_uri"], dst_path=tmp)
            run_cfg = (Path(local) / "run_config.yaml").read_text()
            resolved = yaml.safe_load(run_cfg)
            model_name = cfg.mlflow.registered_model or f"raysweep-{resolved['model']['family']}"
            alias = f"best-{_slug(cfg.sweep.name)}-{_slug(name)}".replace(".", "-").replace("=", "-")[:255]
            tags = {**registry_tags(resolved), "sweep": cfg.sweep.name, "group": name}
            if t.get("seed_mean"):
                mean, low, high = t["seed_mean"]["best"]
                tags["seed_mean"] = f"{cfg.sweep.metric} {mean:.4f}" + (f" [{low:.4f}, {high:.4f}]" if low is not None else "")
                tags["seeds"] = ",".join(map(str, t["seed_mean"]["seeds"]))
            version = register(uri, t["run_id"], local, run_cfg, model_name, alias, tags)
        if ledger is not None:
            ledger.record(t["trial_id"], "registered", group=name, model=model_name, alias=alias, version=version)
        lines.append(f"group {name}: registered models:/{model_name}@{alias} (version {version}, trial {t['trial_id']})")
        merit = t["seed_mean"]["best"][0] if t.get("seed_mean") else t["best"]  # with seeds: the point's mean
        score = merit if cfg.sweep.mode == "max" else -merit
        if model_name not in champions or score > champions[model_name][0]:
            champions[model_name] = (score, version)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for model_name, (_, version) in champions.items():
        client.set_registered_model_alias(model_name, cfg.mlflow.alias, version)
        lines.append(f"{model_name}@{cfg.mlflow.alias} -> version {version}")
    return lines
