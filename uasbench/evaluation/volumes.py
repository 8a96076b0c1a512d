"""Volume-level evaluation pieces: a subject's scored slices stacked back into 3-D, and its metrics.

A volume holds every axial position from its first to its last scored slice; positions that were not
scored (gaps) are empty slices (no brain, no truth), so they take part in no metric and a 3-D connected
component never bridges them. ``ignore`` marks voxels that are neither anomalous nor normal (e.g. the
WMH challenge's label 2, other pathology): they are removed from the evaluation mask and from the truth,
so no metric, no threshold search and no lesion count sees them.

Per volume, like the per-slice metrics of ``metrics``: Dice, Jaccard, precision and recall over all its
scored voxels at once (3-D, not a mean of slices; same empty-mask rules as ``metrics.overlap``), and
AUROC/AUPRC over its evaluation-mask voxels with truth outside the mask ranked last
(``metrics._ranked_pixels``). A pixel is anomalous when its score is strictly above the threshold.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from uasbench.errors import UasbenchError
from uasbench.evaluation.lesions import LesionRule, components
from uasbench.evaluation.metrics import _ranked_pixels, overlap, segment
from uasbench.evaluation.postprocess import (
    PostProcess,
    apply_postprocess,
    median_filter_3d,
    remove_small_components,
)

VOLUME_METRICS = ("dice", "jaccard", "precision", "recall")
VOLUME_RANKING = ("auroc", "auprc")


@dataclass(frozen=True)
class Volume:
    """One subject's slices on consecutive axial positions ``z`` (``scored`` False in a gap)."""

    subject: str
    z: np.ndarray  # (D,) consecutive axial positions
    scored: np.ndarray  # (D,) bool
    maps: np.ndarray  # (D, H, W) float64, 0 in gaps
    brain: np.ndarray  # (D, H, W) bool
    truth: np.ndarray  # (D, H, W) bool, already without ``ignore``
    ignore: np.ndarray  # (D, H, W) bool

    @property
    def lesion_voxels(self) -> int:
        return int(self.truth.sum())


def stack_volumes(maps: np.ndarray, brain: np.ndarray, subjects: Sequence[str], z: np.ndarray,
                  truth: np.ndarray | None = None, ignore: np.ndarray | None = None) -> list[Volume]:
    """Stack (N, H, W) slices into one volume per subject (subjects sorted, slices ordered by ``z``).

    ``truth`` None means no lesion anywhere (a healthy set); a subject with two slices at one ``z`` is
    an error, not a silent overwrite.
    """
    maps = np.asarray(maps, dtype=np.float64)
    n = len(maps)
    brain = np.asarray(brain, dtype=bool)
    truth = np.zeros_like(brain) if truth is None else np.asarray(truth, dtype=bool)
    ignore = np.zeros_like(brain) if ignore is None else np.asarray(ignore, dtype=bool)
    z = np.asarray(z, dtype=int)
    for name, arr in (("brain", brain), ("truth", truth), ("ignore", ignore)):
        if arr.shape != maps.shape:
            raise UasbenchError(f"{name} has shape {arr.shape}, the score maps {maps.shape}")
    if len(z) != n or len(subjects) != n:
        raise UasbenchError(f"{len(z)} axial positions and {len(subjects)} subjects for {n} slices")
    labels = np.asarray(subjects)
    out = []
    for subject in sorted(set(subjects)):
        idx = np.flatnonzero(labels == subject)
        idx = idx[np.argsort(z[idx], kind="stable")]
        zs = z[idx]
        same = np.flatnonzero(np.diff(zs) == 0)
        if same.size:
            raise UasbenchError(f"subject {subject!r} has two slices at one axial position z={zs[same[0]]}")
        pos = zs - zs[0]
        depth = int(pos[-1]) + 1

        def dense(a: np.ndarray, fill: float | bool) -> np.ndarray:
            full = np.full((depth, *a.shape[1:]), fill, dtype=a.dtype)
            full[pos] = a[idx]
            return full

        scored = np.zeros(depth, bool)
        scored[pos] = True
        out.append(Volume(subject, np.arange(zs[0], zs[0] + depth), scored, dense(maps, 0.0), dense(brain, False),
                          dense(truth & ~ignore, False), dense(ignore, False)))
    return out


def postprocess_volume(volume: Volume, post: PostProcess) -> tuple[np.ndarray, np.ndarray]:
    """The volume's maps after post-processing and its evaluation mask (without ``ignore`` and gaps).

    The 3-D median runs first, over each run of consecutive scored slices; then the per-slice steps of
    ``apply_postprocess`` (2-D median, brain mask and erosion, background floor), as for slices.
    """
    s = volume.scored
    maps = volume.maps.copy()
    mask = np.zeros_like(volume.brain)
    if s.any():
        scored = median_filter_3d(volume.maps[s], volume.z[s], post.median_3d)
        maps[s], mask[s] = apply_postprocess(scored, volume.brain[s], post)
    return maps, mask & ~volume.ignore


def segment_volume(maps: np.ndarray, mask: np.ndarray, threshold: float, post: PostProcess,
                   rule: LesionRule) -> np.ndarray:
    """Voxels scoring strictly above ``threshold`` inside ``mask``, components under the minimum size removed."""
    return remove_small_components(segment(maps, mask, threshold), post.min_component_voxels, rule.structure)


def volume_overlap(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice, Jaccard, precision and recall of one 3-D prediction, all voxels at once."""
    values, _ = overlap(pred.reshape(1, len(pred), -1), truth.reshape(1, len(truth), -1))
    return {k: float(v[0]) for k, v in values.items()}


def volume_ranking(maps: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC over the volume's mask voxels (truth outside the mask ranked last); NaN when the
    volume has one class only."""
    y, s = _ranked_pixels(maps, truth, mask)
    if not 0 < y.sum() < y.size:
        return {"auroc": float("nan"), "auprc": float("nan")}
    return {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s))}


def healthy_false_positives(pred: np.ndarray, mask: np.ndarray, rule: LesionRule) -> dict[str, float]:
    """On a scan without lesions: the share of its evaluation-mask voxels marked anomalous, and how many
    connected components (false-positive lesions) they form."""
    n = int(mask.sum())
    return {"fp_voxel_fraction": float(pred[mask].sum() / n) if n else float("nan"),
            "fp_lesions": float(components(pred, rule)[1])}
