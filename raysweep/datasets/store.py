"""The on-disk dataset: a folder of Parquet part files plus a ``manifest.json`` written last.

Writing (:class:`DatasetWriter`):

* A folder without a manifest is an interrupted write and is never read as a dataset. Parts go to a
  hidden sibling folder (``.NAME.partial-XXXXXXXX``, marked as raysweep's by a marker file) that is
  renamed into place only when complete, so a killed writer leaves the previous dataset (or nothing)
  and never a half one. The next build of the same ``--out`` removes such leftovers and says so.
* raysweep never deletes what it did not write: an existing ``--out`` must be missing, an empty
  folder, or a raysweep dataset (its ``manifest.json`` carries ``raysweep_version``), and a dataset
  is replaced only with ``overwrite``. The working directory, its parents and symbolic links are
  refused as ``--out``.

Reading (:func:`open_dataset`, :func:`read_dataset`): a dataset is validated when it is opened - the
manifest, the part files it lists (no unlisted or missing parts, row counts and sizes as listed),
each part's schema and column types, no nulls in required columns, ``area`` within the answer grid.
Any problem is one :class:`~raysweep.errors.UserError` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raysweep import __version__
from raysweep.errors import UserError
from raysweep.tasks import task_of_manifest

SCHEMA = pa.schema(
    [
        ("scene_id", pa.int64()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("image", pa.binary()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("question", pa.string()),
        ("prompt", pa.string()),
        ("answer", pa.string()),
        ("label", pa.int16()),
        ("area", pa.int8()),
        ("cell_row", pa.int8()),
        ("cell_col", pa.int8()),
        ("ref_row", pa.int8()),
        ("ref_col", pa.int8()),
        ("shape", pa.string()),
        ("color", pa.string()),
        ("size", pa.string()),
        ("n_distractors", pa.int16()),
        ("distractors", pa.string()),
        ("seed", pa.int64()),
        ("category", pa.string()),
        ("image_id", pa.int64()),
        ("bbox", pa.list_(pa.float64())),
        # Sets written with training-row corruptions (data.label_noise, data.answer_format_noise, ...):
        # the truth beside the trained label/answer, and which corruption the row got ('' none); null otherwise.
        ("true_label", pa.int16()),
        ("true_answer", pa.string()),
        ("corruption", pa.string()),
    ]
)
# Columns every consumer (training, evaluation, audit, contact sheets) relies on; never null.
# ``label`` (the answer's index in the task's vocabulary) is never null either, but sets written
# before it existed lack it: reading derives it from ``answer`` (:meth:`Dataset.read`).
# ``ref_row``/``ref_col`` (the reference object of relative_position) are null for other tasks.
REQUIRED = ("scene_id", "split", "source", "image", "width", "height", "question", "prompt", "answer", "area")
MANIFEST = "manifest.json"
PART_GLOB = "part-*.parquet"
_PARTIAL_MARKER = ".raysweep-partial"  # written into a staging folder when it is created


def rows_to_table(columns: dict[str, list]) -> pa.Table:
    """A table in :data:`SCHEMA` from column lists; missing columns are filled with nulls."""
    n = len(next(iter(columns.values())))
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def write_table(table: pa.Table, path: Path) -> Path:
    """One Parquet part file, written the same way by every writer."""
    pq.write_table(table, path, compression="zstd", row_group_size=1024)
    return path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_raysweep_dataset(path: str | Path) -> bool:
    """True when ``path`` is a folder whose ``manifest.json`` was written by raysweep."""
    mf = Path(path) / MANIFEST
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "raysweep_version" in manifest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _note(message: str) -> None:
    print(f"raysweep: {message}", file=sys.stderr, flush=True)


class DatasetWriter:
    """Writes part files into a staging folder and publishes it atomically with its manifest.

    Use as a context manager; leaving the block with an exception removes the staging folder.

    Args:
        out_dir: the dataset folder to create (or replace, see ``overwrite``).
        overwrite: replace ``out_dir`` when it holds a raysweep dataset. A folder that holds anything
            else is never replaced or emptied.

    Raises:
        UserError: ``out_dir`` is a file, a symbolic link, the working directory or one of its
            parents, a non-empty folder that is not a raysweep dataset, a dataset without
            ``overwrite``, or in a folder that cannot be written; or another live build is writing it.
    """

    def __init__(self, out_dir: str | Path, overwrite: bool = False):
        from raysweep.preflight import check_writable

        self.out = Path(os.path.abspath(os.path.expanduser(str(out_dir))))
        _check_target(self.out, str(out_dir), overwrite)
        check_writable(self.out.parent, f"--out {out_dir}")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.removed_leftovers = _remove_leftovers(self.out)
        self.staging = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        (self.staging / _PARTIAL_MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        self.started = time.time()

    def part_path(self, index: int) -> Path:
        return self.staging / f"part-{index:05d}.parquet"

    def write_part(self, index: int, table: pa.Table) -> Path:
        return write_table(table, self.part_path(index))

    def publish(self, manifest: dict) -> dict:
        """Write the manifest last, then move the folder into place; returns the full manifest.

        The manifest lists every part file with its rows, bytes and SHA-256 (``files``), which
        :func:`open_dataset` checks and :func:`dataset_identity` hashes.
        """
        files = [
            {"name": p.name, "rows": pq.read_metadata(p).num_rows, "bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(self.staging.glob(PART_GLOB))
        ]
        manifest = {
            "raysweep_version": __version__,
            "created_unix": round(self.started, 3),
            "seconds": round(time.time() - self.started, 3),
            **manifest,
            "files": files,
        }
        (self.staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False))
        (self.staging / _PARTIAL_MARKER).unlink()
        replaced = None
        if self.out.is_dir():
            # Checked again: the folder may have changed while the dataset was being built.
            if not any(self.out.iterdir()):
                self.out.rmdir()
            elif is_raysweep_dataset(self.out):
                replaced = self.out.parent / f".{self.out.name}.replaced-{uuid.uuid4().hex[:8]}"
                os.replace(self.out, replaced)
            else:
                raise UserError(f"--out {self.out} was filled by something else during the build; nothing was replaced")
        os.replace(self.staging, self.out)
        if replaced is not None:
            shutil.rmtree(replaced)
        return manifest

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        return False


def _check_target(out: Path, given: str, overwrite: bool) -> None:
    """Refuse every ``--out`` whose replacement could delete what raysweep did not write."""
    cwd = Path(os.getcwd())
    if out == cwd or out in cwd.parents:
        raise UserError(f"--out {given} is the working directory or one of its parents; name a new folder for the dataset")
    if out.is_symlink():
        raise UserError(f"--out {given} is a symbolic link; give the folder itself (raysweep does not replace links)")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {given} is a file; give a folder path")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not is_raysweep_dataset(out):
        raise UserError(
            f"--out {given} is a non-empty folder that is not a raysweep dataset; raysweep never deletes files it did "
            "not write: choose a new or empty folder"
        )
    if not overwrite:
        raise UserError(f"--out {given} already holds a dataset; pass --overwrite to replace it, or choose another --out")


def _remove_leftovers(out: Path) -> list[Path]:
    """Remove what killed builds of ``out`` left beside it: staging and replaced folders of raysweep's."""
    removed = []
    for path in sorted(out.parent.glob(f".{out.name}.partial-*")) + sorted(out.parent.glob(f".{out.name}.replaced-*")):
        marker = path / _PARTIAL_MARKER
        if marker.is_file():
            try:
                owner = json.loads(marker.read_text())
            except ValueError:
                owner = {}
            if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) and _pid_alive(owner["pid"]):
                raise UserError(f"another raysweep build (pid {owner['pid']}) is writing {out}; wait for it to finish")
        elif not is_raysweep_dataset(path):
            continue  # not raysweep's: leave it alone
        shutil.rmtree(path)
        _note(f"removed {path}, left by an interrupted build of {out}")
        removed.append(path)
    return removed


