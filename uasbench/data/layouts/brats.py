"""BraTS2021 and BraTS2023 (GLI, MET, PED, SSA and MEN) folders: ``<ID>/`` holding one NIfTI file per modality
plus ``seg``, all on one grid, skull-stripped, in the SRI24 atlas at 1 mm (240 x 240 x 155).

Cases may sit in one wrapper sub-folder (e.g. ``TrainingData/``). BraTS2023 moved enhancing tumour from label 4
to 3; the layout maps it back, so downstream code always sees BraTS2021 labels.
"""
from __future__ import annotations

from pathlib import Path

from uasbench.data.layouts.base import LABEL, Case, Dataset, Labels, Layout, find_nifti
from uasbench.errors import UasbenchError
from uasbench.modalities import MODALITIES

# Canonical name -> file suffix, and the separator between the case ID and the suffix.
NAMINGS: dict[str, tuple[str, dict[str, str]]] = {
    "brats2021": ("_", {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", LABEL: "seg"}),
    "brats2023": ("-", {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", LABEL: "seg"}),
}
_MEANING = {0: "background", 1: "necrotic or non-enhancing tumour core", 2: "oedema", 4: "enhancing tumour"}
LABELS = {
    "brats2021": Labels(_MEANING, allowed=frozenset({0, 1, 2, 4})),
    "brats2023": Labels(_MEANING, allowed=frozenset({0, 1, 2, 3}), remap={3: 4}),
}


def _scan_case(folder: Path, namings: tuple[str, ...]) -> Case | None:
    """The case in ``folder`` under whichever naming matches more files; None if it holds no case files."""
    best: Case | None = None
    for naming in namings:
        sep, suffixes = NAMINGS[naming]
        found = {name: p for name, suf in suffixes.items() if (p := find_nifti(folder, f"{folder.name}{sep}{suf}"))}
        if found and (best is None or len(found) > len(best.files)):
            expected = {name: f"{folder.name}{sep}{suf}.nii.gz" for name, suf in suffixes.items()}
            best = Case(folder.name, folder, naming, found, expected=expected)
    return best


def _scan_folder(root: Path, namings: tuple[str, ...]) -> list[Case]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [case for d in subdirs if (case := _scan_case(d, namings)) is not None]


def discover_cases(root: Path, namings: tuple[str, ...] = tuple(NAMINGS)) -> tuple[Path, list[Case]]:
    """Cases under ``root`` or under its single wrapper sub-folder, sorted by ID; a folder's naming is the one
    of ``namings`` that matches more of its files."""
    root = Path(root)
    if not root.is_dir():
        raise UasbenchError(f"data folder {root} does not exist or is not a folder")
    cases = _scan_folder(root, namings)
    if cases:
        return root, cases
    wrapped = [(d, c) for d in sorted(root.iterdir()) if d.is_dir() and (c := _scan_folder(d, namings))]
    if len(wrapped) > 1:
        names = ", ".join(d.name for d, _ in wrapped)
        raise UasbenchError(f"data folder {root} holds cases in several sub-folders ({names}); point at one of them")
    if not wrapped:
        raise UasbenchError(
            f"no BraTS cases found in {root} (expected <ID>/<ID>_flair.nii.gz ... or <ID>/<ID>-t2f.nii.gz ...)"
        )
    return wrapped[0]


class Brats(Layout):
    """One BraTS naming. Detection looks at the case folders of ``root`` and of its sub-folders."""

    space = "SRI24 atlas, 1 mm, 240 x 240 x 155, skull-stripped"

    def __init__(self, naming: str) -> None:
        self.name = naming
        sep, suffixes = NAMINGS[naming]
        self.naming = f"<ID>/<ID>{sep}{{{','.join(suffixes.values())}}}.nii.gz"
        if naming == "brats2023":
            self.naming += " (<ID> = BraTS-<GLI|MET|PED|SSA|MEN>-<5 digits>-<3 digits>)"

    def detect(self, root: Path) -> bool:
        folders = [root, *(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))]
        return any(c.naming == self.name for folder in folders for c in _scan_folder(folder, tuple(NAMINGS)))

    def open(self, root: Path) -> Dataset:
        case_root, cases = discover_cases(root, tuple(NAMINGS))
        mine = [c for c in cases if c.naming == self.name]
        if not mine:
            others = sorted({c.naming for c in cases})
            raise UasbenchError(f"no {self.name} cases in {case_root} (its cases are named the {', '.join(others)} "
                                f"way: pass --layout {others[0]})")
        if len(mine) < len(cases):
            raise UasbenchError(f"data folder {case_root} mixes BraTS namings ({len(mine)} {self.name} cases, "
                                f"{len(cases) - len(mine)} others); keep one naming per folder")
        return Dataset(case_root, self.name, tuple(mine), MODALITIES[:4], LABELS[self.name])
