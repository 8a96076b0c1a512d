"""Shared fixtures. Tests never touch the user's cache: UASBENCH_CACHE_DIR points at a temporary folder.

Real data: tests read the small real-data fixtures inside the repository (tests/fixtures/real-<name>/, cut
from the full cases by scripts/make_test_fixtures.py; see each folder's README.md). The few tests that need
the WHOLE real cases ask ``whole_real_data(name)``: it finds them in the folder UASBENCH_SHARED_DATA names
(holding real-brats/, real-ixi/, ...; nothing is assumed when it is unset) and skips with the reason when they
are absent, unless
UASBENCH_REQUIRE_SHARED_DATA=1 (set by CI), which turns the skip into a failure.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

_SESSION_CACHE = tempfile.mkdtemp(prefix="uasbench-test-cache-")
os.environ["UASBENCH_CACHE_DIR"] = _SESSION_CACHE

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
REAL_DATASETS = ("brats", "ixi", "mslub", "isles22")
SHARED_DATA = Path(os.environ["UASBENCH_SHARED_DATA"]) if os.environ.get("UASBENCH_SHARED_DATA") else None
REQUIRE_SHARED_DATA = os.environ.get("UASBENCH_REQUIRE_SHARED_DATA") == "1"


def load_script(name: str) -> ModuleType:
    """A script of scripts/ (not a package) imported as a module, for the tests of its functions."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def real_brats_root() -> Path:
    """Two real BraTS2021-layout cases, only the protocol slab z 70..89 kept (tests/fixtures/real-brats)."""
    return FIXTURES / "real-brats"


@pytest.fixture(scope="session")
def real_ixi_root() -> Path:
    """One real IXI subject (T1, T2), every second voxel (tests/fixtures/real-ixi)."""
    return FIXTURES / "real-ixi"


@pytest.fixture(scope="session")
def real_mslub_root() -> Path:
    """One real MSLUB patient (four images and the lesion mask), every second voxel (tests/fixtures/real-mslub)."""
    return FIXTURES / "real-mslub"


@pytest.fixture(scope="session")
def real_isles22_root() -> Path:
    """One real ISLES'22 case in BIDS layout, every second voxel (tests/fixtures/real-isles22)."""
    return FIXTURES / "real-isles22"


@pytest.fixture(scope="session")
def whole_real_data() -> Callable[[str], Path]:
    """``whole_real_data("brats")``: the folder of the whole real cases; skips (or fails under CI) without it."""

    def find(name: str) -> Path:
        if name not in REAL_DATASETS:
            raise ValueError(f"unknown real dataset {name!r}; one of {', '.join(REAL_DATASETS)}")
        folder = SHARED_DATA / f"real-{name}" if SHARED_DATA is not None else None
        if folder is None or not folder.is_dir():
            reason = (f"whole real-{name} cases not found at {folder}" if folder is not None else
                      f"whole real-{name} cases: UASBENCH_SHARED_DATA is not set (the folder holding real-{name}/)")
            if REQUIRE_SHARED_DATA:
                pytest.fail(f"{reason}; UASBENCH_REQUIRE_SHARED_DATA=1 makes them mandatory")
            pytest.skip(reason)
        return folder

    return find


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test networks run faster on one thread than fighting over two cores (and results are stable)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
