"""Checks that run before any work starts: what can be found out without a GPU is found out here.

Every check raises :class:`~raysweep.errors.UserError` with one line naming the culprit and the fix,
so a command fails in seconds instead of after an evaluation or a queue on a cluster.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from raysweep.errors import UserError


def check_writable(path: str | Path, what: str) -> None:
    """Check that files can be created in folder ``path`` (created later if it does not exist yet).

    The nearest existing folder on the way is probed by creating and removing a temporary file, which
    also catches read-only file systems and holds for root (whom permission bits do not stop).

    Args:
        path: the folder that will be written (or whose parent will be, for a new folder).
        what: how the user named it, e.g. ``"--out out/x"``; it leads the error message.

    Raises:
        UserError: a file stands on the way, or the folder cannot be written.
    """
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what}: {probe} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".raysweep-write-check-"):
            pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        hint = "a read-only file system" if err.errno == errno.EROFS else "no permission" if err.errno in (errno.EACCES, errno.EPERM) else reason
        raise UserError(f"{what}: cannot write to {probe} ({hint}); choose a writable folder") from None


def check_writable_file(path: str | Path, what: str) -> None:
    """Check that file ``path`` can be (re)written: its folder is writable and it is not a folder itself."""
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    if path.is_dir():
        raise UserError(f"{what}: {path} is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what}: {path} exists and cannot be written; choose another path")
    check_writable(path.parent, what)


def check_run_inputs(cfg, sweep: bool = False) -> None:
    """Everything about a ``train`` or ``sweep`` config that can be checked on the driver, before Ray starts.

    The model family exists; every dataset the config names (``data.parquet`` source, ``train.eval_sets``)
    opens and validates; eval-set configs exist; local storage folders (``train.storage_path``, and
    ``sweep.storage_path`` for a sweep) can be written.

    Raises:
        UserError: the first problem, naming the config key.
    """
    from raysweep.datasets import open_dataset
    from raysweep.models import get_family

    get_family(cfg.model.family)
    if cfg.data.source != "synthetic":
        if cfg.data.source not in cfg.data.parquet:
            raise UserError(f"data.source: unknown source {cfg.data.source!r}; add it under data.parquet or use synthetic")
        open_dataset(cfg.data.parquet[cfg.data.source])
    for s in cfg.train.eval_sets:
        if s.path:
            open_dataset(s.path)
        elif not Path(s.config).is_file():
            raise UserError(f"train.eval_sets: {s.name}: config {s.config} not found")
    storages = {"train.storage_path": cfg.train.storage_path}
    if sweep:
        storages["sweep.storage_path"] = cfg.sweep.storage_path
    for key, value in storages.items():
        if "://" not in value:  # object stores are checked by the cluster layer
            check_writable(value, f"{key} {value}")
    if cfg.train.use_gpu:
        import torch

        if not torch.cuda.is_available():
            raise UserError("train.use_gpu is true but no CUDA GPU is visible here; set train.use_gpu=false")
