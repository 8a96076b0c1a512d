"""Run directories are written atomically and read back faithfully."""
from __future__ import annotations

import json

import numpy as np
import pytest

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.results import MANIFEST, ScoredSplits, atomic_directory, read_manifest, write_json


def test_interrupted_write_leaves_nothing_that_looks_finished(tmp_path):
    final = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(final) as staging:
            (staging / "scores.npz").write_bytes(b"partial")
            raise KeyboardInterrupt
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone too


def test_successful_write_appears_at_once(tmp_path):
    final = tmp_path / "run"
    with atomic_directory(final) as staging:
        write_json(staging / MANIFEST, {"complete": True, "method": "ae", "pair": "fl-t2", "profile": "quick",
                                        "seed": 1})
        assert not final.exists()  # nothing visible until the block ends
    assert read_manifest(final).seed == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_existing_run_directory_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(UasbenchError, match="already exists"):
        with atomic_directory(tmp_path / "run"):
            pass


def test_incomplete_or_missing_manifest_is_refused(tmp_path):
    with pytest.raises(UasbenchError, match="not a run directory"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"complete": False}))
    with pytest.raises(UasbenchError, match="did not finish"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{truncated")
    with pytest.raises(UasbenchError, match="not valid JSON"):
        read_manifest(tmp_path)


def _slices(n: int, seed: int, labelled: bool) -> SliceSet:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6)).astype(np.float32)
    return SliceSet(x=x, brain=x > -1, subjects=tuple(f"S{seed}_{i}" for i in range(n)), z=np.arange(70, 70 + n),
                    seg=(x > 1) if labelled else None)


def test_scores_round_trip(tmp_path):
    val, healthy, test = _slices(2, 1, True), _slices(3, 2, False), _slices(4, 3, True)
    scored = ScoredSplits(val_maps=val.x * 2, val=val, healthy_maps=healthy.x + 1, val_healthy=healthy,
                          test_maps=test.x ** 2, test=test)
    scored.save(tmp_path / "scores.npz")
    back = ScoredSplits.load(tmp_path / "scores.npz")
    np.testing.assert_array_equal(back.test_maps, scored.test_maps)
    np.testing.assert_array_equal(back.test.seg, test.seg)
    np.testing.assert_array_equal(back.val_healthy.seg, np.zeros_like(healthy.brain))  # unlabelled: no tumour
    assert back.val.subjects == val.subjects
    np.testing.assert_array_equal(back.test.z, test.z)


def test_corrupt_scores_file_is_a_clear_error(tmp_path):
    (tmp_path / "scores.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UasbenchError, match="cannot read cached scores"):
        ScoredSplits.load(tmp_path / "scores.npz")