# -- reading ---------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A validated dataset folder: its manifest and part files in order."""

    path: Path
    manifest: dict
    parts: list[Path]

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def task(self):
        """The task whose questions the rows hold (:func:`raysweep.tasks.task_of_manifest`)."""
        from raysweep.tasks import task_of_manifest

        return task_of_manifest(self.manifest)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """All rows (or the given columns), parts in order, screened against the families' input limits.

        Rows whose image size some supported family refuses (:func:`raysweep.images.family_input_limits`,
        e.g. Qwen2-VL's aspect ratio over 200) are left out, so every family sees the same rows; sets
        built by this version hold none, older ones are screened here and the count is reported.
        Sets written before ``label`` existed get it from ``answer`` and the task's vocabulary.
        """
        derive = not self.parts or pq.read_schema(self.parts[0]).get_field_index("label") < 0
        derive = derive and (columns is None or "label" in columns)
        wanted = None if columns is None else list(dict.fromkeys([*columns, "width", "height"]))
        if derive and wanted is not None:
            wanted = [c for c in wanted if c != "label"] + (["answer"] if "answer" not in wanted else [])
        table = pa.concat_tables([_read_part(p, wanted) for p in self.parts])
        if derive:
            table = _with_label(table, self.task, self.path)
        keep = _within_family_limits(table)
        if not keep.all():
            _note(f"dataset {self.path}: left out {int((~keep).sum())} of {len(keep)} rows whose image size a supported "
                  "family refuses (see README, Images); rebuild the set to drop them for good")  # fmt: skip
            table = table.filter(pa.array(keep))
        return table if columns is None else table.select(columns)


