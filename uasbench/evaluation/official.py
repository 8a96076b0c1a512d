"""The official MMCCD evaluation (``modality_cyclic_sample.py`` of github ZiyunLiang/MMCCD), recomputed from
stored maps so that our numbers can be set beside published ones.

It is a TEST-SET (ORACLE) protocol: its threshold is the one that maximises Dice on the very slices it
is then reported on, so its figures are upper bounds, never fair results. Exactly as the official code:

1. the raw maps are min-max normalised once over all test slices and all pixels, background included;
2. a prediction is restricted to the T2 brain mask and its erosion by ``disk(4)`` (skimage-style, see
   ``postprocess.erode``), whatever the input modality (the official preprocessing stores the brain
   mask of the first modality of its list, T2);
3. the thresholds are k/1000 for k = 0..99, a pixel is anomalous when strictly above;
4. Dice per slice against the unrestricted ground truth, averaged over slices; the first maximum wins;
5. at that threshold, per slice: ASSD (mean of the two directed mean surface distances, pixels,
   connectivity 1), recall and precision (0 on an empty denominator, like its medpy copies), Jaccard,
   and AUROC of the normalised map times the eroded mask over all H*W pixels (background scores 0).

The official ASSD raises on an empty prediction; here such slices are named in ``empty_predictions``
and left out of the ASSD mean (their Dice, Jaccard, recall and precision are 0 and stay in). The
official code has one test slice per subject, as our test sets do, so its slice means are our subject
means.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.evaluation.metrics import image_auroc, overlap, subject_means, summarize
from uasbench.evaluation.postprocess import erode
from uasbench.evaluation.surface import assd
from uasbench.evaluation.thresholds import dice_curve

PROTOCOL = "mmccd-official"
KEY = "mmccd_official"  # the threshold key its metrics are stored under
GRID = np.arange(100) / 1000.0
EROSION_RADIUS = 4
METRICS = ("dice", "jaccard", "precision", "recall", "assd", "auroc")
NOTE = ("ORACLE, the official MMCCD evaluation: maps min-max normalised over the test set, prediction inside "
        "the T2 brain mask eroded by disk(4), threshold k/1000 (k < 100) maximising mean Dice ON THE TEST "
        "SET; an upper bound for comparison with published numbers, not a fair result.")


@dataclass(frozen=True)
class OfficialResult:
    """Per-slice values at the test-optimal grid threshold, the Dice curve and the empty predictions."""

    threshold: float
    dice_curve: np.ndarray  # mean Dice at each of GRID
    per_slice: dict[str, np.ndarray]
    subjects: tuple[str, ...]
    z: np.ndarray
    empty_predictions: list[str]  # "subject z=Z" of each slice whose prediction is empty

    def means(self) -> dict[str, float]:
        """The official figures: plain means over slices (ASSD over non-empty predictions)."""
        return {m: float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
                for m, v in self.per_slice.items()}

    def to_dict(self, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
        """The layout of ``metrics.json`` (under the key ``mmccd_official``), plus the curve and the names."""
        names: list[str] = []
        per_subject: dict[str, list[float]] = {}
        summaries: dict[str, Any] = {}
        for metric, values in self.per_slice.items():
            names, subj = subject_means(values, self.subjects)
            per_subject[metric] = [None if np.isnan(v) else float(v) for v in subj]
            summaries[metric] = {k: (None if isinstance(v, float) and np.isnan(v) else v)
                                 for k, v in summarize(subj, n_bootstrap, seed).to_dict().items()}
        return {
            "protocol": PROTOCOL, "upper_bound": True, "note": NOTE,
            "thresholds": {KEY: {"name": KEY, "value": self.threshold, "source": "test", "upper_bound": True,
                                 "reason": ""}},
            "metrics": {KEY: summaries}, "per_subject": {KEY: per_subject}, "subjects": names,
            "counts": {KEY: {"empty_prediction": len(self.empty_predictions)}},
            "empty_predictions": self.empty_predictions,
            "dice_curve": {"thresholds": GRID.tolist(), "mean_dice": self.dice_curve.tolist()},
        }


def normalise(maps: np.ndarray) -> np.ndarray:
    """Min-max over the whole stack at once (all slices, all pixels), as the official ``normalize``."""
    maps = np.asarray(maps, dtype=np.float64)
    low, high = float(maps.min()), float(maps.max())
    if not np.isfinite(low) or not np.isfinite(high) or high == low:
        raise UasbenchError("the official evaluation needs finite, non-constant test maps to min-max normalise")
    return (maps - low) / (high - low)


def evaluate_official(test_maps: np.ndarray, seg: np.ndarray, brain_t2: np.ndarray,
                      subjects: tuple[str, ...], z: np.ndarray) -> OfficialResult:
    """Run the official protocol on raw test maps (N, H, W) with their truth and T2 brain masks."""
    seg = np.asarray(seg, dtype=bool)
    brain_t2 = np.asarray(brain_t2, dtype=bool)
    if len(seg) == 0:
        raise UasbenchError("the test set is empty: nothing to evaluate")
    if np.shape(test_maps) != seg.shape or brain_t2.shape != seg.shape:
        raise UasbenchError(f"test maps {np.shape(test_maps)}, tumour masks {seg.shape} and T2 brain masks "
                            f"{brain_t2.shape} must be equal (N,H,W) stacks")
    if not seg.reshape(len(seg), -1).any(axis=1).all():
        raise UasbenchError("the official evaluation needs tumour on every test slice (its slice selection "
                            "guarantees it); a test slice has none")
    maps = normalise(test_maps)
    mask = brain_t2 & erode(brain_t2, EROSION_RADIUS)
    curve = dice_curve(maps, seg, mask, GRID)
    threshold = float(GRID[int(np.argmax(curve))])

    pred = (maps > threshold) & mask
    values, _ = overlap(pred, seg)
    empty = ~pred.reshape(len(pred), -1).any(axis=1)
    values["assd"] = np.array([np.nan if e else assd(p, t)[0] for p, t, e in zip(pred, seg, empty)])
    values["auroc"] = image_auroc(maps * mask, seg)[0]
    return OfficialResult(
        threshold=threshold, dice_curve=curve, per_slice={m: values[m] for m in METRICS},
        subjects=tuple(subjects), z=np.asarray(z),
        empty_predictions=[f"{s} z={int(k)}" for s, k, e in zip(subjects, z, empty) if e])


def evaluate_official_run(test_maps: np.ndarray, test: SliceSet, pair: str, seed: int, where: str) -> dict[str, Any]:
    """The official evaluation of one run's stored test maps, in ``metrics.json``'s layout.

    Runs made before the T2 brain mask was stored can only be evaluated when their input is T2 (then the stored
    mask is the T2 one); any other is a one-line error (naming ``where``) asking for a rerun.
    """
    brain_t2 = test.brain_t2
    if brain_t2 is None:
        if pair.split("-")[0] != "t2":
            raise UasbenchError(f"{where} holds no T2 brain mask (run made before it was stored), "
                                f"which the {PROTOCOL} protocol needs: rerun it")
        brain_t2 = test.brain
    return evaluate_official(test_maps, test.seg, brain_t2, test.subjects, test.z).to_dict(seed=seed)
