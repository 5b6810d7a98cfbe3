"""Base weights staged once into a shared Hugging Face cache, so GPU nodes never download them.

``raysweep stage`` fills ``DIR/hub`` in the layout of the Hugging Face cache
(``models--ORG--NAME/{refs,snapshots}``). Workers run with ``HF_HOME=DIR`` and ``HF_HUB_OFFLINE=1``:
``from_pretrained("ORG/NAME")`` then reads the staged files and never touches the network, so nodes
without internet work and no node downloads a 15 GB checkpoint of its own.

A Hub id is downloaded (``huggingface_hub.snapshot_download``, on a machine with network); a local
checkpoint folder written by ``save_pretrained`` is staged under the Hub id it stands for
(``PATH=ORG/NAME``), for clusters whose weights arrive by other means.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from raysweep.errors import UserError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Staged:
    """One staged checkpoint: its Hub id, its snapshot folder and what it holds."""

    repo_id: str
    snapshot: Path
    files: int
    bytes: int
    source: str  # "hub", "cache" (already there) or the local folder


def cache_folder(hf_home: str | Path, repo_id: str) -> Path:
    """``HF_HOME/hub/models--ORG--NAME``: where ``from_pretrained(repo_id)`` looks under ``HF_HOME``."""
    return Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))


def parse_spec(spec: str) -> tuple[str | None, str]:
    """``ORG/NAME`` -> (None, id); ``PATH=ORG/NAME`` -> (PATH, id).

    Raises:
        UserError: a local folder without the Hub id it stands for, or a malformed id.
    """
    folder, _, repo_id = spec.rpartition("=") if "=" in spec else ("", "", spec)
    if not folder and Path(repo_id).expanduser().exists():
        raise UserError(f"{spec} is a local folder; say which Hub id it stands for: {spec}=ORG/NAME")
    if not REPO_ID.match(repo_id):
        raise UserError(f"{spec}: {repo_id!r} is not a Hub id; give ORG/NAME (e.g. llava-hf/llava-v1.6-vicuna-7b-hf) or PATH=ORG/NAME")
    return (folder or None), repo_id


def check_checkpoint(folder: Path, spec: str) -> None:
    """A ``save_pretrained`` folder: ``config.json`` and weights (``*.safetensors`` or ``*.bin``)."""
    if not folder.is_dir():
        raise UserError(f"{spec}: folder {folder} not found; give a folder written by save_pretrained")
    if not (folder / "config.json").is_file():
        raise UserError(f"{spec}: {folder} has no config.json; give a folder written by save_pretrained")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise UserError(f"{spec}: {folder} has no weights (*.safetensors or *.bin); give a folder written by save_pretrained")


def stage_folder(folder: Path, repo_id: str, hf_home: Path, spec: str) -> Staged:
    """Copy a local checkpoint folder into the cache as ``repo_id``'s ``main`` revision."""
    check_checkpoint(folder, spec)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha1()
    for path in files:  # a content hash stands in for the Hub's commit id
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha1(path.read_bytes()).digest())
    revision = digest.hexdigest()
    root = cache_folder(hf_home, repo_id)
    snapshot = root / "snapshots" / revision
    if not snapshot.is_dir():
        partial = snapshot.with_name(revision + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial)
        partial.rename(snapshot)  # a node never sees a half-copied snapshot
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return Staged(repo_id, snapshot, len(files), sum(p.stat().st_size for p in files), str(folder))


def stage_hub(repo_id: str, hf_home: Path, revision: str | None) -> Staged:
    """Download ``repo_id`` (or find it already staged) into ``hf_home/hub``."""
    from huggingface_hub import snapshot_download

    cached = cache_folder(hf_home, repo_id).is_dir()
    try:
        path = Path(snapshot_download(repo_id, revision=revision, cache_dir=str(Path(hf_home) / "hub")))
    except Exception as err:  # network, unknown repo, gated model, offline mode: all one line for the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        raise UserError(f"cannot download {repo_id}{offline}: {reason}; run `raysweep stage` on a machine that reaches the Hub "
                        f"(and `huggingface-cli login` for gated models)") from None  # fmt: skip
    files = [p for p in path.rglob("*") if p.is_file()]
    return Staged(repo_id, path, len(files), sum(p.stat().st_size for p in files), "cache" if cached else "hub")


def stage_checkpoints(specs: list[str], hf_home: str | Path, revision: str | None = None) -> list[Staged]:
    """Stage every ``ORG/NAME`` or ``PATH=ORG/NAME`` of ``specs`` under ``hf_home``; all are checked first."""
    parsed = [(spec, *parse_spec(spec)) for spec in specs]
    for spec, folder, _ in parsed:
        if folder:
            check_checkpoint(Path(folder).expanduser(), spec)
    hf_home = Path(os.path.abspath(os.path.expanduser(str(hf_home))))
    staged = []
    for spec, folder, repo_id in parsed:
        if folder:
            staged.append(stage_folder(Path(folder).expanduser().resolve(), repo_id, hf_home, spec))
        else:
            staged.append(stage_hub(repo_id, hf_home, revision))
    return staged
