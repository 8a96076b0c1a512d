"""The synthetic BraTS-like phantom: determinism, file layout, tissue contrasts, tumours, atomic writing."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from uasbench.data import phantom
from uasbench.data.anatomy import BRATS_SHAPE, load_anatomy, upsample2, upsample2_above, upsample2_at, upsample2_box
from uasbench.errors import UasbenchError

# index % 20: 0 healthy, 1 low-grade T1-iso, 2 glioblastoma-like
HEALTHY, T1_ISO, GBM = 0, 1, 2


@pytest.fixture(scope="module")
def subjects() -> dict[int, phantom.PhantomSubject]:
    return {i: phantom.generate_subject(i, seed=0) for i in (HEALTHY, T1_ISO, GBM)}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return phantom.write_phantom_dataset(tmp_path_factory.mktemp("ph") / "set", 2, seed=3, progress=False,
                                         workers=1)


def test_anatomy_asset_is_brain_shaped() -> None:
    anat = load_anatomy()
    assert anat.gm.shape == anat.wm.shape == anat.csf.shape == anat.ventricles.shape
    total = anat.gm + anat.wm + anat.csf
    assert total.max() <= 1.01 and (total > 0.5).sum() * 8 / 1000 > 1000  # > 1 litre of brain
    assert (anat.ventricles > 0.5).sum() * 8 / 1000 > 5  # lateral ventricles present


def test_partial_upsampling_gives_the_whole_volume_values() -> None:
    """The box, slab-gather and threshold variants agree with upsampling the whole volume at once (up to the
    last bit of float32 rounding, which torch's vectorised and scalar loops may place differently), also for
    boxes at the volume's edges and slabs that do not divide the volume."""
    rng = np.random.default_rng(0)
    volume = rng.random((21, 9, 7), dtype=np.float32)
    whole = upsample2(volume[None])[0]
    for box in ((slice(3, 8), slice(2, 5), slice(0, 7)), (slice(0, 21), slice(0, 1), slice(6, 7))):
        part = upsample2_box(volume[None], box)[0]
        assert part.shape == tuple(2 * (b.stop - b.start) for b in box)
        np.testing.assert_allclose(part, whole[tuple(slice(2 * b.start, 2 * b.stop) for b in box)], rtol=1e-6)
    index = np.sort(rng.choice(whole.size, 500, replace=False))
    np.testing.assert_allclose(upsample2_at(volume, index, planes=4), whole.reshape(-1)[index], rtol=1e-6)
    level = float(np.median(whole))
    assert np.array_equal(upsample2_above(volume, level, planes=4), whole > level)


def test_same_seed_same_subject_and_independent_of_dataset_size(subjects, written) -> None:
    again = phantom.generate_subject(GBM, seed=0)
    for m in phantom.IMAGE_MODALITIES:
        np.testing.assert_array_equal(again.images[m], subjects[GBM].images[m])
    np.testing.assert_array_equal(again.seg, subjects[GBM].seg)
    # subject 1 of a 2-subject set equals subject 1 generated on its own (so it is the same whatever N is)
    alone = phantom.generate_subject(1, seed=3)
    on_disk = np.asarray(nib.load(written / "UASPH_00001" / "UASPH_00001_t2.nii.gz").dataobj)
    np.testing.assert_array_equal(on_disk, alone.images["t2"])
    other_seed = phantom.generate_subject(GBM, seed=1)
    assert not np.array_equal(other_seed.images["t1"], subjects[GBM].images["t1"])


def test_written_layout_matches_brats2021(written: Path) -> None:
    cases = sorted(p.name for p in written.iterdir())
    assert cases == ["UASPH_00000", "UASPH_00001"]
    for case in cases:
        names = {p.name for p in (written / case).iterdir()}
        assert names == {f"{case}_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2", "seg")} | {f"{case}_phantom.json"}
        for m in ("flair", "t1", "t1ce", "t2", "seg"):
            img = nib.load(written / case / f"{case}_{m}.nii.gz")
            assert img.shape == BRATS_SHAPE
            np.testing.assert_array_equal(img.affine, phantom.BRATS_AFFINE)
            assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
            assert img.get_data_dtype() == (np.uint8 if m == "seg" else np.int16)
        meta = json.loads((written / case / f"{case}_phantom.json").read_text())
        assert meta["version"] == phantom.PHANTOM_VERSION and meta["seed"] == 3
        assert {"kind", "protocol", "volume_cm3", "site"} <= set(meta)


def test_labels_and_background(subjects) -> None:
    for s in subjects.values():
        assert set(np.unique(s.seg)) <= {0, 1, 2, 4}
        brain = s.tissue > 0
        for vol in s.images.values():
            assert vol.dtype == np.int16 and vol.shape == BRATS_SHAPE
            assert (vol[~brain] == 0).all() and (vol[brain] > 0).all()
        assert (s.seg[~brain] == 0).all()
    assert not subjects[HEALTHY].seg.any()
    assert set(np.unique(subjects[GBM].seg)) == {0, 1, 2, 4}
    assert set(np.unique(subjects[T1_ISO].seg)) == {0, 1, 2}  # non-enhancing: no label 4


