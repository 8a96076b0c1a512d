"""Empty slices everywhere in the evaluation: empty truth, empty prediction, both, and an empty brain mask.

Real validation and test sets have them (a healthy slice, a method that marks nothing); the rule is the
same in the threshold search and in every metric: both empty is perfect agreement, one empty is a miss.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from uasbench.data.slices import SliceSet
from uasbench.evaluation.metrics import overlap, pooled_ranking_metrics, ranking_metrics, segmentation_metrics
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess
from uasbench.evaluation.evaluate import evaluate
from uasbench.evaluation.thresholds import candidate_grid, dice_curve, dice_optimal

SIZE = 8


def _cases() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three slices, each hit by a threshold of 0.5: (0) nothing predicted, no truth; (1) something predicted,
    no truth; (2) nothing predicted, a tumour."""
    maps = np.zeros((3, SIZE, SIZE))
    seg = np.zeros((3, SIZE, SIZE), dtype=bool)
    maps[1, 2:4, 2:4] = 1.0
    seg[2, 5:7, 5:7] = True
    return maps, seg, np.ones_like(seg)


def test_dice_curve_scores_empty_slices_by_the_metrics_rule() -> None:
    maps, seg, mask = _cases()
    thresholds = np.array([-1.0, 0.5, 2.0])
    # per slice, by hand: t=-1 marks everything, t=0.5 marks slice 1's square, t=2 marks nothing
    full_vs_tumour = 2 * 4 / (SIZE * SIZE + 4)
    by_hand = np.array([[0.0, 0.0, full_vs_tumour],
                        [1.0, 0.0, 0.0],
                        [1.0, 1.0, 0.0]])
    np.testing.assert_allclose(dice_curve(maps, seg, mask, thresholds), by_hand.mean(axis=1))
    for k, t in enumerate(thresholds):  # the metrics' own per-slice Dice, the same rule
        values, _ = overlap((maps > t) & mask, seg)
        np.testing.assert_allclose(values["dice"], by_hand[k])
    # only the both-empty slice scores: a slice alone shows the rule
    np.testing.assert_array_equal(dice_curve(maps[:1], seg[:1], mask[:1], thresholds), [0.0, 1.0, 1.0])


def test_dice_curve_with_empty_slices_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    seg = rng.random((6, SIZE, SIZE)) < 0.2
    seg[[1, 4]] = False  # healthy slices in the set
    maps = rng.normal(size=seg.shape) + 2 * seg
    mask = np.ones_like(seg)
    mask[5] = False  # and a slice without any brain
    grid = np.concatenate([candidate_grid(maps, mask, n=40), [maps.max() + 1]])  # the last marks nothing
    curve = dice_curve(maps, seg, mask, grid)
    for t, value in zip(grid, curve):
        # the truth is never cut to the mask: tumour on a slice without brain is a certain miss
        ref = [f1_score(s.ravel(), ((m > t) & b).ravel(), zero_division=1.0) for m, s, b in zip(maps, seg, mask)]
        assert value == pytest.approx(np.mean(ref))


def test_the_dice_optimal_threshold_counts_healthy_slices() -> None:
    """A healthy slice whose scores reach above the tumour's: marking nothing there is worth Dice 1, so the
    search keeps the threshold above it when that is better on average."""
    maps, seg, mask = _cases()
    maps[2, 5:7, 5:7] = 1.0  # the tumour now scores 1, as slice 1's false positive does
    maps[1, 2:4, 2:4] = 3.0  # slice 1: a stronger false positive
    thr = dice_optimal(maps, seg, mask, name="val_dice", source="val")
    # grid 0, 1, 3: t = 0 finds the tumour, keeps slice 0 empty, marks slice 1 -> (1 + 0 + 1) / 3; t = 1 misses the
    # tumour -> 1/3; t = 3 keeps both healthy slices empty, misses the tumour -> 2/3. The lowest best value wins.
    assert thr.value == pytest.approx(0.0)
    maps[1, 2:4, 2:4] = 0.5  # now t = 0.5 is perfect everywhere, healthy slices included (Dice 1 each)
    thr = dice_optimal(maps, seg, mask, name="val_dice", source="val")
    assert 0.5 <= thr.value < 1.0
    np.testing.assert_allclose(dice_curve(maps, seg, mask, np.array([thr.value])), [1.0])


