"""The file paths of a sweep's trial configs, portable across working directories (no Ray).

A sweep's trial configs are stored in Tune's experiment state, and ``--resume`` restores them as
they were. An absolute path into the first run's working directory (a Ray job unpacks its
``working_dir`` into a folder of its own on every node) would send a resumed trial, or a trial on
another node, to a folder that is not there. So the driver stores the paths that lie inside its
working directory relative to it (:func:`portable_paths`), and each trial resolves them against its
own (:func:`resolve_paths`, called by ``trial_config``): the folder its Ray worker started in,
which is the job's ``working_dir`` on that node, or the driver's folder on a local Ray. Paths outside
the working directory (shared data) stay absolute, URIs as they are.
"""

from __future__ import annotations

from pathlib import Path

from raysweep import storage


def local_checkpoint(checkpoint: str, workdir: Path | None = None) -> bool:
    """:func:`raysweep.storage.is_local_checkpoint`, except that an empty name is left as it is (the
    pre-flight names it) rather than read as the working directory."""
    return bool(checkpoint) and storage.is_local_checkpoint(checkpoint, workdir)


def _map_paths(cfg, fn, workdir: Path | None = None):
    """Apply ``fn`` to every input-file path of ``cfg`` (datasets, eval sets, DeepSpeed file, a local
    ``model.checkpoint`` folder, judged under ``workdir``); returns ``cfg``."""
    cfg.data.parquet = {k: fn(v) for k, v in cfg.data.parquet.items()}
    for s in cfg.train.eval_sets:
        s.path, s.config = fn(s.path), fn(s.config)
    cfg.train.deepspeed_config = fn(cfg.train.deepspeed_config)
    if local_checkpoint(cfg.model.checkpoint, workdir):
        cfg.model.checkpoint = fn(cfg.model.checkpoint)
    return cfg


def portable_path(path: str, workdir: Path) -> str:
    """``path`` relative to ``workdir`` when it lies inside it, else absolute; URIs and '' unchanged."""
    if not path or storage.is_uri(path):
        return path
    absolute = Path(storage.resolve(path))
    try:
        return absolute.relative_to(Path(workdir).resolve()).as_posix()
    except ValueError:
        return str(absolute)


def portable_paths(cfg, workdir: Path):
    """``cfg`` with its input paths made :func:`portable_path` (in place; returned)."""
    return _map_paths(cfg, lambda p: portable_path(p, workdir), workdir)


def trial_workdir() -> Path | None:
    """The folder relative paths are relative to in a Tune trial, which Tune moves into its trial
    folder: the one its Ray worker started in (``TUNE_ORIG_WORKING_DIR``), i.e. the job's
    working_dir on that node, or the driver's folder on a local Ray. None outside a trial, where
    relative paths already mean the working directory."""
    import os

    workdir = os.environ.get("TUNE_ORIG_WORKING_DIR")
    return Path(workdir) if workdir else None


def resolve_path(path: str, workdir: Path | None) -> str:
    """A relative ``path`` made absolute under ``workdir`` (unchanged when ``workdir`` is None)."""
    if workdir is None or not path or storage.is_uri(path) or Path(path).is_absolute():
        return path
    return str(Path(workdir) / path)


def resolve_paths(cfg, workdir: Path | None):
    """``cfg`` with its relative input paths resolved by :func:`resolve_path` (in place; returned)."""
    return _map_paths(cfg, lambda p: resolve_path(p, workdir), workdir)
