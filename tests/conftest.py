"""Shared fixtures. Tests never download; CPU only; one torch thread per process."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tinycoco() -> Path:
    path = SHARED / "data" / "tinycoco"
    if not path.is_dir():
        pytest.skip(f"{path} not found (the shared tinycoco sample lies beside the repo)")
    return path
