"""BraTS discovery, reading and validation: real cases, both namings, a wrapper folder, every bad input."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from uasbench.data.inspect import inspect_dataset
from uasbench.data.layouts import open_dataset
from uasbench.data.layouts.base import BadCaseError, read_case
from uasbench.data.layouts.brats import NAMINGS, discover_cases
from uasbench.errors import UasbenchError


def write_case(root: Path, case_id: str, *, naming: str = "brats2021", shape=(12, 12, 92), tumour_z=(80, 84),
               seed: int = 0, ext: str = ".nii.gz", et_label: int | None = None) -> Path:
    """A tiny synthetic case: a box of positive 'brain' in zero background, a tumour box over ``tumour_z``."""
    sep, suffixes = NAMINGS[naming]
    folder = root / case_id
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, :] = True
    seg = np.zeros(shape, np.uint8)
    if tumour_z is not None:
        seg[4:7, 4:7, tumour_z[0]:tumour_z[1]] = 2
        seg[5, 5, tumour_z[0]:tumour_z[1]] = et_label if et_label is not None else (4 if naming == "brats2021" else 3)
    for offset, name in enumerate(("flair", "t1", "t1ce", "t2")):
        vol = np.where(brain, rng.uniform(50, 150, shape) + 40 * offset, 0).astype(np.int16)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"{case_id}{sep}{suffixes[name]}{ext}")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / f"{case_id}{sep}seg{ext}")
    return folder


def write_five_cases(root: Path) -> tuple[Path, Path]:
    """Five synthetic cases SYN_000..SYN_004 in ``root/data`` and a split of them (three train, one val, one
    test) in ``root/split.csv``: the smallest dataset a run trains, tunes and tests on."""
    for i in range(5):
        write_case(root / "data", f"SYN_{i:03d}", seed=i)
    split = root / "split.csv"
    split.write_text("subject,split\nSYN_000,train\nSYN_001,train\nSYN_002,train\nSYN_003,val\nSYN_004,test\n")
    return root / "data", split


def test_real_cases_are_read_with_axial_third_axis(real_brats_root):
    case_root, cases = discover_cases(real_brats_root)
    assert case_root == real_brats_root
    assert [c.id for c in cases] == ["TCGA-DU-7294", "TCGA-FG-6692"]
    data = open_dataset(real_brats_root)
    assert data.layout == "brats2021" and data.cases == tuple(cases)
    vols = read_case(data, cases[1])
    assert set(vols.images) == {"flair", "t1", "t1ce", "t2"}
    assert all(v.shape == (240, 240, 155) and v.dtype == np.int16 for v in vols.images.values())  # as stored
    assert nib.aff2axcodes(vols.affine) == ("L", "P", "S")  # third array axis runs inferior -> superior
    assert set(np.unique(vols.seg)) == {0, 1, 2, 4}
    healthy = read_case(data, cases[0]).seg
    assert not healthy[:, :, 70:90].any() and set(np.unique(healthy)) == {0, 1, 2}  # DU-7294: tumour above z 89


def test_wrapper_folder_is_accepted(tmp_path, real_brats_root):
    (tmp_path / "wrapper").mkdir()
    (tmp_path / "wrapper" / "TrainingData").symlink_to(real_brats_root, target_is_directory=True)
    case_root, cases = discover_cases(tmp_path / "wrapper")
    assert case_root.name == "TrainingData" and len(cases) == 2


def test_two_wrapper_folders_are_ambiguous(tmp_path):
    write_case(tmp_path / "a", "C1")
    write_case(tmp_path / "b", "C2")
    with pytest.raises(UasbenchError, match="several sub-folders"):
        discover_cases(tmp_path)


def test_brats2023_naming_maps_enhancing_label_3_to_4(tmp_path):
    write_case(tmp_path, "BraTS-GLI-00001-000", naming="brats2023", ext=".nii")
    write_case(tmp_path, "BraTS-GLI-00000-000", naming="brats2023")
    _, cases = discover_cases(tmp_path)
    assert [c.id for c in cases] == ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"]
    assert {c.naming for c in cases} == {"brats2023"}
    assert cases[1].files["flair"].name == "BraTS-GLI-00001-000-t2f.nii"
    assert set(np.unique(read_case(open_dataset(tmp_path), cases[0]).seg)) == {0, 2, 4}


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_empty_or_missing_folder_names_it(tmp_path, folder):
    target = tmp_path / folder
    if folder == "empty":
        target.mkdir()
        (target / "notes").mkdir()
    with pytest.raises(UasbenchError, match=str(target)):
        discover_cases(target)


def _break(folder: Path, problem: str) -> str:
    """Damage one file of the case in ``folder``; returns the damaged file's name."""
    cid = folder.name
    if problem == "missing":
        (folder / f"{cid}_t1ce.nii.gz").unlink()
        return f"{cid}_t1ce.nii.gz"
    if problem == "corrupt":
        (folder / f"{cid}_t2.nii.gz").write_bytes(b"this is not a NIfTI file")
        return f"{cid}_t2.nii.gz"
    if problem == "truncated":
        path = folder / f"{cid}_flair.nii.gz"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path.name
    if problem == "shape":
        nib.save(nib.Nifti1Image(np.ones((12, 10, 92), np.int16), np.eye(4)), folder / f"{cid}_t1.nii.gz")
        return f"{cid}_t1.nii.gz"
    if problem == "nan":
        vol = np.ones((12, 12, 92), np.float32)
        vol[3, 3, 3] = np.nan
        nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"{cid}_t2.nii.gz")
        return f"{cid}_t2.nii.gz"
    if problem == "labels":
        seg = np.zeros((12, 12, 92), np.uint8)
        seg[1, 1, 1] = 5
        nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / f"{cid}_seg.nii.gz")
        return f"{cid}_seg.nii.gz"
    if problem == "affine":
        vol = np.ones((12, 12, 92), np.int16)
        nib.save(nib.Nifti1Image(vol, np.diag([2.0, 1, 1, 1])), folder / f"{cid}_t1.nii.gz")
        return f"{cid}_t1.nii.gz"
    raise AssertionError(problem)


