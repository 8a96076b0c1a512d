"""``uasbench data inspect``: what a dataset folder holds, read through its layout or card, and what preparation
will do to it. Shallow by default (headers and label files); ``deep`` reads every voxel (finds NaNs, truncated
data).

Skull stripping is judged by a stated heuristic on the first modality of each checked case: a scan *looks
skull-stripped* when at least ``STRIPPED_ZERO_FRACTION`` of its voxels are exactly zero and its outermost
voxel layer (the six faces of the volume) is all zero. A head scan keeps non-zero noise or tissue at its
border and few exact zeros; a brain extracted and embedded in a zero background has both. It can be fooled
both ways: a brain that touches the edge of the field of view (the phantom's top slice) looks unstripped, and
a head scan whose background was set to zero and that stops short of the field of view's edge looks stripped;
so it is shown beside what the layout documents. Shallow mode
judges the first ``STRIPPED_SAMPLE`` cases only (one image read each); deep mode judges all.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from uasbench.data.layouts import open_dataset
from uasbench.data.layouts.base import (
    AFFINE_ATOL, BRAIN, LABEL, BadCaseError, Case, Dataset, check_geometry, open_file, read_case, read_data,
    read_labels, require,
)
from uasbench.data.spatial import SpatialStandard, plan

STRIPPED_ZERO_FRACTION = 0.3
STRIPPED_SAMPLE = 3


def looks_skull_stripped(volume: np.ndarray) -> bool:
    """The module docstring's heuristic: enough exact zeros and an all-zero outer layer."""
    v = np.asarray(volume)
    faces = (v[0], v[-1], v[:, 0], v[:, -1], v[:, :, 0], v[:, :, -1])
    return float((v == 0).mean()) >= STRIPPED_ZERO_FRACTION and not any(np.any(f) for f in faces)


@dataclass
class _Facts:
    shapes: Counter = field(default_factory=Counter)
    orientations: Counter = field(default_factory=Counter)
    spacings: Counter = field(default_factory=Counter)
    plans: Counter = field(default_factory=Counter)
    grids: list = field(default_factory=list)  # (shape, affine) of every image file
    labels: set = field(default_factory=set)
    healthy: int = 0
    stripped: list = field(default_factory=list)  # one bool per judged case


@dataclass(frozen=True)
class InspectionReport:
    """What ``uasbench data inspect`` prints: a summary of a data folder and the problems found in it."""

    root: Path
    dataset: Dataset
    modalities: dict[str, int]  # name (modalities, seg, brainmask) -> number of cases that have it
    shapes: dict[tuple[int, ...], int]  # image grid sizes -> number of image files
    orientations: dict[str, int]
    spacings: dict[tuple[float, ...], int]
    one_space: bool  # every image file of every checked case on one grid
    labels: tuple[int, ...]  # union over cases, after the layout's remapping
    healthy: int  # checked cases without an anomalous voxel
    stripped: tuple[int, int]  # (cases that look skull-stripped, cases judged)
    plans: dict[str, int]  # what preparation does -> number of cases
    problems: dict[str, str]  # case -> one-line problem
    deep: bool

    @property
    def cases(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.dataset.cases)

    def rows(self) -> list[tuple[str, str]]:
        d, n = self.dataset, len(self.cases)
        good = n - len(self.problems)
        count = lambda c: ", ".join(f"{_show(k)} ({v})" for k, v in sorted(c.items()))  # noqa: E731
        labels = "none: every case is healthy" if d.labels is None else \
            f"{', '.join(map(str, self.labels)) or '-'} ({d.labels.describe()})"
        documented = "skull-stripped" if d.skull_stripped else "not skull-stripped"
        judged = f"{self.stripped[0]} of {self.stripped[1]} judged cases look skull-stripped" if self.stripped[1] \
            else "no case judged"
        return [
            ("folder", str(d.root)),
            ("layout", d.layout + (f" ({d.name}, card digest {d.card})" if d.card else "")),
            ("cases", str(n)),
            ("modalities", ", ".join(f"{m} ({c}/{n})" for m, c in self.modalities.items())),
            ("labels", labels),
            ("healthy", f"{self.healthy} of {good} readable cases have no anomalous voxel"),
            ("orientation", count(self.orientations) or "-"),
            ("spacing", count(self.spacings) or "-"),
            ("shapes", count(self.shapes) or "-"),
            ("one space", "yes: every scan on one grid" if self.one_space else "no: scans on different grids"),
            ("brain mask", "brain-mask files" if d.brain_mask == "file" else "non-zero voxels of each image"),
            ("skull", f"{documented} (layout); {judged} (heuristic)"),
            ("preparation", "; ".join(f"{p} ({c})" for p, c in sorted(self.plans.items())) or "-"),
            ("checked", "all voxels" if self.deep else "headers and labels"),
            ("problems", str(len(self.problems))),
        ]

    def to_text(self) -> str:
        lines = [f"{key:<12} {value}" for key, value in self.rows()]
        lines += [f"  {case}: {problem}" for case, problem in sorted(self.problems.items())]
        return "\n".join(lines)

    def rich_table(self):  # -> rich.table.Table
        """The same content as ``to_text`` as a rich table, problems listed below the summary."""
        from rich.table import Table

        table = Table(title=f"dataset: {self.root}", show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in self.rows():
            table.add_row(key, value)
        for case, problem in sorted(self.problems.items()):
            table.add_row(f"[red]{case}[/red]", problem.removeprefix(f"case {case}: "))
        return table


def _show(key: object) -> str:
    if isinstance(key, tuple):
        return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in key)
    return str(key)


