"""Public datasets with fixed file names: IXI, MSLUB, ATLAS v2.0, the MICCAI 2017 WMH challenge and ISLES'22.

Each class knows its dataset's names, which modalities it holds, what its label values mean, whether its
scans are skull-stripped and where the brain mask comes from; the facts are summarised in
``docs/how-to/other-datasets.md``.
"""
from __future__ import annotations

import re
from pathlib import Path

from uasbench.data.layouts.base import (
    BRAIN, LABEL, NONZERO, Case, Dataset, Labels, Layout, find_nifti, nifti_stem, present_modalities,
)
from uasbench.errors import UasbenchError

_LESION = {0: "background", 1: "lesion"}


def _no_cases(layout: Layout, root: Path) -> UasbenchError:
    return UasbenchError(f"no {layout.name} cases found in {root} (expected {layout.naming})")


class _ScannedLayout(Layout):
    """A layout whose cases are found by scanning file names (``_cases``): it is detected when any are found,
    and opening a folder without any is one line naming it."""

    def _cases(self, root: Path) -> list[Case]:
        raise NotImplementedError

    def detect(self, root: Path) -> bool:
        return bool(self._cases(root))

    def _found(self, root: Path) -> tuple[Case, ...]:
        cases = tuple(self._cases(root))
        if not cases:
            raise _no_cases(self, root)
        return cases


def _folders(root: Path, pattern: str, depth: int) -> list[Path]:
    """Paths matching ``pattern`` under ``root`` or up to ``depth`` wrapper levels below it (e.g. ATLAS's
    ``Training/R001/``), sorted; hidden folders are skipped."""
    found: list[Path] = []
    prefix = ""
    for _ in range(depth + 1):
        found += [p for p in root.glob(prefix + pattern) if not any(part.startswith(".") for part in p.parts[-4:])]
        prefix += "*/"
    return sorted(found)


class Ixi(Layout):
    """IXI: ``IXI<nnn>-<Site>-<id>-<T1|T2|PD>.nii.gz`` in one folder (or one sub-folder per contrast, as IXI's
    downloads come); one case per subject ID, every subject healthy, no label."""

    name = "ixi"
    naming = "IXI<nnn>-<Site>-<id>-<T1|T2|PD>.nii.gz in one folder (or one sub-folder per contrast)"
    space = "native scanner space per scan (T1 sagittal, T2/PD axial grids)"
    _FILE = re.compile(r"^(IXI\d{3}-[A-Za-z]+-\d+)-(T1|T2|PD)$")
    _MODALITY = {"T1": "t1", "T2": "t2", "PD": "pd"}

    def _files(self, root: Path) -> list[tuple[str, str, Path]]:
        out = []
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]:
            for path in sorted(folder.iterdir()):
                stem = nifti_stem(path.name)
                if stem and path.is_file() and (m := self._FILE.match(stem)):
                    out.append((m.group(1), self._MODALITY[m.group(2)], path))
        return out

    def detect(self, root: Path) -> bool:
        return bool(self._files(root))

    def open(self, root: Path) -> Dataset:
        cases: dict[str, dict[str, Path]] = {}
        for case_id, modality, path in self._files(root):
            files = cases.setdefault(case_id, {})
            if modality in files:
                raise UasbenchError(f"data folder {root}: {files[modality].name} and {path.name} are both "
                                    f"{modality} of {case_id}")
            files[modality] = path
        if not cases:
            raise _no_cases(self, root)
        found = tuple(Case(cid, files[next(iter(files))].parent, self.name, files,
                           expected={m: f"{cid}-{t}.nii.gz" for t, m in self._MODALITY.items()})
                      for cid, files in sorted(cases.items()))
        return Dataset(root, self.name, found, present_modalities(found), None, same_grid=False)


