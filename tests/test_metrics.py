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


def test_single_pixel_boundaries() -> None:
    """A score equal to the threshold is not anomalous; one-pixel predictions and truths are ordinary ratios."""
    maps = np.zeros((3, 4, 4))
    maps[:, 1, 1] = 1.0
    seg = np.zeros((3, 4, 4), bool)
    seg[0, 1, 1] = True  # slice 0: one predicted pixel, the right one
    seg[1, 2, 2] = True  # slice 1: one predicted pixel, one tumour pixel elsewhere
    values, counts = segmentation_metrics(maps, seg, np.ones_like(seg), threshold=0.5)
    assert {m: v[0] for m, v in values.items()} == {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0,
                                                     "assd": 0.0}
    assert [values[m][1] for m in ("dice", "jaccard", "precision", "recall")] == [0.0] * 4
    assert counts == {"both_empty": 0, "empty_prediction": 0, "empty_truth": 1, "assd_both_empty": 0,
                      "assd_one_empty_penalty": 1}
    assert not segmentation_metrics(maps, seg, np.ones_like(seg), threshold=1.0)[0]["recall"][0]  # 1.0 > 1.0 is false


def test_overlap_counts_are_per_rule() -> None:
    """tp == fp, tp == fn and fp == fn on non-empty slices must not be mistaken for empty ones."""
    pred = np.zeros((3, 4, 4), bool)
    truth = np.zeros((3, 4, 4), bool)
    pred[0, 0, :2] = True  # tp 1, fp 1
    truth[0, 0, 0] = True
    pred[1, 0, 0] = True  # tp 1, fn 1
    truth[1, 0, :2] = True
    pred[2, 0, 0] = True  # tp 0, fp 1, fn 1
    truth[2, 3, 3] = True
    _, counts = overlap(pred, truth)
    assert counts == {"both_empty": 0, "empty_prediction": 0, "empty_truth": 0}


def test_ranking_metrics_need_both_classes_and_no_more() -> None:
    maps = np.random.default_rng(5).random((2, 4, 4))
    seg = np.zeros((2, 4, 4), bool)
    seg[0, 0, 0] = True  # a single tumour pixel: defined
    seg[1] = True
    seg[1, 3, 3] = False  # a single healthy pixel: defined
    values, counts = ranking_metrics(maps, seg, np.ones_like(seg))
    assert np.isfinite(values["auroc"]).all() and np.isfinite(values["auprc"]).all()
    assert counts == {"auroc_one_class": 0, "auprc_one_class": 0, "auroc_image_official_one_class": 0}
    assert np.isfinite(list(pooled_ranking_metrics(maps[:1], seg[:1], np.ones_like(seg[:1])).values())).all()
    everything = pooled_ranking_metrics(maps, np.ones_like(seg), np.ones_like(seg))
    assert set(everything) == {"auroc_pooled", "auprc_pooled"} and np.isnan(list(everything.values())).all()


def test_summary_edge_cases_and_the_bootstrap_rule() -> None:
    values = np.random.default_rng(6).random(12)
    assert summarize(values) == summarize(values, n_bootstrap=1000, seed=0)  # the documented defaults
    # percentile bootstrap: 2.5th and 97.5th percentiles of the means of n-out-of-n resamples
    idx = np.random.default_rng(3).integers(0, 12, size=(500, 12))
    low, high = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    s = summarize(values, n_bootstrap=500, seed=3)
    assert (s.ci_low, s.ci_high) == (low, high)
    one = summarize(np.array([0.25]), n_bootstrap=10)
    assert (one.mean, one.n, one.ci_low, one.ci_high) == (0.25, 1, 0.25, 0.25) and np.isnan(one.std)
    two = summarize(np.array([0.0, 1.0]), n_bootstrap=10)
    assert two.std == pytest.approx(np.sqrt(0.5))
    no_ci = summarize(values, n_bootstrap=0)
    assert np.isnan(no_ci.ci_low) and np.isnan(no_ci.ci_high) and no_ci.mean == values.mean()
    single_bootstrap = summarize(values, n_bootstrap=1, seed=0)
    assert single_bootstrap.ci_low == single_bootstrap.ci_high and np.isfinite(single_bootstrap.ci_low)
    nothing = summarize(np.array([np.nan, np.nan]))
    assert (nothing.n, nothing.n_excluded) == (0, 2) and all(np.isnan([nothing.mean, nothing.std, nothing.ci_low]))


def test_assd_borders_are_four_connected() -> None:
    """Disks have diagonal edges, where 4- and 8-connected borders differ: the official connectivity is 1 (4)."""
    yy, xx = np.mgrid[:21, :21]
    a = (yy - 10) ** 2 + (xx - 9) ** 2 < 6**2
    b = (yy - 11) ** 2 + (xx - 12) ** 2 < 5**2
    value, rule = assd(a, b)
    assert rule is None and np.isclose(value, _brute_assd(a, b))
