"""Slice cache and load_benchmark_data: slice roles, memory mapping, bad-case modes, stale-cache protection."""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from test_brats_loader import _break, write_case
from uasbench.data.benchmark_data import load_benchmark_data
from uasbench.data.layouts import open_dataset
from uasbench.data.phantom import write_phantom_dataset
from uasbench.data.cache import data_fingerprint, open_cache, open_phantom_cache, pack, phantom_cache_exists, unpack
from uasbench.data.preprocess import Preparation
from uasbench.errors import UasbenchError
from uasbench.modalities import Pair

SMALL = Preparation(size=8)
PAIR = Pair("flair", "t2")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("UASBENCH_CACHE_DIR", str(path))
    return path


def _dataset(root: Path, n: int = 12) -> Path:
    """``n`` tiny cases; every fourth one has no tumour in the z range."""
    for i in range(n):
        write_case(root, f"SYN_{i:03d}", seed=i, tumour_z=None if i % 4 == 3 else (72 + i % 10, 76 + i % 10))
    return root


def test_real_cases_with_a_user_split(tmp_path, cache_dir, real_brats_root):
    split = tmp_path / "split.csv"
    split.write_text("subject,split\nTCGA-DU-7294,train\nTCGA-FG-6692,test\n")
    data = load_benchmark_data(real_brats_root, PAIR, split_file=split, progress=False)
    assert data.train.x.shape == data.train.y.shape == (20, 128, 128)
    assert set(data.train.subjects) == {"TCGA-DU-7294"} and data.train.z.tolist() == list(range(70, 90))
    assert data.test.subjects == ("TCGA-FG-6692",) and data.test.z.tolist() == [87]
    assert data.test.seg.dtype == bool and data.test.seg.any() and data.test.y is None
    assert not (data.test.seg & ~data.test.brain).any()
    assert len(data.val) == 0 and len(data.val_healthy) == 0 and data.val.x.shape == (0, 128, 128)
    assert data.report["warnings"] == ["val set is empty"]
    assert data.split_path == str(split) and len(data.split_sha256) == 64
    assert data.protocol == Preparation().to_dict()
    # paper normalisation: brain z-scored around 0, background exactly 0
    x, brain = data.test.x[0], data.test.brain[0]
    assert abs(float(x[brain].mean())) < 1.0 and np.all(x[~brain] == 0)


def test_slice_roles_and_disjoint_subjects(tmp_path, cache_dir):
    data = load_benchmark_data(_dataset(tmp_path / "d", 20), PAIR, protocol=SMALL, seed=5, progress=False)
    report = data.report
    assert report["subjects"] == {"train": 16, "val": 2, "test": 2}
    train, val, test = set(data.train.subjects), set(data.val_healthy.subjects), set(data.test.subjects)
    assert not (train & val) and not (train & test) and not (val & test)
    assert set(data.val.subjects) <= val
    for i, subject in enumerate(data.test.subjects):  # largest (here: first) tumour slice
        start = 72 + int(subject[-3:]) % 10
        assert data.test.z[i] == start and data.test.seg[i].any()
    assert data.train.seg is None
    healthy_train = len(data.train)
    assert healthy_train == sum(20 - (0 if int(s[-3:]) % 4 == 3 else 4) for s in train)
    counts = {s: data.val_healthy.subjects.count(s) for s in val}
    assert all(c == 4 for c in counts.values()) and not data.val_healthy.seg.any()
    skipped = report["no_tumour_in_range"]
    assert all(int(s[-3:]) % 4 == 3 for s in skipped["val"] + skipped["test"])
    assert len(data.val) + len(skipped["val"]) == 2 and len(data.test) + len(skipped["test"]) == 2
    assert data.train.x.dtype == np.float32 and data.train.y.shape == data.train.x.shape == (healthy_train, 8, 8)


def test_cache_is_memory_mapped_and_reused(tmp_path, cache_dir):
    cases = open_dataset(_dataset(tmp_path / "d", 3))
    cache = open_cache(cases, SMALL, progress=False, workers=2)
    image = cache.image("SYN_000", "t1")
    assert image.shape == (20, 8, 8) and image.dtype == np.float32 and not image.flags.writeable
    assert sorted(p.name for p in cache.path.iterdir()) == ["SYN_000.npz", "SYN_001.npz", "SYN_002.npz", "meta.json"]
    built = (cache.path / "meta.json").stat().st_mtime_ns
    assert open_cache(cases, SMALL, progress=False).path == cache.path
    assert (cache.path / "meta.json").stat().st_mtime_ns == built
    assert not [p for p in cache.path.parent.iterdir() if p.name.startswith(".building")]