class Mslub(_ScannedLayout):
    """MSLUB (Ljubljana MS lesions): ``patientXX/patientXX_<NAME>.nii.gz``, in the original release's names
    (T1W, T1WKS, T2W, FLAIR, brainmask, consensus_gt; native FLAIR space, brain mask file) or in the flat names
    of a processed copy (FLAIR, T1, T1POST, T2, GOLD_STANDARD; MNI152, skull-stripped). T1WKS/T1POST is the
    contrast-enhanced T1."""

    name = "mslub"
    naming = ("patientXX/patientXX_{T1W,T1WKS,T2W,FLAIR,brainmask,consensus_gt}.nii.gz or "
              "patientXX/patientXX_{FLAIR,T1,T1POST,T2,GOLD_STANDARD}.nii.gz")
    space = "original: native FLAIR space per patient; processed copies: MNI152 1 mm (182 x 218 x 182)"
    _NAMES = {"FLAIR": "flair", "T1W": "t1", "T1": "t1", "T1WKS": "t1ce", "T1POST": "t1ce", "T2W": "t2",
              "T2": "t2", "brainmask": BRAIN, "consensus_gt": LABEL, "GOLD_STANDARD": LABEL}

    def _cases(self, root: Path) -> list[Case]:
        cases = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"patient\d+", p.name)):
            files = {}
            for suffix, name in self._NAMES.items():
                if name not in files and (path := find_nifti(folder, f"{folder.name}_{suffix}")):
                    files[name] = path
            if files:
                original = BRAIN in files or "T1W" in " ".join(p.name for p in files.values())
                names = ("FLAIR", "T1W", "T1WKS", "T2W", "brainmask", "consensus_gt") if original else \
                    ("FLAIR", "T1", "T1POST", "T2", "GOLD_STANDARD")
                expected = {self._NAMES[n]: f"{folder.name}_{n}.nii.gz" for n in names}
                cases.append(Case(folder.name, folder, self.name, files, expected=expected))
        return cases

    def open(self, root: Path) -> Dataset:
        cases = self._found(root)
        with_mask = sum(BRAIN in c.files for c in cases)
        if 0 < with_mask < len(cases):
            raise UasbenchError(f"data folder {root} mixes MSLUB's original release (with brainmask files) and a "
                                "processed copy (without); keep one per folder")
        return Dataset(root, self.name, cases, present_modalities(cases), Labels(_LESION, frozenset({0, 1})),
                       brain_mask="file" if with_mask else NONZERO, same_grid=True)


class Atlas2(_ScannedLayout):
    """ATLAS v2.0 (stroke, T1 only): ``sub-<id>/ses-<n>/anat/sub-<id>_ses-<n>_space-MNI152NLin2009aSym_T1w.nii.gz``
    with ``..._label-L_desc-T1lesion_mask.nii.gz``, possibly under ``Training/R<site>/`` folders."""

    name = "atlas2"
    naming = ("sub-<id>/ses-<n>/anat/sub-<id>_ses-<n>_space-MNI152NLin2009aSym_{T1w,label-L_desc-T1lesion_mask}"
              ".nii.gz")
    space = "MNI152NLin2009aSym, 1 mm (197 x 233 x 189), defaced, not skull-stripped"
    _T1 = "_space-MNI152NLin2009aSym_T1w"
    _MASK = "_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask"

    def _cases(self, root: Path) -> list[Case]:
        cases = []
        for anat in _folders(root, "sub-*/ses-*/anat", 2):
            stem = f"{anat.parent.parent.name}_{anat.parent.name}"
            files = {name: p for name, suffix in (("t1", self._T1), (LABEL, self._MASK))
                     if (p := find_nifti(anat, stem + suffix))}
            if files:
                cases.append(Case(stem, anat, self.name, files,
                                  expected={"t1": stem + self._T1 + ".nii.gz", LABEL: stem + self._MASK + ".nii.gz"}))
        return sorted(cases, key=lambda c: c.id)

    def open(self, root: Path) -> Dataset:
        cases = self._found(root)
        return Dataset(root, self.name, cases, present_modalities(cases), Labels(_LESION, frozenset({0, 1})), skull_stripped=False)


