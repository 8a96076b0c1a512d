"""The synthetic phantom written in any built-in layout and orientation, so that every layout can be read,
inspected and prepared end to end without real data.

What each layout gets (the phantom has FLAIR, T1, T1ce, T2 and a BraTS tumour label; nothing is invented):

* ``brats2021`` / ``brats2023``: all four and the BraTS labels (2023: enhancing tumour stored as 3).
* ``ixi``: T1 and T2 of *healthy* phantom subjects only (the generator's healthy kind: no tumour, no label);
  no PD, which the phantom does not simulate. ``--subjects N`` writes N healthy subjects.
* ``mslub`` (processed-copy names), ``nnunet``, ``msd``: all four, whole tumour as label 1.
* ``atlas2``: T1 only; ``wmh``: FLAIR and T1; ``isles22``: FLAIR only (the phantom has no diffusion contrast,
  so no DWI or ADC); whole tumour as label 1.

Volumes are stored in ``orientation`` (nibabel axis codes; default the phantom's own LPS): the same image in
world space, its array and affine permuted or flipped, as a scanner might have stored it.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, ornt_transform

from uasbench.data.phantom import BRATS_AFFINE, generate_subject, subject_kind, write_phantom_dataset
from uasbench.errors import UsageError

NATIVE = "LPS"
_PAIRS = ("LR", "PA", "IS")


def check_orientation(codes: str) -> str:
    """``codes`` upper-cased when they are three axis codes, one from each of L/R, P/A, I/S."""
    upper = codes.upper()
    used = sorted(next((p for p in _PAIRS if c in p), "?") for c in upper)
    if len(upper) != 3 or used != sorted(_PAIRS):
        raise UsageError(f"--orientation {codes!r}: give three axis codes, one of L/R, one of P/A and one of I/S, "
                         "e.g. LPS (BraTS) or RAS")
    return upper


def _save(vol: np.ndarray, path: Path, orientation: str) -> None:
    img = nib.Nifti1Image(vol, BRATS_AFFINE)
    if orientation != NATIVE:
        img = img.as_reoriented(ornt_transform(axcodes2ornt(tuple(NATIVE)), axcodes2ornt(tuple(orientation))))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _files(layout: str, index: int) -> tuple[dict[str, str], str | None]:
    """(modality -> relative path, label's relative path) of subject ``index`` in ``layout``."""
    if layout == "brats2021":
        c = f"UASPH_{index:05d}"
        return {m: f"{c}/{c}_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")}, f"{c}/{c}_seg.nii.gz"
    if layout == "brats2023":
        c = f"BraTS-GLI-{index:05d}-000"
        names = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}
        return {m: f"{c}/{c}-{s}.nii.gz" for m, s in names.items()}, f"{c}/{c}-seg.nii.gz"
    if layout == "ixi":
        c = f"IXI{index:03d}-Guys-{1000 + index:04d}"
        return {"t1": f"{c}-T1.nii.gz", "t2": f"{c}-T2.nii.gz"}, None
    if layout == "mslub":
        c = f"patient{index + 1:02d}"
        names = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1POST", "t2": "T2"}
        return {m: f"{c}/{c}_{s}.nii.gz" for m, s in names.items()}, f"{c}/{c}_GOLD_STANDARD.nii.gz"
    if layout == "atlas2":
        c = f"sub-r001s{index:03d}"
        stem = f"R001/{c}/ses-1/anat/{c}_ses-1_space-MNI152NLin2009aSym"
        return {"t1": f"{stem}_T1w.nii.gz"}, f"{stem}_label-L_desc-T1lesion_mask.nii.gz"
    if layout == "wmh":
        c = f"Utrecht/{index}"
        return {"flair": f"{c}/pre/FLAIR.nii.gz", "t1": f"{c}/pre/T1.nii.gz"}, f"{c}/wmh.nii.gz"
    if layout == "isles22":
        c = f"sub-strokecase{index:04d}"
        return ({"flair": f"rawdata/{c}/ses-0001/{c}_ses-0001_flair.nii.gz"},
                f"derivatives/{c}/ses-0001/{c}_ses-0001_msk.nii.gz")
    if layout == "nnunet":
        c = f"UASPH_{index:05d}"
        return {m: f"imagesTr/{c}_{i:04d}.nii.gz" for i, m in enumerate(("flair", "t1", "t1ce", "t2"))}, \
            f"labelsTr/{c}.nii.gz"
    if layout == "msd":
        c = f"BRATS_{index:03d}"
        return {"4d": f"imagesTr/{c}.nii.gz"}, f"labelsTr/{c}.nii.gz"
    raise AssertionError(layout)