def test_changed_protocol_or_data_never_reuses_a_stale_cache(tmp_path, cache_dir):
    root = _dataset(tmp_path / "d", 3)
    first = load_benchmark_data(root, PAIR, protocol=SMALL, progress=False)
    official = load_benchmark_data(root, PAIR, protocol=Preparation(size=8, normalisation="official"), progress=False)
    assert official.fingerprint != first.fingerprint
    assert np.allclose(official.train.x[~official.train.brain], -3)
    # rewrite one file with different content: size/mtime change, so the cache is rebuilt from it
    target = root / "SYN_000" / "SYN_000_flair.nii.gz"
    before = target.stat()
    write_case(tmp_path / "other", "SYN_000", seed=99)
    os.replace(tmp_path / "other" / "SYN_000" / "SYN_000_flair.nii.gz", target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    second = load_benchmark_data(root, PAIR, protocol=SMALL, progress=False)
    assert second.fingerprint != first.fingerprint
    old_cache, new_cache = (Path(d.report["cache"]) for d in (first, second))
    assert old_cache != new_cache
    old_x, new_x = (unpack(dict(np.load(c / "SYN_000.npz")))["img"][0] for c in (old_cache, new_cache))
    assert not np.allclose(old_x, new_x)
    # adding a case changes the fingerprint too
    cases = open_dataset(root).cases
    write_case(root, "SYN_999")
    assert data_fingerprint(open_dataset(root).cases) != data_fingerprint(cases)


def test_bad_case_stop_and_skip(tmp_path, cache_dir):
    root = _dataset(tmp_path / "d", 4)
    _break(root / "SYN_001", "nan")
    with pytest.raises(UasbenchError, match=r"case SYN_001: file SYN_001_t2.nii.gz contains NaN"):
        load_benchmark_data(root, PAIR, protocol=SMALL, progress=False)
    assert not list((cache_dir / "slices").iterdir())  # nothing half-built left behind
    data = load_benchmark_data(root, PAIR, protocol=SMALL, on_bad_case="skip", progress=False)
    assert list(data.report["bad_cases_skipped"]) == ["SYN_001"]
    assert "1 bad case(s) skipped: SYN_001" in data.report["warnings"]
    assert "SYN_001" not in set(data.train.subjects) | set(data.test.subjects) | set(data.val.subjects)
    with pytest.raises(UasbenchError, match="SYN_001"):  # a skip-mode cache does not excuse stop mode
        load_benchmark_data(root, PAIR, protocol=SMALL, progress=False)
    with pytest.raises(UasbenchError, match="on_bad_case"):
        load_benchmark_data(root, PAIR, protocol=SMALL, on_bad_case="ignore", progress=False)


def test_too_shallow_volumes_are_bad_cases(tmp_path, cache_dir):
    write_case(tmp_path / "d", "SHORT", shape=(12, 12, 60), tumour_z=(10, 12))
    write_case(tmp_path / "d", "OK", tumour_z=(10, 12))
    with pytest.raises(UasbenchError, match="case SHORT: volumes have 60 axial slices"):
        load_benchmark_data(tmp_path / "d", PAIR, protocol=SMALL, progress=False)


def test_empty_brain_is_a_bad_case(tmp_path, cache_dir):
    folder = write_case(tmp_path / "d", "ZERO")
    nib.save(nib.Nifti1Image(np.zeros((12, 12, 92), np.int16), np.eye(4)), folder / "ZERO_t1.nii.gz")
    with pytest.raises(UasbenchError, match="case ZERO: file ZERO_t1.nii.gz: empty brain"):
        load_benchmark_data(tmp_path / "d", PAIR, protocol=SMALL, progress=False)


def test_packing_is_lossless_bit_for_bit():
    """Pixels outside the brain are one constant per modality (kept once), unless they are not (stored whole);
    -0.0 and 0.0 are told apart."""
    rng = np.random.default_rng(0)
    brain = rng.random((4, 3, 6, 6)) > 0.5
    img = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    img[0][~brain[0]] = 0.0
    img[1][~brain[1]] = -3.0
    img[2][~brain[2]] = 0.0
    img[2][tuple(np.argwhere(~brain[2])[-1])] = -0.0  # equal to 0.0 as a number, not as bits
    arrays = {"img": img, "brain": brain, "seg": rng.random((3, 6, 6)) > 0.7, "area": np.arange(3)}
    stored = pack(arrays)
    assert stored["dense"].tolist() == [False, False, True, True]
    back = unpack(stored)
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].tobytes() == a.tobytes()


@pytest.mark.slow
def test_phantom_generated_straight_into_the_cache_equals_its_files(tmp_path, cache_dir):
    """The embedded benchmark never writes volumes: its cache must hold what the NIfTI route gives."""
    root = write_phantom_dataset(tmp_path / "ph", 1, seed=3, progress=False, workers=1)
    from_files = open_cache(open_dataset(root), SMALL, progress=False, workers=1)
    assert not phantom_cache_exists(1, 3, SMALL)  # what decides whether "Preparing ... (first use only)" shows
    direct = open_phantom_cache(1, 3, SMALL, progress=False, workers=1)
    assert phantom_cache_exists(1, 3, SMALL) and not phantom_cache_exists(1, 3, Preparation())
    assert direct.path != from_files.path and direct.subjects == from_files.subjects == ["UASPH_00000"]
    for name in ("img", "brain", "seg", "area"):
        assert direct._load("UASPH_00000", name).tobytes() == from_files._load("UASPH_00000", name).tobytes()
