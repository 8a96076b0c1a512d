"""Every metric against an independent computation, the empty-mask rules, subject means and bootstrap CIs."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from uasbench.evaluation.metrics import (
    overlap,
    pooled_ranking_metrics,
    ranking_metrics,
    segmentation_metrics,
    subject_means,
    summarize,
)
from uasbench.evaluation.surface import assd
from uasbench.evaluation.thresholds import dice_curve


def _random_masks(seed: int, n: int = 6, size: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size)) < 0.3, rng.random((n, size, size)) < 0.3


def test_overlap_matches_confusion_matrix() -> None:
    pred, truth = _random_masks(0)
    values, counts = overlap(pred, truth)
    for i in range(len(pred)):
        tn, fp, fn, tp = confusion_matrix(truth[i].ravel(), pred[i].ravel(), labels=[0, 1]).ravel()
        assert np.isclose(values["dice"][i], 2 * tp / (2 * tp + fp + fn))
        assert np.isclose(values["jaccard"][i], tp / (tp + fp + fn))
        assert np.isclose(values["precision"][i], tp / (tp + fp))
        assert np.isclose(values["recall"][i], tp / (tp + fn))
    assert counts == {"both_empty": 0, "empty_prediction": 0, "empty_truth": 0}


def test_overlap_empty_rules() -> None:
    empty = np.zeros((1, 4, 4), bool)
    full = np.ones((1, 4, 4), bool)
    both, counts = overlap(empty, empty)
    assert all(v[0] == 1.0 for v in both.values()) and counts["both_empty"] == 1
    miss, counts = overlap(empty, full)
    assert miss["dice"][0] == miss["precision"][0] == miss["recall"][0] == 0.0
    assert counts == {"both_empty": 0, "empty_prediction": 1, "empty_truth": 0}


def _border(mask: np.ndarray) -> list[tuple[int, int]]:
    """Pixels of the mask with a 4-neighbour outside it (the image edge counts as outside)."""
    padded = np.pad(mask, 1)
    points = []
    for r, c in zip(*np.nonzero(mask)):
        neighbours = [padded[r, c + 1], padded[r + 2, c + 1], padded[r + 1, c], padded[r + 1, c + 2]]
        if not all(neighbours):
            points.append((r, c))
    return points


def _brute_assd(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = np.array(_border(a), float), np.array(_border(b), float)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return (d.min(axis=1).mean() + d.min(axis=0).mean()) / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_assd_matches_brute_force(seed: int) -> None:
    pred, truth = _random_masks(seed, n=1, size=9)
    value, rule = assd(pred[0], truth[0])
    assert rule is None
    assert np.isclose(value, _brute_assd(pred[0], truth[0]))


def test_assd_shifted_square() -> None:
    a = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    assert assd(a, a) == (0.0, None)
    assert np.isclose(assd(a, np.roll(a, 3, axis=1))[0], _brute_assd(a, np.roll(a, 3, axis=1)))


def test_assd_empty_rules() -> None:
    empty = np.zeros((12, 16), bool)
    blob = empty.copy()
    blob[2:5, 2:5] = True
    assert assd(empty, empty) == (0.0, "both_empty")
    assert assd(blob, empty) == (20.0, "one_empty_penalty")  # diagonal of 12x16
    assert assd(empty, blob) == (20.0, "one_empty_penalty")


def test_segmentation_metrics_counts_penalties() -> None:
    maps = np.zeros((2, 8, 8))
    seg = np.zeros((2, 8, 8), bool)
    seg[:, 2:4, 2:4] = True
    maps[1][seg[1]] = 5.0  # slice 0: nothing detected; slice 1: perfect
    values, counts = segmentation_metrics(maps, seg, np.ones_like(seg), threshold=1.0)
    assert values["dice"].tolist() == [0.0, 1.0]
    assert values["assd"].tolist() == [pytest.approx(np.hypot(8, 8)), 0.0]
    assert counts["assd_one_empty_penalty"] == 1 and counts["empty_prediction"] == 1


def _mann_whitney_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


def _stepwise_ap(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision: sum over distinct thresholds of (recall step) x precision."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(s)[::-1]:
        pred = s >= t
        recall = (pred & y).sum() / y.sum()
        ap += (recall - prev_recall) * (pred & y).sum() / pred.sum()
        prev_recall = recall
    return ap


def test_ranking_metrics_match_independent_formulas() -> None:
    rng = np.random.default_rng(3)
    seg = rng.random((3, 8, 8)) < 0.2
    maps = np.round(rng.normal(size=seg.shape) + seg, 1)  # rounding creates ties
    mask = np.zeros_like(seg)
    mask[:, 1:7, 1:7] = True
    seg[2] = False  # a slice with a single class
    values, counts = ranking_metrics(maps, seg, mask)
    for i in range(2):
        # tumour outside the mask stays in, ranked below every in-mask pixel (a certain miss)
        keep = mask[i] | seg[i]
        y, s = seg[i][keep], np.where(mask[i], maps[i], -np.inf)[keep]
        assert np.isclose(values["auroc"][i], _mann_whitney_auc(y, s))
        assert np.isclose(values["auprc"][i], _stepwise_ap(y, s))
        assert np.isclose(values["auroc_image_official"][i], _mann_whitney_auc(seg[i].ravel(), maps[i].ravel()))
    assert np.isnan(values["auroc"][2]) and counts["auroc_one_class"] == 1 and counts["auprc_one_class"] == 1
    pooled = pooled_ranking_metrics(maps, seg, mask)
    keep = mask | seg
    y, s = seg[keep], np.where(mask, maps, -np.inf)[keep]
    assert np.isclose(pooled["auroc_pooled"], _mann_whitney_auc(y, s))
    assert np.isclose(pooled["auprc_pooled"], _stepwise_ap(y, s))


def test_tumour_outside_the_evaluation_mask_counts_as_missed() -> None:
    """A 2x4 tumour, half of it in the eroded rim: a perfect in-mask detection finds 4 of 8 pixels."""
    seg = np.zeros((1, 8, 8), bool)
    seg[0, 3:5, 0:4] = True
    mask = np.zeros_like(seg)
    mask[0, :, 2:] = True
    maps = seg.astype(float)
    values, counts = segmentation_metrics(maps, seg, mask, threshold=0.5)
    assert values["recall"].tolist() == [0.5] and values["precision"].tolist() == [1.0]
    assert values["dice"].tolist() == [pytest.approx(2 * 4 / (4 + 8))]
    assert dice_curve(maps, seg, mask, np.array([0.5]))[0] == pytest.approx(2 * 4 / (4 + 8))
    ranked, _ = ranking_metrics(maps, seg, mask)
    assert ranked["auroc"][0] < 1.0  # the rim half is ranked below all healthy in-mask pixels


def test_subject_means_average_slices_first() -> None:
    names, values = subject_means(np.array([1.0, 3.0, 10.0, np.nan]), ("b", "b", "a", "c"))
    assert names == ["a", "b", "c"]
    assert values[:2].tolist() == [10.0, 2.0] and np.isnan(values[2])


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    values = np.random.default_rng(4).random(30)
    values[0] = np.nan
    s = summarize(values, n_bootstrap=1000, seed=7)
    assert s.n == 29 and s.n_excluded == 1
    assert np.isclose(s.mean, np.nanmean(values)) and np.isclose(s.std, np.nanstd(values, ddof=1))
    assert s.ci_low < s.mean < s.ci_high
    assert s == summarize(values, n_bootstrap=1000, seed=7)
    assert s != summarize(values, n_bootstrap=1000, seed=8)


def test_summary_of_nothing_is_nan() -> None:
    s = summarize(np.array([np.nan]))
    assert s.n == 0 and s.n_excluded == 1 and np.isnan(s.mean)
