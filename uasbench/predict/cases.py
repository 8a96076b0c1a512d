"""Find the scans to predict on: BraTS2021/2023 case folders (labels optional) or a folder of single NIfTI
files of the input modality, one case per file.

Every selected scan's headers are opened and its grid checked before any voxel is scored, so a bad case
stops the command before anything is written.
"""
from __future__ import annotations

from pathlib import Path

from uasbench.data.brats import NIFTI_EXTENSIONS, BadCaseError, Case, Scan, discover_cases
from uasbench.data.splits import _few
from uasbench.errors import UasbenchError, UsageError


def _stem(path: Path) -> str:
    return next(path.name[: -len(ext)] for ext in NIFTI_EXTENSIONS if path.name.endswith(ext))


def _single_files(paths: list[Path], modality: str) -> list[Case]:
    """One case per NIfTI file, its ID the file name without extension."""
    cases: dict[str, Case] = {}
    for path in paths:
        case_id = _stem(path)
        if case_id in cases:
            raise UasbenchError(f"--data {path.parent}: {cases[case_id].files[modality].name} and {path.name} "
                                "would both be case " + case_id)
        cases[case_id] = Case(case_id, path.parent, "brats2021", {modality: path})
    return list(cases.values())


def find_cases(data: Path, modality: str) -> list[Case]:
    """The cases of ``data``: a NIfTI file, a folder of NIfTI files, or a BraTS2021/2023 folder."""
    data = Path(data)
    if data.is_file():
        if not data.name.endswith(NIFTI_EXTENSIONS):
            raise UasbenchError(f"--data {data}: not a NIfTI file (.nii or .nii.gz) nor a folder")
        return _single_files([data], modality)
    if not data.is_dir():
        raise UasbenchError(f"--data {data}: no such file or folder")
    files = sorted(p for p in data.iterdir() if p.is_file() and p.name.endswith(NIFTI_EXTENSIONS))
    if files:
        return _single_files(files, modality)
    return discover_cases(data)[1]


def select_cases(cases: list[Case], ids: list[str], data: Path) -> list[Case]:
    """The cases named in ``--cases`` (all of them when none is named), in the order given."""
    if not ids:
        return cases
    by_id = {c.id: c for c in cases}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UsageError(f"--cases: no case {', '.join(unknown)} in {data} (it holds {len(cases)}: "
                         f"{_few(sorted(by_id))})")
    return [by_id[i] for i in dict.fromkeys(ids)]


def check_grid(scan: Scan, z: range, depth: int) -> None:
    """Refuse a scan the protocol cannot slice: the slab ``z`` must exist among the ``depth`` axial slices the
    scan has once on the run's spatial standard (any stored orientation is fine: the standard reorients it)."""
    if z.stop > depth:
        name = scan.case.files[scan.modality].name
        stored = "" if depth == scan.image.shape[2] else " once on the standard grid"
        raise BadCaseError(scan.case.id, f"file {name} has {depth} axial slices{stored}, the protocol's slab needs "
                           f"z {z.start}..{z.stop - 1} (use --slices all to score every slice)")
