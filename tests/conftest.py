"""Shared fixtures. Tests never touch the user's cache: UASBENCH_CACHE_DIR points at a temporary folder."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_CACHE = tempfile.mkdtemp(prefix="uasbench-test-cache-")
os.environ["UASBENCH_CACHE_DIR"] = _SESSION_CACHE

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_BRATS = Path(os.environ.get("UASBENCH_REAL_BRATS", REPO_ROOT.parent / "shared" / "data" / "real-brats"))


@pytest.fixture(scope="session")
def real_brats_root() -> Path:
    """The two real BraTS2021-layout cases shipped beside the repository (../shared/data/real-brats)."""
    if not (REAL_BRATS / "TCGA-FG-6692").is_dir():
        pytest.fail(f"real sample cases not found at {REAL_BRATS} (set UASBENCH_REAL_BRATS)")
    return REAL_BRATS


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test networks run faster on one thread than fighting over two cores (and results are stable)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
