"""Per-slice metrics on the test slices, their per-subject means and bootstrap confidence intervals.

Like the paper and the official code, every metric is computed per slice and then averaged; here the
slices of a subject are averaged first, so a subject with several slices weighs as much as one with a
single slice (the paper protocol has one test slice per subject, where both means coincide).

Tumour outside the evaluation mask counts as missed, never as absent: a segmentation is restricted to
the (possibly eroded) brain mask, the ground truth is not, so a tumour pixel in the eroded rim is a false
negative; the ranking metrics keep such pixels too, scored below every in-mask pixel. The official code
does the same (prediction times the eroded mask, unrestricted ground truth). Restricting the truth as
well would reward an erosion that cuts away hard tumour edges.

Empty-mask rules for the overlap ratios: a ratio whose denominator is zero is 1.0 when prediction and
truth are both empty (perfect agreement on nothing) and 0.0 otherwise (the official code's medpy copies
return 0.0 there too). Every application is counted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from uasbench.evaluation.surface import assd

SEGMENTATION_METRICS = ("dice", "jaccard", "precision", "recall", "assd")
RANKING_METRICS = ("auroc", "auprc", "auroc_image_official")


def segment(maps: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """Binary segmentation: score strictly above the threshold, inside the evaluation mask only."""
    return (maps > threshold) & mask


def _ratio(num: np.ndarray, den: np.ndarray, both_empty: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.maximum(den, 1), np.where(both_empty, 1.0, 0.0))


def overlap(pred: np.ndarray, truth: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Dice, Jaccard, precision and recall per slice of (N,H,W) boolean stacks, plus rule counts."""
    axes = (1, 2)
    tp = np.sum(pred & truth, axis=axes)
    fp = np.sum(pred & ~truth, axis=axes)
    fn = np.sum(~pred & truth, axis=axes)
    both_empty = (tp + fp + fn) == 0
    values = {
        "dice": _ratio(2.0 * tp, 2 * tp + fp + fn, both_empty),
        "jaccard": _ratio(tp.astype(float), tp + fp + fn, both_empty),
        "precision": _ratio(tp.astype(float), tp + fp, both_empty),
        "recall": _ratio(tp.astype(float), tp + fn, both_empty),
    }
    counts = {
        "both_empty": int(both_empty.sum()),
        "empty_prediction": int(np.sum((tp + fp) == 0)),
        "empty_truth": int(np.sum((tp + fn) == 0)),
    }
    return values, counts


def segmentation_metrics(maps: np.ndarray, seg: np.ndarray, mask: np.ndarray,
                         threshold: float) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """All threshold-dependent metrics per slice; only the prediction is restricted to the evaluation mask."""
    pred = segment(maps, mask, threshold)
    truth = np.asarray(seg, dtype=bool)
    values, counts = overlap(pred, truth)
    surface = [assd(p, t) for p, t in zip(pred, truth)]
    values["assd"] = np.array([v for v, _ in surface], dtype=float)
    rules = [r for _, r in surface]
    counts["assd_both_empty"] = rules.count("both_empty")
    counts["assd_one_empty_penalty"] = rules.count("one_empty_penalty")
    return values, counts


def _per_slice_score(fn, labels: list[np.ndarray], scores: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Apply an sklearn ranking metric per slice; slices with a single class give NaN and are counted."""
    out = np.full(len(labels), np.nan)
    for i, (y, s) in enumerate(zip(labels, scores)):
        if 0 < y.sum() < y.size:
            out[i] = fn(y, s)
    return out, int(np.isnan(out).sum())


def _ranked_pixels(maps: np.ndarray, seg: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores a ranking metric sees: the evaluation mask plus every tumour pixel outside it,
    which no threshold can detect, so it is scored below every in-mask pixel (a certain miss)."""
    keep = mask | seg
    floor = maps[mask].min() - 1.0 if mask.any() else 0.0
    return seg[keep], np.where(mask, maps, floor)[keep]


def ranking_metrics(maps: np.ndarray, seg: np.ndarray, mask: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Threshold-free per-slice AUROC and AUPRC inside the mask (tumour outside it ranked last), and the
    official whole-image AUROC.

    ``auroc_image_official`` ranks all H*W pixels, background included (where post-processing put the
    slice's lowest in-mask score), against the full tumour mask, as the official code does; it is
    inflated by the many easy background pixels and is given only for comparison with the paper.
    """
    ranked = [_ranked_pixels(m, s, b) for m, s, b in zip(maps, seg, mask)]
    inside_y = [y for y, _ in ranked]
    inside_s = [s for _, s in ranked]
    auroc, n_auroc = _per_slice_score(roc_auc_score, inside_y, inside_s)
    auprc, n_auprc = _per_slice_score(average_precision_score, inside_y, inside_s)
    image, n_image = image_auroc(maps, seg)
    values = {"auroc": auroc, "auprc": auprc, "auroc_image_official": image}
    counts = {"auroc_one_class": n_auroc, "auprc_one_class": n_auprc, "auroc_image_official_one_class": n_image}
    return values, counts


def image_auroc(maps: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-slice AUROC over all H*W pixels against the full tumour mask (the official code's), and how many
    slices hold one class only (NaN)."""
    return _per_slice_score(roc_auc_score, [s.ravel() for s in seg], [m.ravel() for m in maps])


def pooled_ranking_metrics(maps: np.ndarray, seg: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC over all in-mask pixels of all slices together (pixel-level, not per slice)."""
    y, s = _ranked_pixels(maps, seg, mask)
    if not 0 < y.sum() < y.size:
        return {"auroc_pooled": float("nan"), "auprc_pooled": float("nan")}
    return {"auroc_pooled": float(roc_auc_score(y, s)), "auprc_pooled": float(average_precision_score(y, s))}


def subject_means(values: np.ndarray, subjects: tuple[str, ...] | list[str]) -> tuple[list[str], np.ndarray]:
    """Average the slices of each subject (NaN slices skipped); subjects in sorted order."""
    names = sorted(set(subjects))
    labels = np.asarray(subjects)
    out = np.full(len(names), np.nan)
    for i, name in enumerate(names):
        vals = values[labels == name]
        if np.any(~np.isnan(vals)):
            out[i] = np.nanmean(vals)
    return names, out


@dataclass(frozen=True)
class Summary:
    """Mean over subjects, sample std across subjects, percentile-bootstrap 95% CI of the mean."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int  # subjects with a defined value
    n_excluded: int  # subjects whose value is undefined (NaN), left out of all statistics

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(per_subject: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> Summary:
    """Seeded bootstrap over subjects; the same seed draws the same resamples for every metric."""
    vals = per_subject[~np.isnan(per_subject)]
    n, excluded = len(vals), int(np.isnan(per_subject).sum())
    if n == 0:
        return Summary(*(4 * [float("nan")]), 0, excluded)
    std = float(np.std(vals, ddof=1)) if n > 1 else float("nan")
    if n_bootstrap > 0:
        idx = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
        low, high = np.percentile(vals[idx].mean(axis=1), [2.5, 97.5])
    else:
        low = high = float("nan")
    return Summary(float(vals.mean()), std, float(low), float(high), n, excluded)


def summary_from_dict(data: dict[str, Any]) -> Summary:
    """A Summary read back from JSON, where NaN was written as null."""
    nan = lambda v: float("nan") if v is None else float(v)  # noqa: E731
    return Summary(*(nan(data[k]) for k in ("mean", "std", "ci_low", "ci_high")), int(data["n"]),
                   int(data["n_excluded"]))
