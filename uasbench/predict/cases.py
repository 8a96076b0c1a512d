"""Find the scans to predict on: a data folder read through its layout or dataset card (labels optional), or
NIfTI files of the run's input modality, one case per file.

Every selected scan's headers are opened and its grid checked before any voxel is scored, so a bad case
stops the command before anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from uasbench.data.card import CARD_FILE
from uasbench.data.layouts import matching_layouts, open_dataset
from uasbench.data.layouts.base import NIFTI_EXTENSIONS, BadCaseError, Case, Dataset, open_headers
from uasbench.data.splits import _few
from uasbench.errors import UasbenchError, UsageError

SINGLE_FILES = "nifti-files"  # the layout name of a folder of single scans, one case per file


@dataclass(frozen=True)
class Scan:
    """The run's input modality of one case, headers checked, voxels not yet read: ``image`` is its 3-D
    header (one channel of a 4-D file), which the written maps copy."""

    dataset: Dataset
    case: Case
    modality: str
    image: nib.Nifti1Image


def _stem(path: Path) -> str:
    return next(path.name[: -len(ext)] for ext in NIFTI_EXTENSIONS if path.name.endswith(ext))


def _single_files(paths: list[Path], modality: str) -> Dataset:
    """One case per NIfTI file, its ID the file name without extension, no labels."""
    cases: dict[str, Case] = {}
    for path in paths:
        case_id = _stem(path)
        if case_id in cases:
            raise UasbenchError(f"--data {path.parent}: {cases[case_id].files[modality].name} and {path.name} "
                                "would both be case " + case_id)
        cases[case_id] = Case(case_id, path.parent, SINGLE_FILES, {modality: path})
    return Dataset(paths[0].parent, SINGLE_FILES, tuple(cases.values()), (modality,), labels=None)


def find_cases(data: Path, modality: str, layout: str | None = None, card: Path | None = None) -> Dataset:
    """The cases of ``data``: a NIfTI file, a folder of NIfTI files that no layout describes, or a dataset
    folder (``layout``, ``card``, its dataset.toml or the detected layout) holding ``modality``."""
    data = Path(data)
    if data.is_file():
        if layout is not None or card is not None:
            raise UsageError(f"--layout and --card describe a data folder; --data {data} is a file")
        if not data.name.endswith(NIFTI_EXTENSIONS):
            raise UasbenchError(f"--data {data}: not a NIfTI file (.nii or .nii.gz) nor a folder")
        return _single_files([data], modality)
    if not data.is_dir():
        raise UasbenchError(f"--data {data}: no such file or folder")
    files = sorted(p for p in data.iterdir() if p.is_file() and p.name.endswith(NIFTI_EXTENSIONS))
    named = layout is not None or card is not None or (data / CARD_FILE).is_file()
    matches = [] if named else matching_layouts(data)
    if files and not named and not matches:
        return _single_files(files, modality)
    if len(matches) == 1:  # detected here: open_dataset need not look again
        layout = matches[0].name
    dataset = open_dataset(data, layout, card)
    dataset.require_modalities((modality,), f"the run's input modality {modality}")
    return dataset


def select_cases(cases: tuple[Case, ...], ids: list[str], data: Path) -> list[Case]:
    """The cases named in ``--cases`` (all of them when none is named), in the order given."""
    if not ids:
        return list(cases)
    by_id = {c.id: c for c in cases}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UsageError(f"--cases: no case {', '.join(unknown)} in {data} (it holds {len(cases)}: "
                         f"{_few(sorted(by_id))})")
    return [by_id[i] for i in dict.fromkeys(ids)]


def open_scan(dataset: Dataset, case: Case, modality: str) -> Scan:
    """``modality`` of one case with its label and brain-mask files' headers checked as preparation checks
    them (labels optional); raises ``BadCaseError``."""
    image = open_headers(dataset, case, (modality,), label_optional=True)[modality]
    if modality in case.channels:
        image = image.slicer[..., case.channels[modality]]
    return Scan(dataset, case, modality, image)


def check_grid(scan: Scan, z: range, depth: int) -> None:
    """Refuse a scan the protocol cannot slice: the slab ``z`` must exist among the ``depth`` axial slices the
    scan has once on the run's spatial standard (any stored orientation is fine: the standard reorients it)."""
    if z.stop > depth:
        name = scan.case.files[scan.modality].name
        stored = "" if depth == scan.image.shape[2] else " once on the standard grid"
        raise BadCaseError(scan.case.id, f"file {name} has {depth} axial slices{stored}, the protocol's slab needs "
                           f"z {z.start}..{z.stop - 1} (use --slices all to score every slice)")
