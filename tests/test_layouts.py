"""Dataset layouts, dataset cards and new modalities: every layout read from tiny synthetic files, detection,
label meanings, the real shared cases read through their layouts, the phantom written in every layout and
prepared end to end, and BraTS preparation unchanged byte for byte."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from uasbench.cli import app
from uasbench.data.cache import open_cache, prepare_case, unpack
from uasbench.data.card import describe_keys, load_card
from uasbench.data.inspect import inspect_dataset, looks_skull_stripped
from uasbench.data.layouts import LAYOUT_NAMES, open_dataset
from uasbench.data.layouts.base import BadCaseError, read_case
from uasbench.data.phantom_layouts import _dataset_json, _files, write_phantom_in_layout
from uasbench.data.preprocess import Preparation
from uasbench.errors import UasbenchError, UsageError
from uasbench.modalities import MODALITIES, Pair

# ------------------------------------------------------------------------------------------- tiny files

TINY = (8, 9, 6)


def _tiny(layout: str, root: Path, index: int, *, lesion: int = 1, affine=np.eye(4)) -> None:
    """One tiny subject of ``layout`` at the phantom's paths: images 10 + channel inside a box, label ``lesion``
    on one voxel (BraTS: its own values)."""
    images, label = _files(layout, index)
    for k, (name, rel) in enumerate(images.items()):
        vol = np.zeros(TINY + ((4,) if name == "4d" else ()), np.int16)
        if name == "4d":
            for c in range(4):
                vol[2:6, 2:6, 1:5, c] = 10 + c
        else:
            vol[2:6, 2:6, 1:5] = 10 + k
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(vol, affine), root / rel)
    if label is not None:
        seg = np.zeros(TINY, np.uint8)
        seg[3, 3, 2] = lesion
        (root / label).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(seg, affine), root / label)


EXPECTED = {  # layout -> (modalities, case IDs of subjects 0 and 1)
    "brats2021": (("flair", "t1", "t1ce", "t2"), ("UASPH_00000", "UASPH_00001")),
    "brats2023": (("flair", "t1", "t1ce", "t2"), ("BraTS-GLI-00000-000", "BraTS-GLI-00001-000")),
    "ixi": (("t1", "t2"), ("IXI000-Guys-1000", "IXI001-Guys-1001")),
    "mslub": (("flair", "t1", "t1ce", "t2"), ("patient01", "patient02")),
    "atlas2": (("t1",), ("sub-r001s000_ses-1", "sub-r001s001_ses-1")),
    "wmh": (("flair", "t1"), ("Utrecht-0", "Utrecht-1")),
    "isles22": (("flair",), ("sub-strokecase0000_ses-0001", "sub-strokecase0001_ses-0001")),
    "nnunet": (("flair", "t1", "t1ce", "t2"), ("UASPH_00000", "UASPH_00001")),
    "msd": (("flair", "t1", "t1ce", "t2"), ("BRATS_000", "BRATS_001")),
}


def test_every_built_in_layout_is_covered():
    assert set(EXPECTED) == set(LAYOUT_NAMES)


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_layout_is_detected_and_read_from_tiny_files(tmp_path, layout):
    lesion = 3 if layout == "brats2023" else 4 if layout == "brats2021" else 1
    for i in (0, 1):
        _tiny(layout, tmp_path, i, lesion=lesion)
    if layout in ("nnunet", "msd"):
        _dataset_json(layout, tmp_path, ids=[0, 1])
    data = open_dataset(tmp_path)
    modalities, ids = EXPECTED[layout]
    assert data.layout == layout and data.modalities == modalities
    assert tuple(c.id for c in data.cases) == ids
    vols = read_case(data, data.cases[1])
    for k, m in enumerate(modalities):  # each modality is its own file (or its own channel of the 4-D file)
        assert vols.images[m].shape == TINY and vols.images[m][3, 3, 2] == 10 + k
    if layout == "ixi":
        assert data.healthy_only and vols.seg is None
    else:
        assert data.labels.anomaly(vols.seg).sum() == 1
        assert vols.seg[3, 3, 2] == (4 if layout.startswith("brats") else 1)  # BraTS2023's 3 read as 4


def test_detection_none_or_several_says_to_pass_layout(tmp_path):
    with pytest.raises(UasbenchError, match="no known dataset layout found .*brats2021, .*msd.*pass --layout NAME"):
        open_dataset(tmp_path)
    _tiny("brats2021", tmp_path, 0)
    _tiny("ixi", tmp_path, 0)
    with pytest.raises(UasbenchError, match=r"matches several layouts \(brats2021, ixi\); pass --layout NAME"):
        open_dataset(tmp_path)
    assert open_dataset(tmp_path, layout="ixi").layout == "ixi"
    assert open_dataset(tmp_path, layout="brats2021").cases[0].id == "UASPH_00000"
    with pytest.raises(UsageError, match="--layout brats: unknown layout \\(choose from brats2021, brats2023"):
        open_dataset(tmp_path, layout="brats")
    with pytest.raises(UasbenchError, match="no mslub cases found in .* \\(expected patientXX/"):
        open_dataset(tmp_path, layout="mslub")


def test_wmh_other_pathology_is_ignored_not_anomalous(tmp_path):
    _tiny("wmh", tmp_path, 0)
    seg = np.zeros(TINY, np.uint8)
    seg[3, 3, 2], seg[4, 4, 3] = 1, 2
    nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "Utrecht/0/wmh.nii.gz")
    data = open_dataset(tmp_path)
    vols = read_case(data, data.cases[0])
    anomaly, ignore = data.labels.anomaly(vols.seg), data.labels.ignore(vols.seg)
    assert anomaly.sum() == 1 and anomaly[3, 3, 2] and ignore.sum() == 1 and ignore[4, 4, 3]
    assert "2 other pathology" in data.labels.describe() and "ignored in scoring: 2" in data.labels.describe()
    seg[1, 1, 1] = 3
    nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "Utrecht/0/wmh.nii.gz")
    with pytest.raises(BadCaseError, match=r"case Utrecht-0: file wmh.nii.gz has unexpected label values \[3\]"):
        read_case(data, data.cases[0])


def test_mslub_original_release_names_and_brain_mask_file(tmp_path):
    vol = np.full(TINY, 7, np.int16)
    mask = np.zeros(TINY, np.uint8)
    mask[2:5, 2:5, 2:5] = 1
    for patient in ("patient03", "patient04"):
        folder = tmp_path / patient
        folder.mkdir()
        for name in ("T1W", "T1WKS", "T2W", "FLAIR"):
            nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"{patient}_{name}.nii.gz")
        nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / f"{patient}_brainmask.nii.gz")
        nib.save(nib.Nifti1Image(mask * 0, np.eye(4)), folder / f"{patient}_consensus_gt.nii.gz")
    folder = tmp_path / "patient03"
    data = open_dataset(tmp_path)
    assert data.layout == "mslub" and data.brain_mask == "file"
    assert data.cases[0].files["t1ce"].name == "patient03_T1WKS.nii.gz"
    vols = read_case(data, data.cases[0])
    assert all(((v > 0) == (mask > 0)).all() for v in vols.images.values())  # zeroed outside the mask file
    (folder / "patient03_T1WKS.nii.gz").unlink()
    data = open_dataset(tmp_path)
    assert data.modalities == ("flair", "t1", "t1ce", "t2")  # patient04 still has it
    with pytest.raises(BadCaseError, match="case patient03: missing file\\(s\\) patient03_T1WKS.nii.gz"):
        read_case(data, data.cases[0])


def test_nnunet_unknown_channel_name_is_refused_in_one_line(tmp_path):
    _tiny("nnunet", tmp_path, 0)
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0},
                                                       "file_ending": ".nii.gz"}))
    with pytest.raises(UasbenchError) as info:
        open_dataset(tmp_path)
    assert "channel_names channel 0 'CT' is not a known modality" in str(info.value)
    assert "\n" not in str(info.value)


def test_nnunet_ignore_label_and_aliases(tmp_path):
    _tiny("nnunet", tmp_path, 0)
    (tmp_path / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T2", "1": "ADC", "2": "DWI"}, "labels": {"background": 0, "lesion": 1, "ignore": 2},
        "file_ending": ".nii.gz"}))
    data = open_dataset(tmp_path, layout="nnunet")
    assert data.modalities == ("t2", "dwi", "adc") and data.labels.ignored == frozenset({2})
    assert data.cases[0].files["dwi"].name == "UASPH_00000_0002.nii.gz"


# ------------------------------------------------------------------------------------------- the card

CARD = """
[dataset]
name = "tiny"
brain_mask = "{case}/mask.nii.gz"
[files]
flair = "{case}/FLAIR*.nii.gz"
t2 = "{case}/T2.nii.gz"
label = "{case}/lesions.nii.gz"
[labels]
anomalous = [1]
ignored = [2]
allowed = [1, 2]
names = ["1=lesion", "2=other"]
"""


def _card_folder(root: Path) -> Path:
    for cid in ("s01", "s02"):
        (root / cid).mkdir(parents=True)
        vol = np.full(TINY, 5, np.int16)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), root / cid / "FLAIR_v2.nii.gz")
        nib.save(nib.Nifti1Image(vol, np.eye(4)), root / cid / "T2.nii.gz")
        mask = np.zeros(TINY, np.uint8)
        mask[1:6, 1:6, 1:5] = 1
        nib.save(nib.Nifti1Image(mask, np.eye(4)), root / cid / "mask.nii.gz")
        seg = np.zeros(TINY, np.uint8)
        seg[2, 2, 2], seg[3, 3, 3] = 1, 2
        nib.save(nib.Nifti1Image(seg, np.eye(4)), root / cid / "lesions.nii.gz")
    (root / "dataset.toml").write_text(CARD)
    return root


def test_card_next_to_the_data_describes_its_files(tmp_path):
    data = open_dataset(_card_folder(tmp_path))
    assert data.layout == "card" and data.modalities == ("flair", "t2") and data.brain_mask == "file"
    assert [c.id for c in data.cases] == ["s01", "s02"] and data.cases[0].files["flair"].name == "FLAIR_v2.nii.gz"
    vols = read_case(data, data.cases[0])
    assert (vols.images["flair"] > 0).sum() == 5 * 5 * 4  # zeroed outside the mask file
    assert data.labels.anomaly(vols.seg).sum() == 1 and data.labels.ignore(vols.seg).sum() == 1
    assert data.labels.meaning == {1: "lesion", 2: "other"} and data.card == load_card(tmp_path / "dataset.toml").digest


def test_card_given_with_option_and_healthy_dataset(tmp_path):
    root = _card_folder(tmp_path / "d")
    card = tmp_path / "healthy.toml"
    card.write_text('[dataset]\nhealthy = true\n[files]\nt2 = "{case}/T2.nii.gz"\n')
    data = open_dataset(root, card=card)
    assert data.healthy_only and data.modalities == ("t2",) and read_case(data, data.cases[1]).seg is None
    with pytest.raises(UsageError, match="give --layout or --card, not both"):
        open_dataset(root, layout="ixi", card=card)


CARD_ERRORS = [  # (card text, message): every key's check, through the one config_check path
    ('[files]\nflair = 3\n', "key files.flair: expected a string or null"),
    ('[files]\nflair = "{case}/f.nii.gz"\nlabel = "{case}/l.nii.gz"\n[labels]\nanomalous = "1"\n',
     "key labels.anomalous: expected a list, each item an integer >= 0 and <= 255 or null"),
    ('[files]\nflair = "{case}/f.nii.gz"\nlabel = "{case}/l.nii.gz"\n[labels]\nignored = [300]\n',
     "key labels.ignored: expected a list, each item an integer >= 0 and <= 255"),
    ('[dataset]\nhealthy = "yes"\n[files]\nflair = "{case}/f.nii.gz"\n', "key dataset.healthy: expected true or false"),
    ('[dataset]\ncolour = 1\n[files]\nflair = "{case}/f.nii.gz"\n', "key dataset.colour: unknown key (valid: name,"),
    ('[extra]\n[files]\nflair = "{case}/f.nii.gz"\n', "key extra: unknown table (valid: dataset, files, labels)"),
    ('[dataset]\nname = "x"\n', "key files: missing table [files]"),
    ('[files]\nlabel = "{case}/l.nii.gz"\n', "key files: name at least one modality (flair, t1"),
    ('[files]\nflair = "{case}/f.nii.gz"\n', "key files.label: missing (or set dataset.healthy = true"),
    ('[dataset]\nhealthy = true\n[files]\nflair = "{case}/f.nii.gz"\nlabel = "{case}/l.nii.gz"\n',
     "key files.label: a healthy-only dataset (dataset.healthy = true) has no label files"),
    ('[files]\nflair = "f.nii.gz"\nlabel = "{case}/l.nii.gz"\n', "key files.flair: 'f.nii.gz' must contain {case}"),
    ('[files]\nflair = "/abs/{case}.nii.gz"\nlabel = "{case}/l.nii.gz"\n',
     "key files.flair: '/abs/{case}.nii.gz' must be a path relative to the data folder"),
    ('[dataset]\nbrain_mask = "mask.nii.gz"\n[files]\nflair = "{case}/f.nii.gz"\nlabel = "{case}/l.nii.gz"\n',
     "key dataset.brain_mask: 'mask.nii.gz' must contain {case}"),
    ('[files]\nflair = "{case}/f.nii.gz"\nlabel = "{case}/l.nii.gz"\n[labels]\nanomalous = [1]\nignored = [1]\n',
     "key labels.ignored: value(s) [1] are also anomalous"),
    ('[files]\nflair = "{case}/f.nii.gz"\nlabel = "{case}/l.nii.gz"\n[labels]\nnames = ["lesion"]\n',
     "key labels.names: 'lesion': expected \"VALUE=NAME\""),
    ('[files\n', "not valid TOML"),
]


@pytest.mark.parametrize("text,message", CARD_ERRORS)
def test_every_card_key_error_is_one_line_naming_the_key(tmp_path, text, message):
    card = tmp_path / "dataset.toml"
    card.write_text(text)
    with pytest.raises(UsageError) as info:
        load_card(card)
    assert str(info.value).startswith("dataset.toml: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_describe_keys_lists_every_card_key():
    keys = {row[0]: row for row in describe_keys()}
    assert {f"files.{m}" for m in MODALITIES} | {"files.label", "labels.anomalous", "dataset.brain_mask"} <= set(keys)
    assert keys["labels.ignored"][1] == "a list, each item an integer >= 0 and <= 255" and keys["labels.ignored"][3]


def test_card_reference_page_lists_every_key():
    page = (Path(__file__).parents[1] / "docs" / "reference" / "dataset-card.md").read_text()
    assert all(f"`{key}`" in page for key, *_ in describe_keys())


# ------------------------------------------------------------------------------------------- modalities

def test_new_modalities_and_pairs_parse():
    assert {"pd", "dwi", "adc"} <= set(MODALITIES)
    assert (Pair.parse("dwi-adc").input, Pair.parse("dwi-adc").target) == ("dwi", "adc")
    assert str(Pair.parse("t2-t1")) == "t2-t1" and str(Pair.parse("flair-pd")) == "fl-pd"
    with pytest.raises(UsageError, match="any two of fl, t1, t1ce, t2, pd, dwi, adc"):
        Pair.parse("dwi-ct")


def test_a_pair_the_dataset_lacks_is_refused_before_any_work(tmp_path, monkeypatch):
    from uasbench.data.benchmark_data import load_benchmark_data

    monkeypatch.setenv("UASBENCH_CACHE_DIR", str(tmp_path / "cache"))
    _tiny("ixi", tmp_path / "d", 0)
    with pytest.raises(UasbenchError, match=r"dataset .*d \(ixi\) has no dwi; it holds t1, t2"):
        load_benchmark_data(tmp_path / "d", Pair.parse("dwi-t2"), progress=False)
    with pytest.raises(UasbenchError, match="the embedded phantom has no adc; it holds flair, t1, t1ce, t2"):
        load_benchmark_data(None, Pair.parse("fl-adc"), progress=False)
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------------------------------- real cases

def test_real_cases_are_read_through_their_layouts(real_brats_root, real_ixi_root, real_mslub_root,
                                                  real_isles22_root):
    brats, ixi, mslub, isles = real_brats_root, real_ixi_root, real_mslub_root, real_isles22_root
    layouts = {p: open_dataset(p).layout for p in (brats, ixi, mslub, isles)}
    assert list(layouts.values()) == ["brats2021", "ixi", "mslub", "isles22"]
    report = inspect_dataset(ixi)
    assert report.dataset.healthy_only and not report.one_space and report.orientations == {"LAS": 2}
    assert report.stripped == (1, 1) and any("reorient t1 LAS -> LPS" in p for p in report.plans)
    report = inspect_dataset(mslub)
    assert report.labels == (0, 1) and report.one_space and report.orientations == {"LAS": 4}
    report = inspect_dataset(isles)
    assert report.dataset.modalities == ("dwi", "adc", "flair") and not report.one_space
    assert report.stripped == (0, 1) and not report.dataset.skull_stripped  # a head scan, as the layout says


@pytest.mark.slow
def test_real_non_brats_cases_are_prepared(tmp_path, real_ixi_root, real_mslub_root, real_isles22_root):
    """IXI (two grids, LAS), MSLUB (LAS) and ISLES'22 (FLAIR on its own grid) become protocol slices."""
    roots = {"ixi": real_ixi_root, "mslub": real_mslub_root, "isles22": real_isles22_root}
    for name, modalities, lesion in (("ixi", 2, False), ("mslub", 4, True), ("isles22", 3, True)):
        data = open_dataset(roots[name])
        out = tmp_path / name
        out.mkdir()
        assert prepare_case(data, data.cases[0], Preparation(), out) is None
        with np.load(out / f"{data.cases[0].id}.npz") as stored:
            arrays = unpack(dict(stored))
        assert arrays["img"].shape == (modalities, 20, 128, 128) and arrays["brain"][0].any()
        assert bool(arrays["area"].sum()) == lesion