def _check(dataset: Dataset, case: Case, deep: bool, judge: bool, standard: SpatialStandard, facts: _Facts) -> None:
    """Validate one case (headers and labels, or every voxel) and add what it shows to ``facts``."""
    names = (*dataset.modalities, *(() if dataset.labels is None else (LABEL,)),
             *((BRAIN,) if dataset.brain_mask == "file" else ()))
    require(case, names)
    headers = {name: open_file(case, name) for name in names}
    if dataset.same_grid:
        check_geometry(case, headers)
    seg = None
    first = None
    if deep:
        vols = read_case(dataset, case)
        seg, first = vols.seg, next(iter(vols.images.values()))
    elif dataset.labels is not None:
        seg = read_labels(case, dataset.labels, read_data(case, LABEL, headers[LABEL]))
    if judge and first is None:
        first = read_data(case, dataset.modalities[0], headers[dataset.modalities[0]])
    images = {m: headers[m] for m in dataset.modalities}
    if not case.channels:
        facts.plans["; ".join(plan(images, standard))] += 1
    else:  # a 4-D file: every channel shares its grid (a lazy channel: no voxel is read)
        facts.plans["; ".join(plan({"image": next(iter(images.values())).slicer[..., 0]}, standard))] += 1
    for img in images.values():
        facts.shapes[tuple(int(v) for v in img.shape[:3])] += 1
        facts.orientations["".join(nib.aff2axcodes(img.affine))] += 1
        facts.spacings[tuple(round(float(v), 2) for v in img.header.get_zooms()[:3])] += 1
        facts.grids.append((tuple(img.shape[:3]), np.asarray(img.affine)))
    if seg is None or not dataset.labels.anomaly(seg).any():
        facts.healthy += 1
    if seg is not None:
        facts.labels |= set(np.unique(seg).tolist())
    if first is not None:
        facts.stripped.append(looks_skull_stripped(first))


def inspect_dataset(root: Path, deep: bool = False, *, layout: str | None = None, card: Path | None = None,
                    standard: SpatialStandard = SpatialStandard()) -> InspectionReport:
    """Summarise a data folder read through its layout or card; ``deep`` reads every voxel."""
    dataset = open_dataset(Path(root), layout, card)
    facts = _Facts()
    problems: dict[str, str] = {}
    for i, case in enumerate(dataset.cases):
        try:
            _check(dataset, case, deep, deep or i < STRIPPED_SAMPLE, standard, facts)
        except BadCaseError as exc:
            problems[case.id] = str(exc)
    names = (*dataset.modalities, LABEL, BRAIN)
    modalities = {m: sum(m in c.files for c in dataset.cases) for m in names}
    modalities = {m: c for m, c in modalities.items() if c or m in dataset.modalities or
                  (m == LABEL and dataset.labels is not None)}
    ref = facts.grids[0] if facts.grids else None
    one_space = ref is not None and all(s == ref[0] and np.allclose(a, ref[1], atol=AFFINE_ATOL)
                                        for s, a in facts.grids)
    return InspectionReport(
        root=Path(root), dataset=dataset, modalities=modalities, shapes=dict(facts.shapes),
        orientations=dict(facts.orientations), spacings=dict(facts.spacings), one_space=one_space,
        labels=tuple(sorted(facts.labels)), healthy=facts.healthy,
        stripped=(sum(facts.stripped), len(facts.stripped)), plans=dict(facts.plans), problems=problems, deep=deep,
    )