_MSD_ORDER = ("flair", "t1", "t1ce", "t2")  # Task01_BrainTumour's channels: FLAIR, T1w, T1gd, T2w


def write_subject_in_layout(layout: str, orientation: str, folder: Path, index: int, seed: int) -> None:
    """Generate one subject and write it in ``layout`` and ``orientation`` under ``folder``."""
    subject = generate_subject(index, seed)
    images, label = _files(layout, index)
    for name, rel in images.items():
        vol = np.stack([subject.images[m] for m in _MSD_ORDER], axis=-1) if name == "4d" else subject.images[name]
        _save(vol, folder / rel, orientation)
    if label is not None:
        seg = subject.seg.copy()
        if layout == "brats2023":
            seg[seg == 4] = 3
        elif layout != "brats2021":
            seg = (seg > 0).astype(np.uint8)
        _save(seg, folder / label, orientation)


def _dataset_json(layout: str, out: Path, *, ids: list[int]) -> None:
    if layout == "nnunet":
        raw = {"channel_names": {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"},
               "labels": {"background": 0, "tumour": 1}, "numTraining": len(ids), "file_ending": ".nii.gz"}
    else:
        raw = {"name": "uasbench phantom", "modality": {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"},
               "labels": {"0": "background", "1": "tumour"}, "numTraining": len(ids),
               "training": [{"image": f"./{_files('msd', i)[0]['4d']}", "label": f"./{_files('msd', i)[1]}"}
                            for i in ids]}
    (out / "dataset.json").write_text(json.dumps(raw, indent=1))


def _finish(layout: str, out: Path, *, ids: list[int]) -> None:
    """Complete the folder: Decathlon-style ``dataset.json`` where the layout has one, and for a layout with
    lesions ``lesion_kinds.csv`` (``label,kind``: each case's label file, relative to the folder), which the cross-dataset protocol
    reads to stratify results by the phantom's lesion kind."""
    from uasbench.data.benchmark_data import KINDS_FILE

    if layout in ("nnunet", "msd"):
        _dataset_json(layout, out, ids=ids)
    if layout == "ixi":
        return
    rows = sorted((_files(layout, i)[1], subject_kind(i)) for i in ids)  # the layout's label file of each case
    (out / KINDS_FILE).write_text("label,kind\n" + "".join(f"{label},{kind}\n" for label, kind in rows))


def write_phantom_in_layout(out: Path, n_subjects: int, seed: int = 0, *, layout: str = "brats2021",
                            orientation: str | None = None, progress: bool = True,
                            workers: int | None = None) -> tuple[Path, int]:
    """Write ``n_subjects`` phantom subjects into ``out`` in ``layout``; returns (folder, subjects written)."""
    from uasbench.data.layouts import get_layout

    get_layout(layout)  # an unknown name lists the choices
    orientation = NATIVE if orientation is None else check_orientation(orientation)
    indices = list(range(n_subjects))
    if layout == "ixi":  # healthy subjects only: the generator's healthy kind has no tumour
        indices = [i for i in range(12 * n_subjects) if subject_kind(i) == "healthy"][:n_subjects]
    writer = None  # the phantom's own BraTS2021 files, byte for byte (with its parameters' JSON)
    if layout != "brats2021" or orientation != NATIVE:
        writer = partial(write_subject_in_layout, layout, orientation)
    finish = partial(_finish, layout, ids=indices)
    path = write_phantom_dataset(out, n_subjects, seed, progress=progress, workers=workers, writer=writer,
                                 indices=indices, finish=finish)
    return path, len(indices)
