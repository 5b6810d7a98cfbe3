"""MLflow tracking and registry helpers (no Ray): runs, metrics, artifacts, registered adapters.

Default store: ``sqlite:///mlflow.db`` and the artifact folder ``mlartifacts/`` in the working
directory, or whatever ``mlflow.tracking_uri`` / ``$MLFLOW_TRACKING_URI`` names. Registered
models are pyfunc models that carry the LoRA adapter and the run's config as artifacts; aliases
(MLflow 3), not stages, mark the champion of a family.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from raysweep.errors import UserError

ADAPTER_ARTIFACT = "adapter"
CONFIG_ARTIFACT = "run_config.yaml"


def tracking_uri(mlflow_cfg) -> str:
    """The configured tracking URI, else $MLFLOW_TRACKING_URI, else a SQLite file here (absolute)."""
    uri = mlflow_cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        uri = f"sqlite:///{Path('mlflow.db').resolve()}"
    return uri


_READY: set[str] = set()


def _client(uri: str):
    """An MlflowClient; a SQLite store is created (or migrated) under a file lock first.

    MLflow creates a new SQLite store's schema on first use without coordination, so several
    processes opening a new ``mlflow.db`` at once fail on schema creation (``duplicate column
    name``, alembic version errors): the first writer creates it while the others wait.
    """
    from mlflow import MlflowClient

    if not uri.startswith("sqlite:///") or uri in _READY:
        return MlflowClient(tracking_uri=uri)
    from filelock import FileLock

    with FileLock(uri[len("sqlite:///"):] + ".lock"):
        client = MlflowClient(tracking_uri=uri)  # creates or upgrades the tracking schema
        client.search_registered_models(max_results=1)  # and the registry's, in the same file
    _READY.add(uri)
    return client


def ensure_experiment(uri: str, name: str) -> str:
    """The experiment's id, creating it (artifacts under ./mlartifacts for a local store)."""
    client = _client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        location = Path("mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another trial
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class RunLogger:
    """Thin wrapper over one MLflow run, usable from the driver, a Ray task or a worker."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id
        self.client = _client(uri)

    @classmethod
    def start(cls, uri: str, experiment: str, run_name: str, parent_run_id: str | None = None, tags: dict | None = None) -> RunLogger:
        client = _client(uri)
        exp_id = ensure_experiment(uri, experiment)
        all_tags = {"mlflow.runName": run_name, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(exp_id, tags=all_tags, run_name=run_name)
        return cls(uri, run.info.run_id)

    @classmethod
    def lookup(cls, uri: str, experiment: str, tag: str, value: str) -> RunLogger | None:
        """The run of ``experiment`` tagged ``tag=value``, or None (its status untouched)."""
        client = _client(uri)
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1) if exp else []
        return cls(uri, runs[0].info.run_id) if runs else None

    @classmethod
    def find(cls, uri: str, experiment: str, tag: str, value: str) -> RunLogger | None:
        """The run of ``experiment`` tagged ``tag=value`` (set back to RUNNING), or None."""
        found = cls.lookup(uri, experiment, tag, value)
        if found is not None:
            found.client.update_run(found.run_id, status="RUNNING")
        return found

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])

    def has_step(self, key: str, step: int) -> bool:
        """Whether metric ``key`` was already logged at ``step`` in this run."""
        return any(m.step == step for m in self.client.get_metric_history(self.run_id, key))

    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifacts(self, local_dir, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def registry_tags(resolved: dict) -> dict:
    """Tags of a registered adapter, from its run's resolved config (a plain dict)."""
    return {
        "family": resolved["model"]["family"],
        "base_checkpoint": resolved["model"]["checkpoint"],
        "dataset": resolved["data"]["source"],
        "distractors": resolved["data"]["distractors"],
        "rank": resolved["lora"]["rank"],
    }


def register_adapter(uri: str, run_id: str, adapter_dir, config_yaml: str, name: str, alias: str, tags: dict) -> int:
    """Log the adapter as a pyfunc model of ``run_id``, register it, tag it and set ``alias``."""
    import mlflow

    from raysweep.registry_model import AdapterModel

    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / CONFIG_ARTIFACT
        cfg_path.write_text(config_yaml)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AdapterModel(),
                artifacts={ADAPTER_ARTIFACT: str(adapter_dir), "config": str(cfg_path)},
                pip_requirements=["raysweep"],
            )
    version = mlflow.register_model(info.model_uri, name, tags={k: str(v) for k, v in tags.items()})
    client = _client(uri)
    client.set_registered_model_alias(name, alias, version.version)
    return int(version.version)


def fetch_registered_adapter(uri: str, model_uri: str, dst) -> tuple[Path, Path]:
    """Download ``models:/NAME@ALIAS`` (or /VERSION); returns (adapter folder, run config YAML)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    except Exception as err:  # MlflowException for unknown names/aliases
        msg = str(err).splitlines()[0]
        raise UserError(f"{model_uri}: cannot load from the registry at {uri} ({msg})") from None
    adapters = [p.parent for p in local.rglob("adapter_config.json")]
    configs = list(local.rglob(CONFIG_ARTIFACT))
    if not adapters or not configs:
        raise UserError(f"{model_uri}: the registered model holds no raysweep adapter")
    return adapters[0], configs[0]