def _with_label(table: pa.Table, task, path) -> pa.Table:
    """``table`` with a ``label`` column (after ``answer``) derived from its answers."""
    try:
        labels = [task.label_of(a) for a in table.column("answer").to_pylist()]
    except ValueError as err:
        raise UserError(f"dataset {path}: {err}; write the dataset again") from None
    at = table.schema.get_field_index("answer") + 1
    return table.add_column(at, pa.field("label", pa.int16()), pa.array(labels, pa.int16()))


def _within_family_limits(table: pa.Table):
    import numpy as np

    from raysweep.images import family_input_limits

    limits = family_input_limits()
    w = table.column("width").to_numpy(zero_copy_only=False).astype(np.float64)
    h = table.column("height").to_numpy(zero_copy_only=False).astype(np.float64)
    short, long = np.minimum(w, h), np.maximum(w, h)
    return (short >= limits.min_side) & (long <= limits.max_aspect_ratio * short)


def read_manifest(path: str | Path) -> dict:
    """The manifest of a complete dataset folder; a clear error for anything else (parts unchecked)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"dataset {path} not found; write one with `raysweep generate` or `raysweep coco`")
    mf = path / MANIFEST
    if not mf.is_file():
        raise UserError(f"dataset {path} has no {MANIFEST}: it is incomplete (interrupted?); write it again")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{mf}: not valid JSON ({getattr(err, 'msg', err)}); write the dataset again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("rows"), int) or manifest["rows"] < 0:
        raise UserError(f"{mf}: not a raysweep manifest (no row count); write the dataset again")
    return manifest


def _read_part(part: Path, columns=None) -> pa.Table:
    try:
        return pq.read_table(part, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{part}: cannot be read ({str(err).splitlines()[0]}); write the dataset again") from None


def open_dataset(path: str | Path) -> Dataset:
    """Open and validate a dataset folder (see the module doc for what is checked).

    Raises:
        UserError: the first problem found, naming the file (manifest or part) and the fix.
    """
    path = Path(path)
    manifest = read_manifest(path)
    again = "write the dataset again (raysweep generate / raysweep coco)"
    on_disk = sorted(path.glob(PART_GLOB))
    listed = manifest.get("files")
    if listed is None:  # manifests before per-file listing: parts numbered 0..parts-1
        listed = [{"name": f"part-{i:05d}.parquet"} for i in range(int(manifest.get("parts", len(on_disk))))]
    names = [f["name"] for f in listed]
    stray = sorted({p.name for p in on_disk} - set(names))
    if stray:
        raise UserError(f"dataset {path}: {stray[0]} is not listed in its {MANIFEST} (a part of another dataset?); remove it or {again}")
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        raise UserError(f"dataset {path}: part {missing[0]} listed in its {MANIFEST} is missing; {again}")
    if not names and manifest["rows"]:
        raise UserError(f"dataset {path} has a manifest but no part files; {again}")
    n_areas = _area_count(manifest)
    try:
        n_classes = task_of_manifest(manifest).n_classes
    except UserError as err:
        raise UserError(f"dataset {path}: its {MANIFEST} names a task raysweep does not know ({err.message})") from None
    total = 0
    for entry in listed:
        part = path / entry["name"]
        if "bytes" in entry and part.stat().st_size != entry["bytes"]:
            raise UserError(f"{part}: {part.stat().st_size} bytes, but its {MANIFEST} lists {entry['bytes']} (changed or truncated); {again}")
        try:
            meta = pq.read_metadata(part)
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as err:
            raise UserError(f"{part}: not a readable Parquet file ({str(err).splitlines()[0]}); {again}") from None
        if "rows" in entry and meta.num_rows != entry["rows"]:
            raise UserError(f"{part}: {meta.num_rows} rows, but its {MANIFEST} lists {entry['rows']}; {again}")
        _check_schema(part, schema, again)
        _check_values(part, meta, n_areas, n_classes, again)
        total += meta.num_rows
    if total != manifest["rows"]:
        raise UserError(f"dataset {path}: its parts hold {total} rows, but its {MANIFEST} says {manifest['rows']}; {again}")
    return Dataset(path, manifest, [path / n for n in names])


def _area_count(manifest: dict) -> int | None:
    cfg = manifest.get("config") or {}
    names = cfg.get("area_names")
    if isinstance(names, list) and names:
        return len(names)
    side = cfg.get("areas_per_side")
    return int(side) ** 2 if isinstance(side, int) else None


def _check_schema(part: Path, schema: pa.Schema, again: str) -> None:
    for name in REQUIRED:
        if schema.get_field_index(name) < 0:
            raise UserError(f"{part}: no column {name!r}; {again}")
    for field in SCHEMA:
        idx = schema.get_field_index(field.name)
        if idx >= 0 and not schema.field(idx).type.equals(field.type):
            raise UserError(f"{part}: column {field.name!r} is {schema.field(idx).type}, expected {field.type}; {again}")


def _check_values(part: Path, meta, n_areas: int | None, n_classes: int, again: str) -> None:
    """No nulls in required columns, ``area`` within the grid and ``label`` within the task's
    vocabulary, from the row-group statistics."""
    columns = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for name in REQUIRED:
            stats = group.column(columns[name]).statistics
            if stats is not None and stats.null_count:
                raise UserError(f"{part}: column {name!r} has {stats.null_count} empty values; {again}")
        stats = group.column(columns["area"]).statistics
        if stats is not None and stats.has_min_max and n_areas is not None and (stats.min < 0 or stats.max >= n_areas):
            raise UserError(f"{part}: column 'area' holds {stats.min}..{stats.max}, outside 0..{n_areas - 1}; {again}")
        if "label" in columns:
            stats = group.column(columns["label"]).statistics
            if stats is not None and stats.null_count:
                raise UserError(f"{part}: column 'label' has {stats.null_count} empty values; {again}")
            if stats is not None and stats.has_min_max and (stats.min < 0 or stats.max >= n_classes):
                raise UserError(f"{part}: column 'label' holds {stats.min}..{stats.max}, outside the task's 0..{n_classes - 1}; {again}")


def read_dataset(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """All rows of a validated dataset folder (see :func:`open_dataset`), parts in order."""
    return open_dataset(path).read(columns)


def dataset_identity(path: str | Path) -> str:
    """A content hash of a dataset: equal for byte-identical part files, whatever the folder or build time.

    Hashes the manifest's per-part SHA-256 list (computed from the files for manifests without one).
    Used to key caches and to record which data a run saw.
    """
    ds = open_dataset(path)
    listed = {f["name"]: f.get("sha256") for f in ds.manifest.get("files", [])}
    digest = hashlib.sha256()
    for part in ds.parts:
        digest.update(part.name.encode())
        digest.update((listed.get(part.name) or sha256_file(part)).encode())
    return digest.hexdigest()
