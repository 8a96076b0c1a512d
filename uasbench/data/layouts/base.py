"""What every layout shares: cases, label meanings, datasets, and reading a case with validation.

A layout turns a folder into a ``Dataset``: its cases (each a dict of file per modality, ``seg`` for the label
file and ``brainmask`` for a brain-mask file), the modalities it holds, what its label values mean and where the
brain mask comes from. Reading validates while it reads, so a bad case costs no extra pass over the data; every
problem becomes one ``BadCaseError`` line that names the case and the file, and the caller decides whether to
stop or skip.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from uasbench.errors import UasbenchError
from uasbench.modalities import MODALITIES

if TYPE_CHECKING:
    from uasbench.data.spatial import SpatialRecord, SpatialStandard, Standardised

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
AFFINE_ATOL = 1e-3
LABEL = "seg"  # the key of a case's label file
BRAIN = "brainmask"  # the key of a case's brain-mask file
NONZERO = "nonzero"  # brain mask = the non-zero voxels of each (skull-stripped) image


class BadCaseError(UasbenchError):
    """One case cannot be used; the message names the case and the offending file."""

    def __init__(self, case: str, problem: str) -> None:
        super().__init__(f"case {case}: {problem}")
        self.case = case
        self.problem = problem


@dataclass(frozen=True)
class Labels:
    """What a label file's values mean. ``allowed`` are the values a file may hold (None: any integer 0..255);
    ``anomalous`` the values of the anomaly mask (None: every non-zero value that is not ignored); ``ignored``
    values are left out of scoring (e.g. WMH's "other pathology"); ``remap`` is applied after validation
    (BraTS2023's enhancing tumour 3 -> BraTS2021's 4, so downstream code sees one convention)."""

    meaning: dict[int, str] = field(default_factory=dict, hash=False)
    allowed: frozenset[int] | None = None
    anomalous: frozenset[int] | None = None
    ignored: frozenset[int] = frozenset()
    remap: dict[int, int] = field(default_factory=dict, hash=False)

    def anomaly(self, seg: np.ndarray) -> np.ndarray:
        """Boolean anomaly mask of a (remapped) label volume."""
        if self.anomalous is None:
            mask = seg > 0
            for v in self.ignored:
                mask &= seg != v
            return mask
        return np.isin(seg, sorted(self.anomalous))

    def ignore(self, seg: np.ndarray) -> np.ndarray | None:
        """Boolean mask of the ignored voxels, or None when no value is ignored."""
        return np.isin(seg, sorted(self.ignored)) if self.ignored else None

    def describe(self) -> str:
        """One line: each value and its meaning, then what counts as anomalous and what is ignored."""
        values = ", ".join(f"{v} {name}" for v, name in sorted(self.meaning.items()))
        anomalous = "every value > 0" if self.anomalous is None else ", ".join(map(str, sorted(self.anomalous)))
        text = f"{values}; anomalous: {anomalous}" if values else f"anomalous: {anomalous}"
        if self.ignored:
            text += f"; ignored in scoring: {', '.join(map(str, sorted(self.ignored)))}"
        return text


@dataclass(frozen=True)
class Case:
    """A case and its files keyed by modality, ``seg`` and ``brainmask``. ``naming`` is the layout's name;
    ``channels`` gives the channel of a modality stored in a 4-D file (Decathlon images)."""

    id: str
    folder: Path
    naming: str
    files: dict[str, Path] = field(hash=False)
    channels: dict[str, int] = field(default_factory=dict, hash=False)
    expected: dict[str, str] = field(default_factory=dict, hash=False)  # name -> file name a missing file would have


@dataclass(frozen=True)
class Dataset:
    """A folder read through a layout: what preparation, inspection and the CLI need to know about it."""

    root: Path  # the folder the cases were found in
    layout: str
    cases: tuple[Case, ...]
    modalities: tuple[str, ...]  # held by at least one case, in MODALITIES order
    labels: Labels | None  # None: healthy-only, no label files
    brain_mask: str = NONZERO  # NONZERO or "file"
    same_grid: bool = True  # all files of a case must share one grid (else the spatial standard aligns them)
    skull_stripped: bool = True  # as the layout documents it; `data inspect` also measures it
    card: str = ""  # digest of the dataset card, part of the data fingerprint
    name: str = ""  # the card's dataset.name

    @property
    def healthy_only(self) -> bool:
        return self.labels is None

    def require_modalities(self, wanted: tuple[str, ...] | list[str], what: str) -> None:
        """Refuse, before any work, modalities this dataset does not hold (``what`` names the request)."""
        missing = [m for m in wanted if m not in self.modalities]
        if missing:
            raise UasbenchError(f"{what}: dataset {self.root} ({self.layout}) has no {', '.join(missing)}; "
                                f"it holds {', '.join(self.modalities) or 'no modality'}")


def present_modalities(cases: list[Case] | tuple[Case, ...]) -> tuple[str, ...]:
    found = {name for case in cases for name in case.files}
    return tuple(m for m in MODALITIES if m in found)


def find_nifti(folder: Path, stem: str) -> Path | None:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``, whichever exists."""
    for ext in NIFTI_EXTENSIONS:
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    return None


def nifti_stem(name: str) -> str | None:
    """A NIfTI file name without its extension, None for any other file."""
    return next((name[: -len(ext)] for ext in NIFTI_EXTENSIONS if name.endswith(ext)), None)


class Layout:
    """A family of datasets: ``detect`` says cheaply whether a folder looks like one (file names only), ``open``
    finds its cases and says what they hold (raises ``UasbenchError`` naming the folder when it finds none)."""

    name: str = ""
    naming: str = ""  # the file naming, for help texts, errors and the docs' table
    space: str = ""  # the space its scans are in, for the docs' table

    def detect(self, root: Path) -> bool:
        raise NotImplementedError

    def open(self, root: Path) -> Dataset:
        raise NotImplementedError


@dataclass(frozen=True)
class Volumes:
    """A validated case: images keyed by modality in their stored dtype (int16 for BraTS; converting whole
    volumes to float would double the read cost, and only the protocol's slab needs floats), integer labels
    (remapped to the layout's downstream convention; None for a healthy-only dataset) and the images' affine
    (the first modality's, or the standard grid's).

    On the spatial standard, ``images`` and ``seg`` may be a part of the standard grid: its axial positions
    ``z_first`` .. of ``depth`` in all. ``native`` keeps each image as stored (brain-masked, not interpolated):
    what a volume's normalisation statistics are computed from (the same arrays as ``images`` when the standard
    left the case as read)."""

    case: str
    images: dict[str, np.ndarray]
    seg: np.ndarray | None
    affine: np.ndarray
    spatial: SpatialRecord | None = field(default=None, hash=False)  # what the spatial standard did, when applied
    native: dict[str, np.ndarray] = field(default_factory=dict, hash=False)
    z_first: int = 0
    depth: int = 0  # axial positions of the whole grid (0: the arrays' own depth)


def expected_name(case: Case, name: str) -> str:
    return case.expected.get(name, f"{case.id}_{name}.nii.gz")


def require(case: Case, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in case.files]
    if missing:
        raise BadCaseError(case.id, "missing file(s) " + ", ".join(expected_name(case, n) for n in missing))


def one_line(exc: BaseException) -> str:
    """nibabel's messages can span lines (e.g. for a truncated file); an error line must not."""
    return " ".join(str(exc).split())


def open_file(case: Case, name: str) -> nib.Nifti1Image:
    """The header of one file of a case; a 4-D file is accepted only where the case names a channel of it."""
    path = case.files[name]
    try:
        img = nib.load(path)
    except (OSError, EOFError, zlib.error, ImageFileError, ValueError) as exc:
        raise BadCaseError(case.id, f"file {path.name} is unreadable ({one_line(exc)})") from None
    if name in case.channels:
        if len(img.shape) != 4 or case.channels[name] >= img.shape[3]:
            raise BadCaseError(case.id, f"file {path.name} has shape {img.shape}, expected a 4-D volume with "
                                        f"channel {case.channels[name]}")
    elif len(img.shape) != 3:
        raise BadCaseError(case.id, f"file {path.name} has shape {img.shape}, expected a 3-D volume")
    return img


def check_geometry(case: Case, headers: dict[str, nib.Nifti1Image]) -> np.ndarray:
    """All files share the first file's shape and affine; returns that affine."""
    ref_name, ref = next(iter(headers.items()))
    ref_shape = tuple(ref.shape[:3])
    for name, img in headers.items():
        fname = case.files[name].name
        shape = tuple(img.shape[:3])
        if shape != ref_shape:
            raise BadCaseError(
                case.id, f"file {fname} has shape {shape}, but {case.files[ref_name].name} has {ref_shape}"
            )
        if not np.allclose(img.affine, ref.affine, atol=AFFINE_ATOL):
            raise BadCaseError(case.id, f"file {fname} has an affine that differs from {case.files[ref_name].name}")
    return ref.affine


def read_data(case: Case, name: str, img: nib.Nifti1Image) -> np.ndarray:
    """The stored values (scaled if the header says so); integer data needs no finiteness check."""
    try:
        if name in case.channels:
            data = np.asanyarray(img.dataobj[..., case.channels[name]])
        else:
            data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise BadCaseError(case.id, f"file {case.files[name].name} is unreadable ({one_line(exc)})") from None
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise BadCaseError(case.id, f"file {case.files[name].name} contains NaN or infinite values")
    return data


def read_labels(case: Case, labels: Labels, data: np.ndarray, name: str = LABEL) -> np.ndarray:
    """Integer labels, remapped; values outside ``labels.allowed`` are an error naming the file.

    Linear passes only (range check, uint8 cast, one comparison per label value up to the maximum): a
    sort of the 9 M voxels would cost more than the rest of the preprocessing.
    """
    lo, hi = data.min(), data.max()
    seg = data.astype(np.uint8) if 0 <= lo and hi <= 255 else None
    if seg is None or (data.dtype != np.uint8 and not np.array_equal(seg, data)):
        bad = "non-integer values" if seg is not None else f"values in [{float(lo):g}, {float(hi):g}]"
    elif labels.allowed is None:
        bad = None
    else:
        bad = [v for v in range(int(hi) + 1) if v not in labels.allowed and (seg == v).any()] or None
    if bad is not None:
        expected = f" (expected {sorted(labels.allowed)})" if labels.allowed is not None else " (expected 0..255)"
        raise BadCaseError(case.id, f"file {case.files[name].name} has unexpected label values {bad}{expected}")
    if labels.remap:
        source = seg.copy() if len(labels.remap) > 1 else seg
        for old, new in labels.remap.items():
            seg[source == old] = new
    return seg


def open_headers(dataset: Dataset, case: Case, modalities: tuple[str, ...],
                 label_optional: bool = False) -> dict[str, nib.Nifti1Image]:
    """The headers of ``modalities``, the label file (unless ``label_optional`` and absent) and the brain-mask
    file of one case, in that order: present, readable, and on one grid where the dataset says they share one."""
    labelled = dataset.labels is not None and (LABEL in case.files or not label_optional)
    names = (*modalities, *((LABEL,) if labelled else ()), *((BRAIN,) if dataset.brain_mask == "file" else ()))
    require(case, names)
    headers = {name: open_file(case, name) for name in names}
    if dataset.same_grid:
        check_geometry(case, headers)
    return headers


def read_case(dataset: Dataset, case: Case, modalities: tuple[str, ...] | None = None,
              spatial: SpatialStandard | None = None, axial: range | None = None,
              label_optional: bool = False) -> Volumes:
    """Read and validate ``modalities`` (default: the dataset's), the label file and the brain-mask file of one
    case; raises ``BadCaseError`` on any problem. With ``spatial``, the arrays are then brought onto the spatial
    standard's grid (``uasbench.data.spatial``; BraTS on the default standard comes back untouched), only its
    axial positions ``axial`` when given. A brain-mask file zeroes the images outside it, so the rest of the
    toolkit finds the brain as the non-zero voxels, as in skull-stripped data. ``label_optional``: a case
    without its label file is read without labels (``predict`` applies a run to unlabelled scans)."""
    modalities = dataset.modalities if modalities is None else modalities
    headers = open_headers(dataset, case, modalities, label_optional)
    names = tuple(headers)
    data = {name: read_data(case, name, headers[name]) for name in modalities}
    if LABEL in headers:
        data[LABEL] = read_labels(case, dataset.labels, read_data(case, LABEL, headers[LABEL]))
    if BRAIN in headers:
        data[BRAIN] = read_data(case, BRAIN, headers[BRAIN]) > 0
    affines = {name: np.asarray(headers[name].affine, dtype=float) for name in names}
    if BRAIN in data:
        for m in modalities:
            data[m] = _masked(case, data[m], affines[m], data[BRAIN], affines[BRAIN])
    native = {m: data[m] for m in modalities}
    if spatial is None:
        return Volumes(case.id, native, data.get(LABEL), affines[names[0]], None, native)
    done = _standardised(case, data, affines, spatial, axial)
    images = {m: done.images[m] for m in modalities}
    if done.brain_mask is not None and done.record.resampled:  # interpolation blended the brain's edge outwards
        images = {m: np.where(done.brain_mask > 0, img, np.zeros((), img.dtype)) for m, img in images.items()}
    return Volumes(case.id, images, done.label, done.affine, done.record, native, done.z_first,
                   done.record.grid.shape[2])


def _masked(case: Case, image: np.ndarray, affine: np.ndarray, brain: np.ndarray,
            brain_affine: np.ndarray) -> np.ndarray:
    """``image`` zeroed outside the brain-mask file's voxels, on the image's own grid (the mask is put onto
    that grid by nearest neighbour when it is stored on another)."""
    if brain.shape != image.shape or not np.allclose(affine, brain_affine, atol=AFFINE_ATOL):
        from uasbench.data.spatial import to_grid

        brain = to_grid(brain, brain_affine, image.shape, affine, nearest=True)[0]
    return np.where(brain, image, np.zeros((), image.dtype))


def _standardised(case: Case, data: dict[str, np.ndarray], affines: dict[str, np.ndarray],
                  spatial: SpatialStandard, axial: range | None) -> Standardised:
    """The validated arrays on the spatial standard's grid (in-memory images: the voxels are read once)."""
    from uasbench.data.spatial import standardise

    def image(name: str) -> nib.Nifti1Image:
        return nib.Nifti1Image(data[name].astype(np.uint8) if data[name].dtype == bool else data[name], affines[name])

    images = {name: image(name) for name in data if name not in (LABEL, BRAIN)}
    try:
        return standardise(images, image(LABEL) if LABEL in data else None,
                           image(BRAIN) if BRAIN in data else None, spatial, axial)
    except UasbenchError as exc:
        raise BadCaseError(case.id, str(exc)) from None
