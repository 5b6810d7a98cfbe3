"""What a run was made from, recorded as MLflow tags: code version, package versions, data identity.

The code version is read where the command starts: ``git`` in the working directory, else the
``RAYSWEEP_GIT_COMMIT`` / ``RAYSWEEP_GIT_DIRTY`` environment variables that ``cluster/submit.sh``
sets for a Ray job (whose working directory is shipped without ``.git``), else ``unknown``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("raysweep", "torch", "transformers", "peft", "ray", "deepspeed", "mlflow", "pyarrow", "pillow")
COMMIT_ENV, DIRTY_ENV = "RAYSWEEP_GIT_COMMIT", "RAYSWEEP_GIT_DIRTY"


def code_version(cwd: str | Path | None = None) -> dict[str, str]:
    """``{"commit": sha or "unknown", "dirty": "true"/"false"/"unknown"}`` of the code being run.

    Dirty means tracked files differ from the commit (untracked files do not count).
    """
    cwd = str(cwd or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=30, check=True).stdout
        return {"commit": commit, "dirty": "true" if status.strip() else "false"}
    except (OSError, subprocess.SubprocessError):
        return {"commit": os.environ.get(COMMIT_ENV, "unknown"), "dirty": os.environ.get(DIRTY_ENV, "unknown")}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a result (``missing`` when not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def config_identity(section: dict, *extra) -> str:
    """A hash of a resolved config section (and extra values such as a limit and a seed).

    The identity of data rendered from a config: equal configs render equal rows (scenes are pure
    functions of config and index).
    """
    payload = json.dumps([section, *extra], sort_keys=True, default=str)
    return "config:" + hashlib.sha256(payload.encode()).hexdigest()


def eval_set_identity(eval_set, configs_root: Path | None = None) -> str:
    """The identity of one ``train.eval_sets`` entry: its Parquet dataset's content hash, or the
    resolved data config + limit of a set rendered on the fly (the limit's sample is seeded)."""
    from raysweep.datasets import dataset_identity

    if eval_set.path:
        return "parquet:" + dataset_identity(eval_set.path) + (f":limit={eval_set.limit}" if eval_set.limit else "")
    from raysweep._configlib import to_dict
    from raysweep.config import load_config

    data = load_config(eval_set.config, list(eval_set.overrides)).data
    return config_identity(to_dict(data), eval_set.limit)


def data_identities(cfg) -> dict[str, str]:
    """Identity of every dataset a run uses: ``train`` (its source) and each eval set by name."""
    from raysweep._configlib import to_dict
    from raysweep.datasets import dataset_identity

    if cfg.data.source == "synthetic":
        train = config_identity(to_dict(cfg.data))
    else:
        train = "parquet:" + dataset_identity(cfg.data.parquet[cfg.data.source])
    return {"train": train, **{s.name: eval_set_identity(s) for s in cfg.train.eval_sets}}


def provenance_tags(cfg=None, cwd: str | Path | None = None) -> dict[str, str]:
    """MLflow tags: ``raysweep.git_commit``, ``raysweep.git_dirty``, ``raysweep.version.<package>``
    and, with a config, ``raysweep.data.<name>`` for each dataset it uses."""
    version = code_version(cwd)
    tags = {"raysweep.git_commit": version["commit"], "raysweep.git_dirty": version["dirty"]}
    tags.update({f"raysweep.version.{k}": v for k, v in package_versions().items()})
    if cfg is not None:
        tags.update({f"raysweep.data.{k}": v for k, v in data_identities(cfg).items()})
    return tags
