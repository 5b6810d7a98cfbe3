"""Local folders and object-store URIs (``s3://``, ``gs://``, ``abfs://``, ...) through one door.

A storage location is a string: a local path (made absolute once, so Ray workers with another
working directory find it) or a URI that pyarrow understands, which is never passed to ``Path()``
(``Path("s3://b/x")`` is the local folder ``s3:/b/x``). Every read, write and listing goes through
``pyarrow.fs``, the filesystem layer Ray Train and Tune use for their ``storage_path``, so what
raysweep writes next to a run is where Ray puts its checkpoints. For S3 the usual AWS variables
apply, ``AWS_ENDPOINT_URL`` included (an S3-compatible server such as MinIO or moto).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow.fs as pafs

from raysweep.errors import UserError

__all__ = ["is_uri", "resolve", "join", "filesystem", "ray_storage", "exists", "read_text", "write_text",
           "read_json", "write_json", "list_files", "upload_folder", "is_local", "is_local_checkpoint"]  # fmt: skip


def is_uri(location: str) -> bool:
    """True for ``scheme://...`` (``file://`` included), False for a plain local path."""
    return "://" in str(location)


def is_local(location: str) -> bool:
    """True when ``location`` is on this machine's file system (a plain path or ``file://``)."""
    return not is_uri(location) or str(location).startswith("file://")


def is_local_checkpoint(checkpoint: str, workdir: str | os.PathLike | None = None) -> bool:
    """Whether ``model.checkpoint`` names a folder on this machine rather than a Hub id, ``tiny``, a
    ``shape:`` variant or a URI: it starts with ``/``, ``.`` or ``~``, or exists under ``workdir``
    (default the working directory). A Hub id ("Qwen/Qwen2-VL-2B-Instruct") looks like a relative
    path, so a bare relative name counts as local only where it exists. The one test of the
    pre-flight, the model loader and the sweep's path handling."""
    if checkpoint == "tiny" or checkpoint.startswith("shape:") or is_uri(checkpoint):
        return False
    return checkpoint.startswith(("/", ".", "~")) or os.path.exists(os.path.join(workdir or ".", checkpoint))


def resolve(location: str | os.PathLike) -> str:
    """The canonical form of a location: a local path absolute (``~`` expanded), a URI unchanged."""
    location = str(location)
    if not location:
        raise UserError("empty storage location; give a folder or a URI such as s3://bucket/prefix")
    if is_uri(location):
        return location.rstrip("/") if not location.endswith("://") else location
    return os.path.abspath(os.path.expanduser(location))


def join(location: str | os.PathLike, *parts: str) -> str:
    """``location`` followed by ``parts``, with ``/`` between them for a URI and ``os.path.join`` locally."""
    base = resolve(location)
    if not is_uri(base):
        return os.path.join(base, *parts)
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p.strip("/"))])


def filesystem(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``location`` and the path on it (``FileSystem.from_uri``).

    Raises:
        UserError: the scheme is unknown to pyarrow or its options are malformed.
    """
    resolved = resolve(location)
    try:
        return pafs.FileSystem.from_uri(resolved)
    except (ValueError, OSError) as err:  # ArrowInvalid is a ValueError, ArrowIOError an OSError
        reason = str(err).splitlines()[0]
        raise UserError(f"storage location {resolved}: {reason}; use a local folder or a URI such as s3://bucket/prefix") from None


def ray_storage(location: str | os.PathLike) -> dict[str, Any]:
    """Keyword arguments ``storage_path`` and ``storage_filesystem`` for Ray's ``RunConfig``/``Tuner.restore``."""
    fs, path = filesystem(location)
    return {"storage_path": path, "storage_filesystem": fs}


def exists(location: str | os.PathLike) -> bool:
    """True when a file or folder (a non-empty prefix, on an object store) is at ``location``."""
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_text(location: str | os.PathLike) -> str:
    """The UTF-8 text of the file at ``location``."""
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def write_text(location: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``location``, creating its folder if needed."""
    fs, path = filesystem(location)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def read_json(location: str | os.PathLike) -> Any:
    """The JSON document at ``location``."""
    return json.loads(read_text(location))


def write_json(location: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``location``."""
    write_text(location, json.dumps(data, indent=2, default=str) + "\n")


def list_files(location: str | os.PathLike) -> list[str]:
    """Paths of the files under ``location``, relative to it and sorted; empty when nothing is there."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    prefix = path.rstrip("/") + "/"
    return sorted(i.path[len(prefix):] for i in infos if i.type == pafs.FileType.File and i.path.startswith(prefix))


def upload_folder(folder: str | os.PathLike, location: str | os.PathLike) -> None:
    """Copy the local ``folder`` to ``location`` (replacing files of the same names)."""
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(resolve(folder), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
