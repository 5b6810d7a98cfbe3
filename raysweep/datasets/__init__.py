"""Datasets on disk: one Parquet layout for synthetic scenes and COCO questions (no Ray)."""

from raysweep.datasets.store import SCHEMA, DatasetWriter, read_dataset, read_manifest

__all__ = ["SCHEMA", "DatasetWriter", "read_dataset", "read_manifest"]
