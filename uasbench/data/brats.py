"""BraTS folders for ``uasbench predict``, which reads one modality of a case at a time and labels only when
present. Discovery, validation and the label conventions live in ``uasbench.data.layouts`` (``brats2021`` and
``brats2023``); this module is the scan-by-scan view of them that predict imports."""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from uasbench.data.layouts.base import (  # noqa: F401  (re-exported: predict imports them from here)
    LABEL, NIFTI_EXTENSIONS, BadCaseError, Case, Labels, check_geometry, open_file, read_data, read_labels, require,
)
from uasbench.data.layouts.brats import LABELS, NAMINGS, discover_cases  # noqa: F401


@dataclass(frozen=True)
class Scan:
    """One modality of a case, plus its seg file when it has one, with headers checked and voxels not yet
    read. What applying a trained method needs: only the input modality has to exist, labels are optional."""

    case: Case
    modality: str
    image: nib.Nifti1Image
    seg: nib.Nifti1Image | None
    labels: Labels | None = None  # what the seg file's values mean (None: the BraTS naming's)

    def read(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The image in its stored dtype and, when present, the labels (BraTS: in BraTS2021 convention)."""
        image = read_data(self.case, self.modality, self.image)
        labels = self.labels or LABELS[self.case.naming]
        seg = None if self.seg is None else read_labels(self.case, labels, read_data(self.case, LABEL, self.seg))
        return image, seg


def open_scan(case: Case, modality: str, labels: Labels | None = None, same_grid: bool = True) -> Scan:
    """Open ``modality`` (required) and ``seg`` (if present) of one case; raises ``BadCaseError``. A case of
    another layout passes its dataset's ``labels`` and ``same_grid`` (ISLES'22's mask is on DWI's grid, not
    FLAIR's: the spatial standard aligns them)."""
    require(case, (modality,))
    names = (modality, LABEL) if LABEL in case.files else (modality,)
    headers = {name: open_file(case, name) for name in names}
    if same_grid:
        check_geometry(case, headers)
    return Scan(case, modality, headers[modality], headers.get(LABEL), labels)
