"""Stand-ins for :class:`raysweep.launch.data.BatchStage` that fault in a Ray Data task, for tests only."""

from __future__ import annotations

import importlib
import os

import numpy as np


class HalfImportStage:
    """A batch stage whose batches after the first import :mod:`tests.half_import` (slow while the
    folder's ``slow`` file exists); every batch returns ``id`` and the ``pid`` of the process."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, batch: dict) -> dict:
        ids = batch["id"]
        if int(ids[0]) > 0:
            os.environ["RAYSWEEP_HALF_IMPORT_DIR"] = self.folder
            importlib.import_module("tests.half_import")
        return {"id": ids, "pid": np.full(len(ids), os.getpid(), np.int64)}
