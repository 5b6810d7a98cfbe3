"""Datasets on disk: one Parquet layout for synthetic scenes and COCO questions (no Ray)."""

from raysweep.datasets.store import (
    SCHEMA,
    Dataset,
    DatasetWriter,
    dataset_identity,
    is_raysweep_dataset,
    open_dataset,
    read_dataset,
    read_manifest,
)

__all__ = [
    "SCHEMA",
    "Dataset",
    "DatasetWriter",
    "dataset_identity",
    "is_raysweep_dataset",
    "open_dataset",
    "read_dataset",
    "read_manifest",
]
