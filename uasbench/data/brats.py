"""Discover, read and validate BraTS cases (2021 and 2023 file naming).

A case is a folder ``<ID>/`` holding one NIfTI file per modality plus ``seg``. Validation happens while
reading, so a bad case costs no extra pass over the data; every problem becomes one line that names the
case and the file, and the caller decides whether to stop or skip.
"""
from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from uasbench.errors import UasbenchError
from uasbench.modalities import MODALITIES

# Canonical name -> file suffix, and the separator between the case ID and the suffix.
NAMINGS: dict[str, tuple[str, dict[str, str]]] = {
    "brats2021": ("_", {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"}),
    "brats2023": ("-", {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}),
}
# BraTS2023 moved enhancing tumour from label 4 to 3; downstream code always sees 2021 labels.
LABELS = {"brats2021": frozenset({0, 1, 2, 4}), "brats2023": frozenset({0, 1, 2, 3})}
NIFTI_EXTENSIONS = (".nii.gz", ".nii")
AFFINE_ATOL = 1e-3


class BadCaseError(UasbenchError):
    """One case cannot be used; the message names the case and the offending file."""

    def __init__(self, case: str, problem: str) -> None:
        super().__init__(f"case {case}: {problem}")
        self.case = case
        self.problem = problem


@dataclass(frozen=True)
class Case:
    """A case folder and the files found in it, keyed by canonical name (flair, t1, t1ce, t2, seg)."""

    id: str
    folder: Path
    naming: str
    files: dict[str, Path] = field(hash=False)


@dataclass(frozen=True)
class Volumes:
    """A validated case: images keyed by modality in their stored dtype (int16 for BraTS; converting whole
    volumes to float would double the read cost, and only the protocol's slab needs floats), integer
    BraTS2021 labels, the shared affine."""

    case: str
    images: dict[str, np.ndarray]
    seg: np.ndarray  # uint8, labels {0,1,2,4}
    affine: np.ndarray


def _find_file(folder: Path, stem: str) -> Path | None:
    for ext in NIFTI_EXTENSIONS:
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    return None


def _scan_case(folder: Path) -> Case | None:
    """The case in ``folder`` under whichever naming matches more files; None if it holds no case files."""
    best: Case | None = None
    for naming, (sep, suffixes) in NAMINGS.items():
        found = {name: p for name, suf in suffixes.items() if (p := _find_file(folder, f"{folder.name}{sep}{suf}"))}
        if found and (best is None or len(found) > len(best.files)):
            best = Case(folder.name, folder, naming, found)
    return best


def _scan_folder(root: Path) -> list[Case]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [case for d in subdirs if (case := _scan_case(d)) is not None]


def discover_cases(root: Path) -> tuple[Path, list[Case]]:
    """Cases under ``root`` or under its single wrapper sub-folder, sorted by ID."""
    root = Path(root)
    if not root.is_dir():
        raise UasbenchError(f"data folder {root} does not exist or is not a folder")
    cases = _scan_folder(root)
    if cases:
        return root, cases
    wrapped = [(d, c) for d in sorted(root.iterdir()) if d.is_dir() and (c := _scan_folder(d))]
    if len(wrapped) > 1:
        names = ", ".join(d.name for d, _ in wrapped)
        raise UasbenchError(f"data folder {root} holds cases in several sub-folders ({names}); point at one of them")
    if not wrapped:
        raise UasbenchError(
            f"no BraTS cases found in {root} (expected <ID>/<ID>_flair.nii.gz ... or <ID>/<ID>-t2f.nii.gz ...)"
        )
    return wrapped[0]


def expected_name(case: Case, name: str) -> str:
    sep, suffixes = NAMINGS[case.naming]
    return f"{case.id}{sep}{suffixes[name]}.nii.gz"


def _require(case: Case, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in case.files]
    if missing:
        raise BadCaseError(case.id, "missing file(s) " + ", ".join(expected_name(case, n) for n in missing))


def _one_line(exc: BaseException) -> str:
    """nibabel's messages can span lines (e.g. for a truncated file); an error line must not."""
    return " ".join(str(exc).split())


def _open(case: Case, name: str) -> nib.Nifti1Image:
    path = case.files[name]
    try:
        img = nib.load(path)
    except (OSError, EOFError, zlib.error, ImageFileError, ValueError) as exc:
        raise BadCaseError(case.id, f"file {path.name} is unreadable ({_one_line(exc)})") from None
    if len(img.shape) != 3:
        raise BadCaseError(case.id, f"file {path.name} has shape {img.shape}, expected a 3-D volume")
    return img


def _check_geometry(case: Case, headers: dict[str, nib.Nifti1Image]) -> np.ndarray:
    """All files share the first file's shape and affine; returns that affine."""
    ref_name, ref = next(iter(headers.items()))
    for name, img in headers.items():
        fname = case.files[name].name
        if img.shape != ref.shape:
            raise BadCaseError(
                case.id, f"file {fname} has shape {img.shape}, but {case.files[ref_name].name} has {ref.shape}"
            )
        if not np.allclose(img.affine, ref.affine, atol=AFFINE_ATOL):
            raise BadCaseError(case.id, f"file {fname} has an affine that differs from {case.files[ref_name].name}")
    return ref.affine


def _read(case: Case, name: str, img: nib.Nifti1Image) -> np.ndarray:
    """The stored values (scaled if the header says so); integer data needs no finiteness check."""
    try:
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise BadCaseError(case.id, f"file {case.files[name].name} is unreadable ({_one_line(exc)})") from None
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise BadCaseError(case.id, f"file {case.files[name].name} contains NaN or infinite values")
    return data


def _labels(case: Case, data: np.ndarray) -> np.ndarray:
    """Integer labels in BraTS2021 convention; unexpected values are an error naming the seg file.

    Linear passes only (range check, uint8 cast, one comparison per label value up to the maximum): a
    sort of the 9 M voxels would cost more than the rest of the preprocessing.
    """
    allowed = LABELS[case.naming]
    lo, hi = data.min(), data.max()
    seg = data.astype(np.uint8) if 0 <= lo and hi <= 255 else None
    if seg is None or (data.dtype != np.uint8 and not np.array_equal(seg, data)):
        bad = "non-integer values" if seg is not None else f"values in [{float(lo):g}, {float(hi):g}]"
    else:
        bad = [v for v in range(int(hi) + 1) if v not in allowed and (seg == v).any()] or None
    if bad is not None:
        raise BadCaseError(
            case.id, f"file {case.files['seg'].name} has unexpected label values {bad} (expected {sorted(allowed)})"
        )
    if case.naming == "brats2023":
        seg[seg == 3] = 4
    return seg


def read_case(case: Case, modalities: tuple[str, ...] = MODALITIES) -> Volumes:
    """Read and validate ``modalities`` and ``seg`` of one case; raises ``BadCaseError`` on any problem."""
    names = (*modalities, "seg")
    _require(case, names)
    headers = {name: _open(case, name) for name in names}
    affine = _check_geometry(case, headers)
    images = {name: _read(case, name, headers[name]) for name in modalities}
    seg = _labels(case, _read(case, "seg", headers["seg"]))
    return Volumes(case.id, images, seg, affine)


@dataclass(frozen=True)
class Scan:
    """One modality of a case, plus its seg file when it has one, with headers checked and voxels not yet
    read. What applying a trained method needs: only the input modality has to exist, labels are optional."""

    case: Case
    modality: str
    image: nib.Nifti1Image
    seg: nib.Nifti1Image | None

    def read(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The image in its stored dtype and, when present, the labels in BraTS2021 convention."""
        image = _read(self.case, self.modality, self.image)
        seg = None if self.seg is None else _labels(self.case, _read(self.case, "seg", self.seg))
        return image, seg


def open_scan(case: Case, modality: str) -> Scan:
    """Open ``modality`` (required) and ``seg`` (if present) of one case; raises ``BadCaseError``."""
    _require(case, (modality,))
    names = (modality, "seg") if "seg" in case.files else (modality,)
    headers = {name: _open(case, name) for name in names}
    _check_geometry(case, headers)
    return Scan(case, modality, headers[modality], headers.get("seg"))


@dataclass(frozen=True)
class InspectionReport:
    """What ``uasbench data inspect`` prints: a summary of a data folder and the problems found in it."""

    root: Path
    case_root: Path
    namings: dict[str, int]
    cases: tuple[str, ...]
    modalities: dict[str, int]  # canonical name -> number of cases that have it
    shapes: dict[tuple[int, ...], int]
    labels: tuple[int, ...]  # union over cases, BraTS2021 convention
    problems: dict[str, str]  # case -> one-line problem
    deep: bool

    def rows(self) -> list[tuple[str, str]]:
        n = len(self.cases)
        shapes = ", ".join(f"{'x'.join(map(str, s))} ({c})" for s, c in sorted(self.shapes.items()))
        return [
            ("folder", str(self.case_root)),
            ("cases", str(n)),
            ("naming", ", ".join(f"{k} ({v})" for k, v in sorted(self.namings.items()))),
            ("modalities", ", ".join(f"{m} ({c}/{n})" for m, c in self.modalities.items())),
            ("shapes", shapes or "-"),
            ("labels", ", ".join(map(str, self.labels)) or "-"),
            ("checked", "all voxels" if self.deep else "headers and labels"),
            ("problems", str(len(self.problems))),
        ]

    def to_text(self) -> str:
        lines = [f"{key:<11} {value}" for key, value in self.rows()]
        lines += [f"  {case}: {problem}" for case, problem in sorted(self.problems.items())]
        return "\n".join(lines)

    def rich_table(self):  # -> rich.table.Table
        """The same content as ``to_text`` as a rich table, problems listed below the summary."""
        from rich.table import Table

        table = Table(title=f"BraTS data: {self.root}", show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value")
        for key, value in self.rows():
            table.add_row(key, value)
        for case, problem in sorted(self.problems.items()):
            table.add_row(f"[red]{case}[/red]", problem.removeprefix(f"case {case}: "))
        return table


def _check_headers(case: Case) -> tuple[tuple[int, ...], set[int]]:
    """Cheap check: every file's header, geometry agreement and the label set (the seg is read)."""
    _require(case, (*MODALITIES, "seg"))
    headers = {name: _open(case, name) for name in (*MODALITIES, "seg")}
    _check_geometry(case, headers)
    seg = _labels(case, _read(case, "seg", headers["seg"]))
    return tuple(headers["seg"].shape), set(np.unique(seg).tolist())


def inspect_dataset(root: Path, deep: bool = False) -> InspectionReport:
    """Summarise a data folder; ``deep`` reads every voxel (finds NaNs, truncated data), else headers + labels."""
    case_root, cases = discover_cases(root)
    shapes: Counter = Counter()
    labels: set[int] = set()
    problems: dict[str, str] = {}
    for case in cases:
        try:
            if deep:
                vols = read_case(case)
                shape, found = vols.seg.shape, set(np.unique(vols.seg).tolist())
            else:
                shape, found = _check_headers(case)
        except BadCaseError as exc:
            problems[case.id] = str(exc)
            continue
        shapes[shape] += 1
        labels |= found
    modalities = {m: sum(m in c.files for c in cases) for m in (*MODALITIES, "seg")}
    return InspectionReport(
        root=Path(root), case_root=case_root, namings=dict(Counter(c.naming for c in cases)),
        cases=tuple(c.id for c in cases), modalities=modalities, shapes=dict(shapes),
        labels=tuple(sorted(labels)), problems=problems, deep=deep,
    )
