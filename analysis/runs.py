"""Read raysweep runs from MLflow into plain records (no Ray, no pandas).

A sweep is one parent run (tag ``raysweep.sweep=<name>``, ``raysweep.role=sweep``) with one child
run per trial; a plain ``raysweep train`` run has no parent. :func:`load_trials` returns the trial
runs (children of the named sweep, or every non-parent run of the experiment) as :class:`Trial`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from raysweep.errors import UserError

SET_METRIC = re.compile(r"^(?:test|base)/([^/]+)/acc$")
RUN_STATUS = {"FINISHED": "completed", "FAILED": "errored", "KILLED": "stopped_early", "RUNNING": "running"}


@dataclass
class Trial:
    """One training run: its params, last value of every metric, and status."""

    run_id: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.params.get("family") or self.params.get("model.family") or self.tags.get("raysweep.family", "?")

    @property
    def task(self):
        """The task the run trained on (its ``data.*`` params; runs before ``data.task``: absolute)."""
        from raysweep.tasks import task_from_params

        return task_from_params(self.params)

    def metric(self, key: str) -> float | None:
        """The metric's last value, or None when the run never logged it (e.g. stopped early)."""
        value = self.metrics.get(key)
        return None if value is None or value != value else value

    def best(self, key: str, mode: str = "max") -> float | None:
        """Best value of a per-epoch metric over its history (falls back to the last value)."""
        points = [v for _, v in self.curves.get(key, []) if v == v]
        if not points:
            return self.metric(key)
        return max(points) if mode == "max" else min(points)


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri``, else $MLFLOW_TRACKING_URI, else ``sqlite:///<cwd>/mlflow.db`` (as raysweep train writes)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        uri = f"sqlite:///{Path('mlflow.db').resolve()}"
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.is_file():
            raise UserError(f"no MLflow store at {db}; pass --tracking-uri or run where `raysweep train` wrote mlflow.db")
    return uri


def _search(client, experiment_id: str, filter_string: str = "") -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _status(run) -> str:
    tagged = run.data.tags.get("raysweep.trial_status")
    return tagged or RUN_STATUS.get(run.info.status, run.info.status.lower())


def load_trials(uri: str, experiment: str, sweep: str | None = None, curve_keys: tuple[str, ...] = ("val/acc",)) -> list[Trial]:
    """Trial runs of ``experiment`` (children of sweep ``sweep`` when given), oldest first.

    Raises:
        UserError: the experiment or the sweep does not exist, or holds no trial runs.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        from raysweep.errors import did_you_mean

        known = [e.name for e in client.search_experiments()]
        raise UserError(f"no MLflow experiment {experiment!r} at {uri}. {did_you_mean(experiment, known)}Known: {', '.join(known) or 'none'}.")
    runs = _search(client, exp.experiment_id)
    parents = [r for r in runs if r.data.tags.get("raysweep.role") == "sweep"]
    if sweep is not None:
        ids = {r.info.run_id for r in parents if r.data.tags.get("raysweep.sweep") == sweep}
        if not ids:
            names = sorted({r.data.tags.get("raysweep.sweep", "") for r in parents})
            raise UserError(f"no sweep {sweep!r} in experiment {experiment!r}; sweeps there: {', '.join(names) or 'none'}")
        runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in ids]
    else:
        runs = [r for r in runs if r.data.tags.get("raysweep.role") != "sweep"]
    if not runs:
        raise UserError(f"experiment {experiment!r} holds no trial runs" + (f" under sweep {sweep!r}" if sweep else ""))
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    trials = []
    for r in runs:
        trial = Trial(r.info.run_id, r.data.tags.get("mlflow.runName", r.info.run_name or r.info.run_id[:8]),
                      dict(r.data.params), dict(r.data.metrics), _status(r), dict(r.data.tags))  # fmt: skip
        for key in curve_keys:
            if key in trial.metrics:
                history = client.get_metric_history(r.info.run_id, key)
                trial.curves[key] = sorted((m.step, m.value) for m in history)
        trials.append(trial)
    return trials


def eval_sets(trials: list[Trial]) -> list[str]:
    """Eval set names found in ``test/<set>/acc`` or ``base/<set>/acc`` metrics, in first-seen order."""
    names: dict[str, None] = {}
    for t in trials:
        for key in t.metrics:
            match = SET_METRIC.match(key)
            if match:
                names.setdefault(match.group(1), None)
    return list(names)


def best_per_family(trials: list[Trial], metric: str = "val/acc", mode: str = "max") -> dict[str, Trial]:
    """The best trial of each family by the best epoch of ``metric`` (never by a test metric).

    Trials with test metrics win over trials without (a stopped trial has no adapter evaluated).
    """
    best: dict[str, tuple[tuple, Trial]] = {}
    sign = 1 if mode == "max" else -1
    for t in trials:
        value = t.best(metric, mode)
        has_test = any(k.startswith("test/") for k in t.metrics)
        key = (has_test, value is not None, sign * value if value is not None else 0.0)
        if t.family not in best or key > best[t.family][0]:
            best[t.family] = (key, t)
    return {fam: t for fam, (_, t) in sorted(best.items())}


def experiment_id(uri: str, experiment: str) -> str | None:
    """The MLflow id of ``experiment`` (for links into the MLflow UI), None when it does not exist."""
    from mlflow import MlflowClient

    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    return exp.experiment_id if exp else None


def sweep_params(uri: str, experiment: str, sweep: str) -> tuple[str | None, dict[str, str]]:
    """The parent run of ``sweep`` (its id) and the params it logged (``sweep.*``: the sweep's configuration)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None, {}
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`raysweep.sweep` = '{sweep}' and tags.`raysweep.role` = 'sweep'")
    return (runs[0].info.run_id, dict(runs[0].data.params)) if runs else (None, {})
