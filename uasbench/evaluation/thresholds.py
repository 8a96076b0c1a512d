"""Segmentation thresholds, each with where it came from.

Candidates are 1000 evenly spaced quantiles of the in-mask scores (unique values): a grid that adapts to
each method's score range, so no method is favoured by where fixed steps fall. The official MMCCD code
instead min-max normalises the test maps and tries k/1000 for k = 0..99; ``uasbench.evaluation.official``
reproduces that grid for comparison with published numbers.

``val_dice`` and ``fpr_*`` are chosen by functions that receive only validation arrays; the oracle is
the same Dice search run on the test set and is flagged ``upper_bound``. A pixel is anomalous when its
score is strictly greater than the threshold.

The ``volume_*`` functions are the same rules at volume level: the Dice rule maximises the mean of the
validation volumes' 3-D Dice (each volume weighs the same, whatever its number of slices), the
false-positive rates count the healthy validation scans' evaluation-mask voxels (before any minimum
component size, which only removes voxels), and the oracle is that Dice search on the test volumes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

N_CANDIDATES = 1000  # quantiles of the in-mask scores: the same grid rule for every method
Segmenter = Callable[[np.ndarray, np.ndarray, float], np.ndarray]  # (maps, mask, t) -> segmentation
VolumeTriple = tuple[np.ndarray, np.ndarray, np.ndarray]  # one volume's (maps, truth, mask)
COARSE_STEP = 20  # coarse-to-fine search when each candidate needs a labelling (minimum component size)


@dataclass(frozen=True)
class Threshold:
    """A threshold value, or ``None`` with the reason it is undefined."""

    name: str
    value: float | None
    source: str  # which data chose it: "val", "val_healthy" or "test"
    upper_bound: bool = False
    reason: str = ""

    @property
    def defined(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Threshold":
        return cls(**data)


def candidate_grid(maps: np.ndarray, mask: np.ndarray, n: int = N_CANDIDATES) -> np.ndarray:
    """Unique values of ``n`` evenly spaced quantiles of the in-mask scores."""
    scores = maps[mask]
    if scores.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n)))


def _count_above(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="right")


def dice_curve(maps: np.ndarray, seg: np.ndarray, mask: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Mean per-slice Dice of ``(maps > t) & mask`` against the whole ``seg`` for every candidate ``t``.

    Tumour outside the mask stays in the truth (a certain miss, as in ``metrics.segmentation_metrics``).
    Counting by binary search keeps this O(N * (P log P + K log P)) instead of thresholding K times.
    A slice with empty prediction and empty truth has Dice 1 (same rule as ``metrics.overlap``).
    """
    total = np.zeros(len(thresholds))
    for m, s, b in zip(maps, seg, mask):
        inside = m[b]
        pred = _count_above(np.sort(inside), thresholds)
        tp = _count_above(np.sort(inside[s[b]]), thresholds)
        denom = pred + s.sum()
        total += np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 1.0)
    return total / len(maps)


def dice_optimal(maps: np.ndarray, seg: np.ndarray | None, mask: np.ndarray, *, name: str, source: str,
                 upper_bound: bool = False) -> Threshold:
    """The grid threshold with the highest mean per-slice Dice (lowest one on ties).

    Undefined, with the reason, when there are no slices or no tumour pixels to optimise against.
    """
    if len(maps) == 0:
        return Threshold(name, None, source, upper_bound, f"no {source} slices")
    if seg is None or not np.any(seg & mask):
        return Threshold(name, None, source, upper_bound,
                         f"no tumour pixels in the {source} slices: the Dice-optimal threshold is undefined")
    grid = candidate_grid(maps, mask)
    curve = dice_curve(maps, seg, mask, grid)
    return Threshold(name, float(grid[int(np.argmax(curve))]), source, upper_bound)


def fpr_threshold(healthy_maps: np.ndarray, healthy_mask: np.ndarray, fpr: float, *, name: str) -> Threshold:
    """Smallest healthy score ``t`` such that at most ``fpr`` of the healthy in-mask pixels score > t."""
    scores = np.sort(healthy_maps[healthy_mask])
    if scores.size == 0:
        return Threshold(name, None, "val_healthy", False,
                         "no healthy validation pixels: the false-positive-rate threshold is undefined")
    allowed = int(np.floor(fpr * scores.size))
    return Threshold(name, float(scores[scores.size - 1 - allowed]), "val_healthy")


def validation_thresholds(val_maps: np.ndarray, val_seg: np.ndarray | None, val_mask: np.ndarray,
                          healthy_maps: np.ndarray, healthy_mask: np.ndarray) -> dict[str, Threshold]:
    """The thresholds that may be reported as results; by signature they cannot see test data."""
    return {
        "val_dice": dice_optimal(val_maps, val_seg, val_mask, name="val_dice", source="val"),
        "fpr_1": fpr_threshold(healthy_maps, healthy_mask, 0.01, name="fpr_1"),
        "fpr_5": fpr_threshold(healthy_maps, healthy_mask, 0.05, name="fpr_5"),
    }


