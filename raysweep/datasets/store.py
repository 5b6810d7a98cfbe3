"""The on-disk dataset: a folder of Parquet part files plus a ``manifest.json`` written last.

A folder without a manifest is an interrupted write and is never read as a dataset. Writes go to a
hidden sibling folder that is renamed into place only when complete, so a killed writer leaves the
previous dataset (or nothing) and never a half one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raysweep import __version__
from raysweep.errors import UserError

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
        ("area", pa.int8()),
        ("cell_row", pa.int8()),
        ("cell_col", pa.int8()),
        ("shape", pa.string()),
        ("color", pa.string()),
        ("size", pa.string()),
        ("n_distractors", pa.int16()),
        ("distractors", pa.string()),
        ("seed", pa.int64()),
        ("category", pa.string()),
        ("image_id", pa.int64()),
        ("bbox", pa.list_(pa.float64())),
    ]
)
MANIFEST = "manifest.json"


def rows_to_table(columns: dict[str, list]) -> pa.Table:
    """A table in :data:`SCHEMA` from column lists; missing columns are filled with nulls."""
    n = len(next(iter(columns.values())))
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def write_table(table: pa.Table, path: Path) -> Path:
    """One Parquet part file, written the same way by every writer."""
    pq.write_table(table, path, compression="zstd", row_group_size=1024)
    return path


class DatasetWriter:
    """Writes part files into a staging folder and publishes it atomically with its manifest.

    Use as a context manager; leaving the block with an exception removes the staging folder.
    """

    def __init__(self, out_dir: str | Path, overwrite: bool = False):
        self.out = Path(out_dir)
        if (self.out / MANIFEST).exists() and not overwrite:
            raise UserError(f"{self.out} already holds a dataset; pass --overwrite or choose another --out")
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file; give a folder path")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.staging = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        self.started = time.time()

    def part_path(self, index: int) -> Path:
        return self.staging / f"part-{index:05d}.parquet"

    def write_part(self, index: int, table: pa.Table) -> Path:
        return write_table(table, self.part_path(index))

    def publish(self, manifest: dict) -> dict:
        """Write the manifest last, then move the folder into place; returns the full manifest."""
        manifest = {
            "raysweep_version": __version__,
            "created_unix": round(self.started, 3),
            "seconds": round(time.time() - self.started, 3),
            **manifest,
        }
        (self.staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False))
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.staging, self.out)
        return manifest

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        return False


def read_manifest(path: str | Path) -> dict:
    """The manifest of a complete dataset folder; a clear error for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"dataset {path} not found; write one with `raysweep generate` or `raysweep coco`")
    mf = path / MANIFEST
    if not mf.is_file():
        raise UserError(f"dataset {path} has no {MANIFEST}: it is incomplete (interrupted?); write it again")
    try:
        return json.loads(mf.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{mf}: not valid JSON ({err.msg}); write the dataset again") from None


def read_dataset(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """All rows of a complete dataset folder, parts in order."""
    read_manifest(path)
    parts = sorted(Path(path).glob("part-*.parquet"))
    if not parts:
        raise UserError(f"dataset {path} has a manifest but no part files; write it again")
    tables = [pq.read_table(p, columns=columns) for p in parts]
    return pa.concat_tables(tables)