# ------------------------------------------------------------------------------------------- unchanged BraTS

# Made with the code of main at 47f3f3b (before layouts existed): sha256 over img, brain, seg and area
# (name, dtype, shape, bytes each) of ``preprocess_volumes`` for the real BraTS cases read by the old
# ``brats.read_case`` and for phantom subjects from ``generate_subject``.
MAIN_DIGESTS = {
    ("paper", "TCGA-DU-7294"): "0b79230d243b4f33e8c04a9e0d2e51b3ec09f54c573073e2690ab46e38ec12ec",
    ("paper", "TCGA-FG-6692"): "c95708af60f91f539c4b45b1950d962cae84f219c58ef842a2af734175453f32",
    ("paper", "UASPH_00000"): "9d48f17e3b98ec97bb9f8b0bb35c0b1438e14b353ef01d142b2d1bfca0c7acca",
    ("paper", "UASPH_00001"): "14b9f1da928f37c1252a81ad43449ce35801fa8b517857b642db7ff3f119b943",
    ("official", "TCGA-DU-7294"): "38d030ca15e946b4652890afe92ad8c371c60c75be5615f5196f234d7b95e99c",
    ("official", "TCGA-FG-6692"): "bd10dc8b93625b51c6deecd4d56fe4e99f5e596da4d37cbdfe4372c47a7bc992",
    ("official", "UASPH_00000"): "f32dfeba0d007a91f3484a1c8ddb4a5bccd5c2b49b9c2c059b90a8a806ad6018",
    ("official", "UASPH_00001"): "84e81d31f2623c0b7c724238f61a6f59440150d3f7463ace1e0bd72d41e972a8",
}


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in ("img", "brain", "seg", "area"):
        a = np.ascontiguousarray(arrays[k])
        for part in (k, str(a.dtype), str(a.shape)):
            h.update(part.encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _prepared(root: Path, normalisation: str, out: Path) -> dict[str, str]:
    data = open_dataset(root)
    out.mkdir()
    digests = {}
    for case in data.cases:
        assert prepare_case(data, case, Preparation(normalisation=normalisation), out) is None
        with np.load(out / f"{case.id}.npz") as stored:
            digests[case.id] = _digest(unpack(dict(stored)))
    return digests


@pytest.mark.slow
@pytest.mark.parametrize("normalisation", ["paper", "official"])
def test_phantom_preparation_is_byte_identical_to_main(tmp_path, normalisation):
    phantom, _ = write_phantom_in_layout(tmp_path / "ph", 2, 0, progress=False, workers=1)
    digests = _prepared(phantom, normalisation, tmp_path / "p")
    assert digests == {case: MAIN_DIGESTS[normalisation, case] for case in ("UASPH_00000", "UASPH_00001")}


@pytest.mark.slow
@pytest.mark.parametrize("normalisation", ["paper", "official"])
def test_real_brats_preparation_is_byte_identical_to_main(tmp_path, normalisation, whole_real_data):
    """The whole real cases (the in-repository fixture keeps only the slab, so its statistics differ)."""
    digests = _prepared(whole_real_data("brats"), normalisation, tmp_path / "r")
    assert digests == {case: MAIN_DIGESTS[normalisation, case] for case in ("TCGA-DU-7294", "TCGA-FG-6692")}


def test_a_resampled_case_is_read_as_its_slab_and_normalised_with_its_scans_own_statistics(real_ixi_root, tmp_path):
    """The slice cache asks only for the protocol's slab of the standard grid (interpolating the whole volume
    would cost more than reading it); the normalisation statistics come from each scan as stored."""
    from uasbench.data.cache import preprocess_volumes
    from uasbench.data.spatial import SpatialStandard

    data = open_dataset(real_ixi_root)
    case = data.cases[0]
    whole = read_case(data, case, spatial=SpatialStandard())
    slab = read_case(data, case, spatial=SpatialStandard(), axial=range(70, 90))
    assert slab.z_first == 70 and slab.depth == whole.depth == whole.images["t1"].shape[2] > 90
    assert "t1" in slab.spatial.resampled and slab.spatial.to_dict() == whole.spatial.to_dict()
    for m in ("t1", "t2"):
        np.testing.assert_allclose(slab.images[m], whole.images[m][:, :, 70:90], rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(slab.native[m], np.asanyarray(nib.load(case.files[m]).dataobj))
    names = {m: case.files[m].name for m in slab.images}
    protocol = Preparation()
    assert prepare_case(data, case, protocol, tmp_path) is None
    with np.load(tmp_path / f"{case.id}.npz") as stored:
        cached = unpack(dict(stored))
    expected = preprocess_volumes(case.id, whole.images, None, protocol, names, native=whole.native)
    np.testing.assert_allclose(cached["img"], expected["img"], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(cached["brain"], expected["brain"])
    # the scan's own statistics, not those of its interpolated copy (which the old whole-volume path used)
    interpolated = preprocess_volumes(case.id, whole.images, None, protocol, names)
    assert np.abs(cached["img"] - interpolated["img"])[cached["brain"]].max() > 1e-3


def test_a_brain_mask_file_on_another_grid_is_put_onto_each_scans_grid(tmp_path):
    root = _card_folder(tmp_path)
    coarse = np.zeros((4, 5, 3), np.uint8)
    coarse[1:3, 1:3, 1:3] = 1  # voxel centres at 2.5 and 4.5 mm: voxels 2..5 of the images' 1 mm grid
    shifted = np.diag([2.0, 2.0, 2.0, 1.0])
    shifted[:3, 3] = 0.5
    for cid in ("s01", "s02"):
        nib.save(nib.Nifti1Image(coarse, shifted), root / cid / "mask.nii.gz")
    (root / "dataset.toml").write_text(CARD.replace('name = "tiny"', 'name = "tiny"\nsame_grid = false'))
    data = open_dataset(root)
    vols = read_case(data, data.cases[0])
    expected = np.zeros(TINY, bool)
    expected[2:6, 2:6, 2:6] = True
    assert ((vols.images["flair"] > 0) == expected).all() and vols.native["flair"] is vols.images["flair"]


# ------------------------------------------------------------------------------------------- phantom layouts

@pytest.fixture(scope="module")
def native_phantom(tmp_path_factory):
    """Two phantom subjects (0 healthy, 1 with a tumour) in BraTS2021 files, prepared: the reference."""
    root, _ = write_phantom_in_layout(tmp_path_factory.mktemp("native") / "ph", 2, 0, progress=False, workers=1)
    return open_cache(open_dataset(root), Preparation(), progress=False, workers=1)


@pytest.mark.slow
@pytest.mark.parametrize("layout", [n for n in LAYOUT_NAMES if n != "brats2021"])
def test_phantom_in_every_layout_and_orientation_prepares_to_the_same_slices(tmp_path, monkeypatch, layout,
                                                                           native_phantom):
    """Written in another layout and stored RAS (the same images in world space), the phantom is detected,
    read and prepared into exactly the slices of its BraTS2021 files (IXI: the healthy subject, no label)."""
    native = native_phantom
    n = 1 if layout == "ixi" else 2
    root, written = write_phantom_in_layout(tmp_path / layout, n, 0, layout=layout, orientation="RAS",
                                            progress=False, workers=1)
    data = open_dataset(root)
    assert data.layout == layout and written == n
    assert {"".join(nib.aff2axcodes(nib.load(p).affine)) for c in data.cases for p in c.files.values()} == {"RAS"}
    cache = open_cache(data, Preparation(), progress=False, workers=1)
    assert cache.modalities == EXPECTED[layout][0] and not cache.bad_cases
    for case, ref in zip(cache.subjects, native.subjects):
        for m in cache.modalities:
            assert cache.image(case, m).tobytes() == native.image(ref, m).tobytes(), (case, m)
            assert (cache.brain(case, m) == native.brain(ref, m)).all()
        assert (cache.seg(case) == native.seg(ref)).all() and (cache.area(case) == native.area(ref)).all()
    assert bool(cache.area(cache.subjects[-1]).any()) == (layout != "ixi")
    assert native.spatial == {} and set(cache.spatial) == set(cache.subjects)  # what was done is recorded
    assert all(set(r["reoriented"].values()) == {"RAS"} for r in cache.spatial.values())


def test_phantom_cli_layout_and_orientation(tmp_path):
    runner = CliRunner()
    made = runner.invoke(app, ["data", "phantom", "--subjects", "1", "--out", str(tmp_path / "ixi"),
                               "--layout", "ixi", "--orientation", "ras"])
    assert made.exit_code == 0, made.output
    assert "(ixi layout)" in made.output
    assert sorted(p.name for p in (tmp_path / "ixi").iterdir()) == ["IXI000-Guys-1000-T1.nii.gz",
                                                                    "IXI000-Guys-1000-T2.nii.gz"]
    seen = runner.invoke(app, ["data", "inspect", str(tmp_path / "ixi")])
    assert seen.exit_code == 0 and "every case is healthy" in seen.output and "RAS (2)" in seen.output


def test_skull_strip_heuristic():
    head = np.ones((10, 10, 10))
    brain = np.zeros((10, 10, 10))
    brain[3:7, 3:7, 3:7] = 1
    assert looks_skull_stripped(brain) and not looks_skull_stripped(head)
    edge = brain.copy()
    edge[0, 5, 5] = 1
    assert not looks_skull_stripped(edge)


def test_ignored_labels_reach_the_slice_sets_and_never_the_training_set(tmp_path, monkeypatch):
    """WMH's label 2 (other pathology): its slices are not healthy training slices, and the scored slice sets
    carry its pixels as ``ignore``."""
    from uasbench.data.benchmark_data import load_benchmark_data
    from uasbench.data.spatial import SpatialStandard

    monkeypatch.setenv("UASBENCH_CACHE_DIR", str(tmp_path / "cache"))
    shape, rng = (12, 12, 6), np.random.default_rng(0)
    for i in range(4):
        images, label = _files("wmh", i)
        for rel in images.values():
            vol = np.zeros(shape, np.int16)
            vol[2:10, 2:10] = rng.integers(50, 500, (8, 8, 6))
            (tmp_path / "d" / rel).parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "d" / rel)
        seg = np.zeros(shape, np.uint8)
        seg[4:7, 4:7, 2] = 1
        if i in (0, 3):
            seg[3:5, 3:5, 3] = 2
        if i == 3:
            seg[8:10, 8:10, 2] = 2  # beside the lesion on the test slice
        nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "d" / label)
    split = tmp_path / "split.csv"
    split.write_text("subject,split\nUtrecht-0,train\nUtrecht-1,train\nUtrecht-2,val\nUtrecht-3,test\n")
    protocol = Preparation(z_start=1, z_stop=5, size=6, spatial=SpatialStandard(orientation="RAS", fov_mm=(12.0, 12.0)))
    data = load_benchmark_data(tmp_path / "d", Pair.parse("fl-t1"), protocol=protocol, split_file=split,
                               progress=False, workers=1)
    assert sorted(zip(data.train.subjects, data.train.z.tolist())) == [
        ("Utrecht-0", 1), ("Utrecht-0", 4), ("Utrecht-1", 1), ("Utrecht-1", 3), ("Utrecht-1", 4)]
    assert data.train.ignore is None and data.test.z.tolist() == [2] and data.test.seg.any()
    assert data.test.ignore.shape == data.test.seg.shape and data.test.ignore.any()
    assert not (data.test.ignore & data.test.seg).any()
    assert data.val_healthy.ignore is not None and data.test.brain_t2 is None  # WMH has no T2