def test_tissue_contrast_ordering(subjects) -> None:
    s = subjects[HEALTHY]
    pure = {k: ndi.binary_erosion(s.tissue == k, iterations=1) for k in (1, 2, 3)}  # 1 CSF, 2 GM, 3 WM
    ventricles = ndi.binary_erosion(s.tissue == 1, iterations=3)  # deep CSF, free of partial volume
    med = {m: {k: np.median(v[mask]) for k, mask in pure.items()} for m, v in s.images.items()}
    assert med["t1"][3] > med["t1"][2] > med["t1"][1]
    assert med["t2"][1] > med["t2"][2] > med["t2"][3]
    assert med["flair"][2] > med["flair"][3]
    assert np.median(s.images["flair"][ventricles]) < 0.5 * med["flair"][3]  # CSF nulled


def _ratio_to_nearby_wm(s: phantom.PhantomSubject, modality: str) -> float:
    lesion = ndi.binary_erosion(s.seg > 0, iterations=2)
    shell = ndi.binary_dilation(s.seg > 0, iterations=15) & ~ndi.binary_dilation(s.seg > 0, iterations=3)
    wm = ndi.binary_erosion(s.tissue == 3, iterations=2) & shell
    vol = s.images[modality].astype(float)
    return float(vol[lesion].mean() / vol[wm].mean())


def test_low_grade_lesion_hides_on_t1_shows_on_t2_flair(subjects) -> None:
    s = subjects[T1_ISO]
    assert s.params["kind"] == "low_grade_t1_iso"
    assert abs(_ratio_to_nearby_wm(s, "t1") - 1) < 0.05
    assert abs(_ratio_to_nearby_wm(s, "t1ce") - 1) < 0.05
    assert _ratio_to_nearby_wm(s, "t2") > 1.4
    assert _ratio_to_nearby_wm(s, "flair") > 1.4


def test_glioblastoma_enhances_on_t1ce(subjects) -> None:
    s = subjects[GBM]
    rim = s.seg == 4
    wm = ndi.binary_erosion(s.tissue == 3, iterations=2) & (s.seg == 0)
    assert np.median(s.images["t1ce"][rim]) > 1.3 * np.median(s.images["t1ce"][wm])
    assert np.median(s.images["flair"][s.seg == 2]) > 1.3 * np.median(s.images["flair"][wm])


def test_tumour_placement_suits_the_protocol_slab() -> None:
    """Largest tumour slice in z 70..89; enough tumour subjects keep healthy slices there for training."""
    kept = 0
    indices = [i for i in range(20) if phantom.subject_kind(i) != "healthy"][:6]
    for i in indices:
        area = phantom.tumour_area_per_slice(i, seed=0)
        assert 70 <= int(area.argmax()) <= 89
        kept += int((area[70:90] == 0).any())
    assert kept >= len(indices) // 2


def test_placement_estimate_matches_generated_volume(subjects) -> None:
    s = subjects[GBM]
    area = (s.seg > 0).sum(axis=(0, 1))
    assert 70 <= s.params["largest_slice"] == int(area.argmax()) <= 89
    assert s.params["healthy_protocol_slices"] == int((area[70:90] == 0).sum())
    estimate = phantom.tumour_area_per_slice(GBM, seed=0)
    assert abs(int(estimate.argmax()) - int(area.argmax())) <= 3


