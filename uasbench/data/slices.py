"""In-memory slice stacks handed from the data layer to the methods and the evaluation."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SliceSet:
    """Preprocessed 2-D axial slices of one modality pair.

    ``x`` is the input modality X, ``y`` the target modality Y (training only, and only when the method
    asks for it), ``seg`` the whole-tumour mask (label > 0), ``brain`` the brain mask of X.
    ``brain_t2`` is the brain mask of T2, which the official MMCCD evaluation uses whatever the input
    (evaluation only: methods never see it; None for a dataset without T2). ``ignore`` marks pixels whose
    label the dataset says to leave out of scoring (WMH's "other pathology"); None when it has no such label.
    All arrays share the first axis (one entry per slice).
    """

    x: np.ndarray  # (N, H, W) float32
    brain: np.ndarray  # (N, H, W) bool
    subjects: tuple[str, ...]
    z: np.ndarray  # (N,) int, axial index in the original volume
    y: np.ndarray | None = None  # (N, H, W) float32
    seg: np.ndarray | None = None  # (N, H, W) bool
    brain_t2: np.ndarray | None = None  # (N, H, W) bool
    ignore: np.ndarray | None = None  # (N, H, W) bool

    def __post_init__(self) -> None:
        n = len(self.x)
        for name in ("brain", "z", "y", "seg", "brain_t2", "ignore"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"SliceSet.{name} has {len(arr)} entries, x has {n}")
        if len(self.subjects) != n:
            raise ValueError(f"SliceSet.subjects has {len(self.subjects)} entries, x has {n}")

    def __len__(self) -> int:
        return len(self.x)

    def unlabelled(self) -> "SliceSet":
        """What a method may see at test time: the input modality and its brain mask, nothing else."""
        return replace(self, y=None, seg=None, brain_t2=None, ignore=None)

    def subset(self, index: np.ndarray | list[int]) -> "SliceSet":
        idx = np.asarray(index, dtype=int)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return SliceSet(
            x=self.x[idx], brain=self.brain[idx], subjects=tuple(self.subjects[i] for i in idx),
            z=self.z[idx], y=pick(self.y), seg=pick(self.seg), brain_t2=pick(self.brain_t2),
            ignore=pick(self.ignore),
        )


@dataclass(frozen=True)
class BenchmarkData:
    """Everything a benchmark run needs, built once from a dataset, a split file and a protocol.

    ``val`` and ``test`` hold one slice per subject (the largest whole-tumour slice); ``val_healthy``
    holds tumour-free slices of validation subjects, used to calibrate healthy-tissue false-positive
    rates. ``report`` says what was skipped and why.
    """

    train: SliceSet
    val: SliceSet
    val_healthy: SliceSet
    test: SliceSet
    fingerprint: str  # of the data folder and the protocol
    split_path: str
    split_sha256: str
    protocol: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