BAD = ["missing", "corrupt", "truncated", "shape", "nan", "labels", "affine"]


@pytest.mark.parametrize("problem", BAD)
def test_bad_case_gives_one_line_naming_case_and_file(tmp_path, problem):
    fname = _break(write_case(tmp_path, "CASE_007"), problem)
    data = open_dataset(tmp_path)
    with pytest.raises(BadCaseError) as info:
        read_case(data, data.cases[0])
    message = str(info.value)
    assert "\n" not in message and message.startswith("case CASE_007:") and fname in message


def test_brats2023_rejects_label_4(tmp_path):
    write_case(tmp_path, "B-1", naming="brats2023", et_label=4)
    with pytest.raises(BadCaseError, match=r"B-1-seg.nii.gz has unexpected label values \[4\]"):
        read_case(open_dataset(tmp_path), open_dataset(tmp_path).cases[0])


def test_inspect_lists_cases_and_problems(tmp_path):
    write_case(tmp_path, "A1")
    _break(write_case(tmp_path, "A2", seed=1), "labels")
    _break(write_case(tmp_path, "A3", seed=2), "nan")
    shallow = inspect_dataset(tmp_path)
    assert shallow.cases == ("A1", "A2", "A3")
    assert set(shallow.problems) == {"A2"}  # a NaN needs a full read
    deep = inspect_dataset(tmp_path, deep=True)
    assert set(deep.problems) == {"A2", "A3"}
    assert deep.shapes == {(12, 12, 92): 4} and deep.labels == (0, 2, 4)  # the four images of the good case
    text = deep.to_text()
    assert "layout       brats2021" in text and "A3_t2.nii.gz contains NaN" in text
    assert deep.rich_table().row_count == len(deep.rows()) + 2


def test_inspect_real_cases(real_brats_root):
    report = inspect_dataset(real_brats_root)
    assert report.cases == ("TCGA-DU-7294", "TCGA-FG-6692") and not report.problems
    assert report.shapes == {(240, 240, 155): 8} and report.labels == (0, 1, 2, 4)
    assert report.orientations == {"LPS": 8} and report.one_space and report.stripped == (2, 2)
    assert report.plans == {"none (already on the standard grid)": 2}
    assert report.modalities == {"flair": 2, "t1": 2, "t1ce": 2, "t2": 2, "seg": 2}