class Wmh(_ScannedLayout):
    """MICCAI 2017 white-matter hyperintensities: ``<site>/<id>/pre/{FLAIR,T1}.nii.gz`` with
    ``<site>/<id>/wmh.nii.gz`` (label 1 WMH, 2 other pathology, ignored in scoring)."""

    name = "wmh"
    naming = "<site>/<id>/pre/{FLAIR,T1}.nii.gz with <site>/<id>/wmh.nii.gz"
    space = "native FLAIR space per scan (T1 registered to it), not skull-stripped"

    def _cases(self, root: Path) -> list[Case]:
        cases = []
        for pre in _folders(root, "*/*/pre", 1):
            case_dir = pre.parent
            case_id = "-".join(case_dir.relative_to(root).parts)
            files = {name: p for name, path in (("flair", pre / "FLAIR"), ("t1", pre / "T1"), (LABEL, case_dir / "wmh"))
                     if (p := find_nifti(path.parent, path.name))}
            if files:
                cases.append(Case(case_id, case_dir, self.name, files,
                                  expected={"flair": "pre/FLAIR.nii.gz", "t1": "pre/T1.nii.gz", LABEL: "wmh.nii.gz"}))
        return cases

    def open(self, root: Path) -> Dataset:
        cases = self._found(root)
        labels = Labels({0: "background", 1: "white-matter hyperintensity", 2: "other pathology"},
                        frozenset({0, 1, 2}), anomalous=frozenset({1}), ignored=frozenset({2}))
        return Dataset(root, self.name, cases, present_modalities(cases), labels, skull_stripped=False)


def _isles_order(modalities: tuple[str, ...]) -> tuple[str, ...]:
    """DWI, ADC, FLAIR: DWI's grid (that of the lesion mask) is the reference the others are put onto."""
    return tuple(m for m in ("dwi", "adc", "flair") if m in modalities)


class Isles22(_ScannedLayout):
    """ISLES'22 (stroke), BIDS: ``rawdata/sub-*/ses-*/[dwi/|anat/]..._{dwi,adc,flair}.nii.gz`` and
    ``derivatives/sub-*/ses-*/..._msk.nii.gz`` (on the DWI grid; FLAIR has its own grid)."""

    name = "isles22"
    naming = "rawdata/sub-*/ses-*/sub-*_ses-*_{dwi,adc,flair}.nii.gz + derivatives/sub-*/ses-*/sub-*_ses-*_msk.nii.gz"
    space = "native: DWI/ADC 2 mm with the mask on their grid, FLAIR on its own grid; not skull-stripped"
    _SUFFIX = {"dwi": "dwi", "adc": "adc", "flair": "flair"}

    def _cases(self, root: Path) -> list[Case]:
        cases = []
        for ses in sorted((root / "rawdata").glob("sub-*/ses-*")) if (root / "rawdata").is_dir() else []:
            stem = f"{ses.parent.name}_{ses.name}"
            files: dict[str, Path] = {}
            for folder in (ses, ses / "dwi", ses / "anat"):
                for modality, suffix in self._SUFFIX.items():
                    for spelled in (suffix, suffix.upper()):
                        if modality not in files and (p := find_nifti(folder, f"{stem}_{spelled}")):
                            files[modality] = p
            mask_dir = root / "derivatives" / ses.parent.name / ses.name
            if mask := find_nifti(mask_dir, f"{stem}_msk"):
                files[LABEL] = mask
            if files:
                expected = {m: f"{stem}_{s}.nii.gz" for m, s in self._SUFFIX.items()} | {LABEL: f"{stem}_msk.nii.gz"}
                cases.append(Case(stem, ses, self.name, files, expected=expected))
        return cases

    def open(self, root: Path) -> Dataset:
        cases = self._found(root)
        return Dataset(root, self.name, cases, _isles_order(present_modalities(cases)), Labels(_LESION, frozenset({0, 1})),
                       same_grid=False, skull_stripped=False)