def test_write_refuses_non_empty_target(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(UasbenchError, match="not an empty folder"):
        phantom.write_phantom_dataset(tmp_path / "x", 1, progress=False, workers=1)
    with pytest.raises(UasbenchError, match="subjects"):
        phantom.write_phantom_dataset(tmp_path / "y", 0, progress=False, workers=1)


def test_interrupted_write_leaves_no_complete_looking_folder(tmp_path: Path, monkeypatch) -> None:
    real = phantom.write_subject
    calls = []

    def failing(folder: Path, index: int, seed: int) -> dict:
        calls.append(index)
        if index == 1:
            raise RuntimeError("disk full")
        return real(folder, index, seed)

    monkeypatch.setattr(phantom, "write_subject", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        phantom.write_phantom_dataset(tmp_path / "set", 3, progress=False, workers=1)
    assert calls == [0, 1]
    assert list(tmp_path.iterdir()) == []  # neither the target nor the partial build remains


def test_default_root_is_generated_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UASBENCH_CACHE_DIR", str(tmp_path))
    made = []

    def fake_write(out: Path, n: int, seed: int = 0, **_: object) -> Path:
        made.append((n, seed))
        out.mkdir(parents=True)
        (out / "UASPH_00000").mkdir()
        return out

    monkeypatch.setattr(phantom, "write_phantom_dataset", fake_write)
    first = phantom.default_phantom_root(progress=False)
    second = phantom.default_phantom_root(progress=False)
    assert first == second == tmp_path / f"phantom-{phantom.PHANTOM_VERSION}-n{phantom.DEFAULT_SUBJECTS}-s0"
    assert made == [(phantom.DEFAULT_SUBJECTS, 0)]


def test_default_benchmark_composition_and_split() -> None:
    """72 subjects, a third healthy; 22 validation and 22 test tumour subjects; the rest (all healthy) train."""
    ids = [phantom.case_id(i) for i in range(phantom.DEFAULT_SUBJECTS)]
    kinds = [phantom.subject_kind(i) for i in range(phantom.DEFAULT_SUBJECTS)]
    assert phantom.DEFAULT_SUBJECTS == 72 and kinds.count("healthy") == 24
    assert kinds.count("low_grade_t1_iso") == 12 and kinds.count("glioblastoma") == 36
    split = phantom.default_assignment(ids, seed=0)
    roles = {r: [s for s in ids if split[s] == r] for r in ("train", "val", "test")}
    assert {r: len(v) for r, v in roles.items()} == {"train": 28, "val": 22, "test": 22}
    kind_of = dict(zip(ids, kinds))
    assert all(kind_of[s] != "healthy" for s in roles["val"] + roles["test"])
    assert sum(kind_of[s] == "healthy" for s in roles["train"]) == 24
    assert phantom.default_assignment(list(reversed(ids)), 0) == split  # order of the IDs does not matter
    other = phantom.default_assignment(ids, seed=1)
    assert other != split and sorted(other.values()) == sorted(split.values())
    with pytest.raises(UasbenchError, match="pass a split file"):
        phantom.default_assignment(ids[:10], 0)


def test_every_default_tumour_peaks_in_the_protocol_slab() -> None:
    """What makes the 22 + 22 evaluated subjects count: the 2 mm estimate of every tumour subject of the
    default set peaks inside z 70..89 with a margin (the 1 mm volume follows it within 3 slices, tested above)."""
    tumours = [i for i in range(phantom.DEFAULT_SUBJECTS) if phantom.subject_kind(i) != "healthy"]
    peaks = [int(phantom.tumour_area_per_slice(i, seed=0).argmax()) for i in tumours[::6]]
    assert all(72 <= p <= 87 for p in peaks)


def test_tumour_size_distribution() -> None:
    """Size classes keep their probabilities (35/40/25 %), and the fixture tumours are BraTS-like in volume."""
    rng = np.random.default_rng(0)
    draws = [phantom._tumour_size(rng, "G")["size_class"] for _ in range(2000)]
    for cls, share in (("small", 0.35), ("medium", 0.4), ("large", 0.25)):
        assert abs(draws.count(cls) / len(draws) - share) < 0.04


# Label volumes (cm3) of subjects 1 and 2, seed 0, as phantom v2 generated them: v3 and v4 changed how the images
# are synthesised, not the tumour geometry, so the labels must stay where they were.
V2_LABEL_CM3 = {T1_ISO: {"1": 1.753, "2": 2.994, "4": 0.0}, GBM: {"1": 6.512, "2": 6.464, "4": 2.093}}


def test_tumour_labels_keep_the_v2_geometry(subjects) -> None:
    for index, volumes in V2_LABEL_CM3.items():
        params = subjects[index].params
        assert params["volume_cm3"] == pytest.approx(volumes, abs=0.05)
        whole = sum(params["volume_cm3"].values())
        assert 1 < whole < 200 and whole == pytest.approx(float((subjects[index].seg > 0).sum()) / 1000)
    assert subjects[T1_ISO].params["largest_slice"] == 74 and subjects[GBM].params["largest_slice"] == 73


def test_default_data_footprint(subjects, tmp_path: Path) -> None:
    """The embedded benchmark keeps no volumes, only its slice cache: bytes per subject (largest of a healthy,
    a low-grade and a glioblastoma subject) times 72 stay under 400 MB, and 3x under the format-1 arrays."""
    from uasbench.data.cache import preprocess_volumes, write_entry
    from uasbench.data.preprocess import Preparation

    sizes, plain = [], []
    for s in subjects.values():
        arrays = preprocess_volumes(s.case_id, s.images, s.seg, Preparation(), {})
        write_entry(tmp_path, s.case_id, arrays)
        sizes.append((tmp_path / f"{s.case_id}.npz").stat().st_size)
        plain.append(sum(a.nbytes for a in arrays.values()))
    assert max(sizes) * phantom.DEFAULT_SUBJECTS < 400e6 / 2  # about 150 MB in all
    assert max(p / s for p, s in zip(plain, sizes)) >= 3


def test_data_split_writes_the_embedded_benchmarks_split(tmp_path: Path) -> None:
    """`uasbench data split` without --data writes the split `run` uses on the embedded phantom (no generation)."""
    from typer.testing import CliRunner

    from uasbench.cli import app
    from uasbench.data.splits import parse_split_csv

    out = tmp_path / "split.csv"
    result = CliRunner().invoke(app, ["data", "split", "--out", str(out), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "28 train, 22 val, 22 test" in result.output
    ids = [phantom.case_id(i) for i in range(phantom.DEFAULT_SUBJECTS)]
    assert parse_split_csv(out) == phantom.default_assignment(ids, 2)