def oracle_threshold(test_maps: np.ndarray, test_seg: np.ndarray | None, test_mask: np.ndarray) -> Threshold:
    """Dice-optimal on the test set itself, as the official code and most papers do: an upper bound only."""
    return dice_optimal(test_maps, test_seg, test_mask, name="oracle_test", source="test", upper_bound=True)


def volume_dice_curve(volumes: list[VolumeTriple], thresholds: np.ndarray,
                      segment_fn: Segmenter | None = None) -> np.ndarray:
    """Mean per-volume 3-D Dice for every candidate ``t``; ``volumes`` are (maps, truth, mask) triples.

    Without ``segment_fn`` counting is by binary search, as in ``dice_curve``. ``segment_fn(maps, mask, t)``
    (the minimum component size) changes which voxels survive at each ``t``, so each candidate is then
    thresholded and counted in full: K times the cost of one segmentation per volume.
    """
    total = np.zeros(len(thresholds))
    for maps, truth, mask in volumes:
        if segment_fn is None:
            inside = maps[mask]
            pred = _count_above(np.sort(inside), thresholds)
            tp = _count_above(np.sort(inside[truth[mask]]), thresholds)
        else:
            pred, tp = np.zeros(len(thresholds), int), np.zeros(len(thresholds), int)
            for i, t in enumerate(thresholds):
                seg = segment_fn(maps, mask, t)
                pred[i], tp[i] = seg.sum(), np.sum(seg & truth)
        denom = pred + truth.sum()
        total += np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 1.0)
    return total / len(volumes)


def volume_dice_optimal(volumes: list[VolumeTriple], *, name: str, source: str,
                        upper_bound: bool = False, segment_fn: Segmenter | None = None) -> Threshold:
    """The grid threshold (quantiles of all volumes' mask scores) with the highest mean per-volume Dice
    (lowest one on ties); undefined, with the reason, without volumes or without lesion voxels.

    With ``segment_fn`` every candidate costs a connected-component labelling of every volume (about
    0.05 s for 10^6 voxels), so the search is coarse to fine: every ``COARSE_STEP``-th candidate, then
    every candidate between the neighbours of the best coarse one. It finds the grid optimum whenever the
    mean Dice curve has a single peak at that scale; without ``segment_fn`` the whole grid is searched.
    """
    if not volumes:
        return Threshold(name, None, source, upper_bound, f"no {source} volumes")
    if not any(np.any(truth) for _, truth, _ in volumes):
        return Threshold(name, None, source, upper_bound,
                         f"no lesion voxels in the {source} volumes: the Dice-optimal threshold is undefined")
    scores = np.concatenate([maps[mask] for maps, _, mask in volumes])
    grid = candidate_grid(scores, np.ones(scores.shape, bool))
    if segment_fn is None:
        return Threshold(name, float(grid[int(np.argmax(volume_dice_curve(volumes, grid)))]), source, upper_bound)
    coarse = np.arange(0, len(grid), COARSE_STEP)
    best = int(coarse[np.argmax(volume_dice_curve(volumes, grid[coarse], segment_fn))])
    fine = np.arange(max(best - COARSE_STEP + 1, 0), min(best + COARSE_STEP, len(grid)))
    curve = volume_dice_curve(volumes, grid[fine], segment_fn)
    return Threshold(name, float(grid[int(fine[np.argmax(curve)])]), source, upper_bound)


def volume_validation_thresholds(val: list[VolumeTriple], healthy: list[tuple[np.ndarray, np.ndarray]],
                                 segment_fn: Segmenter | None = None) -> dict[str, Threshold]:
    """The reportable volume-level thresholds, from validation volumes ((maps, truth, mask)) and healthy
    validation scans ((maps, mask)) only: mean per-volume Dice, and 1 % / 5 % of healthy brain voxels."""
    if healthy:
        h_maps = np.concatenate([m[k] for m, k in healthy])
        h_mask = np.ones(h_maps.shape, bool)
    else:
        h_maps, h_mask = np.empty(0), np.empty(0, bool)
    return {
        "val_dice": volume_dice_optimal(val, name="val_dice", source="val", segment_fn=segment_fn),
        "fpr_1": fpr_threshold(h_maps, h_mask, 0.01, name="fpr_1"),
        "fpr_5": fpr_threshold(h_maps, h_mask, 0.05, name="fpr_5"),
    }


def volume_oracle_threshold(test: list[VolumeTriple], segment_fn: Segmenter | None = None) -> Threshold:
    """Mean per-volume Dice optimised on the test volumes themselves: an upper bound only."""
    return volume_dice_optimal(test, name="oracle_test", source="test", upper_bound=True, segment_fn=segment_fn)