@pytest.mark.parametrize("threshold", [0.5, -1.0, 2.0])
def test_every_segmentation_metric_on_empty_slices(threshold: float) -> None:
    maps, seg, mask = _cases()
    values, counts = segmentation_metrics(maps, seg, mask, threshold)
    pred = (maps > threshold) & mask
    diagonal = float(np.hypot(SIZE, SIZE))
    for i in range(3):
        has_pred, has_truth = pred[i].any(), seg[i].any()
        if not has_pred and not has_truth:
            expected = {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0, "assd": 0.0}
        elif has_pred != has_truth:
            expected = {"dice": 0.0, "jaccard": 0.0, "precision": 0.0, "recall": 0.0, "assd": diagonal}
        else:
            continue  # both non-empty: covered against sklearn and brute force in test_metrics.py
        assert {m: float(v[i]) for m, v in values.items()} == pytest.approx(expected), (i, threshold)
    both = int(np.sum(~pred.any(axis=(1, 2)) & ~seg.any(axis=(1, 2))))
    one = int(np.sum(pred.any(axis=(1, 2)) != seg.any(axis=(1, 2))))
    assert counts["both_empty"] == counts["assd_both_empty"] == both
    assert counts["assd_one_empty_penalty"] == one
    assert counts["empty_prediction"] == int(np.sum(~pred.any(axis=(1, 2))))
    assert counts["empty_truth"] == 2


def test_ranking_metrics_leave_one_class_slices_out_and_count_them() -> None:
    maps, seg, mask = _cases()
    maps = maps + np.random.default_rng(1).normal(scale=0.1, size=maps.shape)
    seg[0] = True  # slice 0: all tumour (one class, the other way round)
    values, counts = ranking_metrics(maps, seg, mask)
    assert np.isnan(values["auroc"][:2]).all() and np.isnan(values["auprc"][:2]).all()
    assert np.isnan(values["auroc_image_official"][:2]).all()
    assert np.isfinite(values["auroc"][2]) and np.isfinite(values["auprc"][2])
    assert counts == {"auroc_one_class": 2, "auprc_one_class": 2, "auroc_image_official_one_class": 2}
    healthy = pooled_ranking_metrics(maps[1:2], seg[1:2], mask[1:2])
    assert np.isnan(healthy["auroc_pooled"]) and np.isnan(healthy["auprc_pooled"])


def test_a_slice_without_brain_gets_a_finite_floor() -> None:
    maps = np.random.default_rng(2).normal(size=(2, SIZE, SIZE))
    brain = np.ones((2, SIZE, SIZE), dtype=bool)
    brain[1] = False
    out, mask = apply_postprocess(maps, brain, PostProcess())
    assert not mask[1].any() and np.array_equal(out[1], np.zeros((SIZE, SIZE)))
    np.testing.assert_array_equal(out[0], maps[0])


def test_evaluate_with_healthy_and_missed_test_slices() -> None:
    """Test slices without tumour (both-empty and false-positive cases) enter every metric by the rules."""
    maps, seg, mask = _cases()
    val_maps, val_seg = maps[1:], seg[1:].copy()
    val_maps[1, 5:7, 5:7] = 1.0  # validation: the tumour scores 1, the false positive 1 -> threshold 0
    sets = {name: SliceSet(x=m.astype(np.float32), brain=mask[: len(m)], subjects=tuple(f"{name}{i}" for i in range(len(m))),
                           z=np.arange(len(m)), seg=s)
            for name, m, s in (("val", val_maps, val_seg), ("test", maps, seg), ("healthy", maps[:2], seg[:2]))}
    result = evaluate(val_maps=val_maps, val=sets["val"], healthy_maps=maps[:2], val_healthy=sets["healthy"],
                      test_maps=maps, test=sets["test"], n_bootstrap=10)
    t = result.thresholds["val_dice"].value
    assert t is not None
    pred = (maps > t) & mask
    dice = result.per_subject["val_dice"]["dice"]
    for i in range(3):
        expected = 1.0 if not pred[i].any() and not seg[i].any() else (0.0 if pred[i].any() != seg[i].any() else None)
        if expected is not None:
            assert dice[i] == expected
    assert result.counts["val_dice"]["empty_truth"] == 2
    assert np.isnan(result.per_subject["threshold_free"]["auroc"][:2]).all()
