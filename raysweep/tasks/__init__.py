"""The task registry: question types as data, looked up by name (``raysweep tasks`` lists them).

``data.task`` names the task of a data section; :func:`task_for` resolves a config to its task,
:func:`task_of_manifest` a dataset to the task its rows were built for, :func:`task_from_params` an
MLflow run (its flattened config) to the task it trained on. An unknown name answers with the
closest known one.
"""

from __future__ import annotations

from raysweep.errors import UserError, did_you_mean
from raysweep.tasks.base import Task, slug

_REGISTRY: dict[str, type[Task]] = {}
DEFAULT_TASK = "absolute_position"


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task known by its ``name``; a name taken twice is an error."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no task name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice ({_REGISTRY[cls.name].__name__}, {cls.__name__})")
    _REGISTRY[cls.name] = cls
    return cls


def list_tasks() -> list[str]:
    """Names of the registered tasks."""
    return sorted(_REGISTRY)


def task_class(name: str) -> type[Task]:
    """The task class registered as ``name``; an unknown name is one line with the closest match."""
    if name not in _REGISTRY:
        known = list_tasks()
        raise UserError(f"Unknown task '{name}'. {did_you_mean(name, known)}Available: {', '.join(known)}.")
    return _REGISTRY[name]


def task_from_config(cfg: dict) -> Task:
    """The task of a data section given as a dict (``task`` key; absent = absolute_position)."""
    return task_class(cfg.get("task") or DEFAULT_TASK).from_config(cfg)


def task_for(data_cfg) -> Task:
    """The task of a :class:`~raysweep.config.DataConfig`."""
    from raysweep._configlib import to_dict

    return task_from_config(to_dict(data_cfg))


def training_task(data_cfg) -> Task:
    """The task a run trains on: its synthetic scenes' (:func:`task_for`), or the task of the
    Parquet set named by ``data.source``."""
    if data_cfg.source == "synthetic" or data_cfg.source not in data_cfg.parquet:
        return task_for(data_cfg)
    from raysweep.datasets.store import read_manifest

    return task_of_manifest(read_manifest(data_cfg.parquet[data_cfg.source]))


def task_from_identity(record: dict) -> Task:
    """The task an adapter recorded (:meth:`Task.identity`)."""
    return task_class(record.get("name") or DEFAULT_TASK).from_config({"area_names": record.get("answer_names"), **record})


def task_of_manifest(manifest: dict) -> Task:
    """The task a dataset's rows answer, from its manifest's ``config`` (older sets: absolute)."""
    return task_from_config(manifest.get("config") or {})


def task_from_params(params: dict[str, str]) -> Task:
    """The task of an MLflow run from its flattened ``data.*`` params (strings, lists as text)."""
    import ast

    cfg = {}
    for key, value in params.items():
        if key.startswith("data."):
            try:
                cfg[key[5:]] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                cfg[key[5:]] = value
    return task_from_config(cfg)


def default_task() -> Task:
    """The paper's task: absolute position on the 3x3 grid."""
    return task_class(DEFAULT_TASK).from_config({})


from raysweep.tasks.absolute_position import AbsolutePosition  # noqa: E402
from raysweep.tasks.relative_position import RelativePosition  # noqa: E402

register(AbsolutePosition)
register(RelativePosition)

__all__ = ["DEFAULT_TASK", "Task", "default_task", "list_tasks", "register", "slug", "task_class", "task_for",
           "task_from_config", "task_from_identity", "task_from_params", "task_of_manifest", "training_task"]  # fmt: skip
