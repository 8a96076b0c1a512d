"""Lesion-wise metrics (BraTS 2023 matching) on hand-built 3-D cases, cross-checked with scipy.ndimage.label."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from uasbench.errors import UasbenchError
from uasbench.evaluation.lesions import LesionRule, lesion_metrics, match_lesions, truth_lesions
from uasbench.evaluation.postprocess import remove_small_components

SHAPE = (8, 20, 20)


def box(z: slice, y: slice, x: slice) -> np.ndarray:
    out = np.zeros(SHAPE, bool)
    out[z, y, x] = True
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def test_one_lesion_found_and_one_false_positive_by_hand() -> None:
    truth = box(slice(2, 4), slice(2, 6), slice(2, 6))  # 32 voxels
    hit = box(slice(2, 4), slice(2, 6), slice(4, 8))  # half overlapping: Dice 0.5
    far = box(slice(6, 7), slice(15, 17), slice(15, 17))  # nowhere near
    m = lesion_metrics(hit | far, truth, LesionRule(dilation=1))
    assert m["lesion_dice"] == pytest.approx(0.5 / 2)  # one lesion (0.5) + one false positive (0) over 2
    assert m["lesion_recall"] == 1.0 and m["lesion_precision"] == 0.5 and m["fp_lesions"] == 1.0
    assert m["lesion_f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_empty_cases() -> None:
    truth = box(slice(2, 4), slice(2, 6), slice(2, 6))
    empty = np.zeros(SHAPE, bool)
    missed = lesion_metrics(empty, truth)
    assert missed == {"lesion_dice": 0.0, "lesion_precision": 0.0, "lesion_recall": 0.0, "lesion_f1": 0.0,
                      "fp_lesions": 0.0}
    false_alarm = lesion_metrics(truth, empty)
    assert false_alarm["lesion_dice"] == 0.0 and false_alarm["fp_lesions"] == 1.0
    assert false_alarm["lesion_recall"] == 0.0 and false_alarm["lesion_precision"] == 0.0
    nothing = lesion_metrics(empty, empty)
    assert nothing == {"lesion_dice": 1.0, "lesion_precision": 1.0, "lesion_recall": 1.0, "lesion_f1": 1.0,
                       "fp_lesions": 0.0}


def test_lesion_touching_the_volume_edge() -> None:
    truth = box(slice(0, 3), slice(0, 4), slice(16, 20))  # touches three faces of the volume
    pred = box(slice(0, 3), slice(0, 4), slice(17, 20))
    counts = match_lesions(pred, truth)
    assert counts.found == 1 and counts.false_positives == 0
    assert counts.dice[0] == pytest.approx(dice(pred, truth))


def test_two_lesions_merged_by_one_prediction() -> None:
    a = box(slice(2, 4), slice(2, 5), slice(2, 5))
    b = box(slice(2, 4), slice(2, 5), slice(12, 15))  # far apart: two lesions, whatever the dilation
    pred = box(slice(2, 4), slice(2, 5), slice(2, 15))  # one component covering both
    counts = match_lesions(pred, a | b, LesionRule(dilation=1))
    assert len(counts.dice) == 2 and counts.found == 2 and counts.missed == 0
    assert counts.matched_predictions == 1 and counts.false_positives == 0 and counts.predicted == 1
    # each lesion is scored against the whole matched prediction (BraTS), so both have the same Dice
    assert counts.dice == pytest.approx((dice(pred, a), dice(pred, b)))
    assert counts.metrics()["lesion_precision"] == 1.0 and counts.metrics()["lesion_recall"] == 1.0


def test_one_lesion_split_by_the_prediction() -> None:
    truth = box(slice(2, 4), slice(2, 6), slice(2, 12))
    left, right = box(slice(2, 4), slice(2, 6), slice(2, 6)), box(slice(2, 4), slice(2, 6), slice(8, 12))
    counts = match_lesions(left | right, truth)
    assert counts.found == 1 and counts.matched_predictions == 2 and counts.false_positives == 0
    assert counts.dice == pytest.approx((dice(left | right, truth),))


def test_dilation_merges_near_truth_components_and_catches_near_misses() -> None:
    a = box(slice(2, 4), slice(2, 5), slice(2, 5))
    b = box(slice(2, 4), slice(2, 5), slice(7, 10))  # two voxels of gap to a
    assert truth_lesions(a | b, LesionRule(dilation=0))[1] == 2
    assert truth_lesions(a | b, LesionRule(dilation=1))[1] == 1  # dilations touch: one lesion
    labels, _ = truth_lesions(a | b, LesionRule(dilation=1))
    assert np.array_equal(labels > 0, a | b)  # the truth voxels do not change
    beside = box(slice(2, 4), slice(6, 7), slice(2, 5))  # one voxel off the lesion: in its dilation
    counts = match_lesions(beside, a, LesionRule(dilation=2))
    assert counts.found == 1 and counts.false_positives == 0 and counts.dice == (0.0,)
    assert match_lesions(beside, a, LesionRule(dilation=0)).false_positives == 1


def test_connectivity_is_a_parameter() -> None:
    diagonal = np.zeros(SHAPE, bool)
    diagonal[2, 2, 2] = diagonal[3, 3, 3] = True  # corner neighbours only
    for conn, expected in ((26, 1), (18, 2), (6, 2)):
        assert match_lesions(diagonal, np.zeros(SHAPE, bool), LesionRule(connectivity=conn)).predicted == expected
    with pytest.raises(UasbenchError, match="connectivity"):
        LesionRule(connectivity=8)
    with pytest.raises(UasbenchError, match="dilation"):
        LesionRule(dilation=11)


def test_small_truth_lesions_leave_the_counts() -> None:
    big = box(slice(2, 4), slice(2, 6), slice(2, 6))
    tiny = box(slice(6, 7), slice(15, 16), slice(15, 16))
    pred = big | tiny  # the tiny lesion is predicted exactly
    counts = match_lesions(pred, big | tiny, LesionRule(min_truth_voxels=2))
    assert len(counts.dice) == 1 and counts.false_positives == 0 and counts.matched_predictions == 1
    assert counts.metrics()["lesion_dice"] == 1.0 and counts.metrics()["lesion_precision"] == 1.0


def test_tiny_false_positive_removed_by_minimum_component_size() -> None:
    truth = box(slice(2, 4), slice(2, 6), slice(2, 6))
    speck = box(slice(6, 7), slice(15, 16), slice(15, 17))  # 2 voxels
    rule = LesionRule()
    raw = lesion_metrics(truth | speck, truth, rule)
    assert raw["fp_lesions"] == 1.0 and raw["lesion_dice"] == 0.5
    cleaned = remove_small_components(truth | speck, 3, rule.structure)
    assert np.array_equal(cleaned, truth)
    assert lesion_metrics(cleaned, truth, rule)["lesion_dice"] == 1.0


def test_against_an_independent_count_on_random_volumes() -> None:
    rng = np.random.default_rng(3)
    full = ndimage.generate_binary_structure(3, 3)
    for _ in range(20):
        truth = ndimage.binary_opening(rng.random(SHAPE) > 0.8) & (rng.random(SHAPE) > 0.1)
        pred = rng.random(SHAPE) > 0.93
        rule = LesionRule(dilation=0)  # without dilation, the rule is plain overlap of components
        t_lab, n_t = ndimage.label(truth, structure=full)
        p_lab, n_p = ndimage.label(pred, structure=full)
        overlapping = {(a, b) for a, b in zip(t_lab[truth & pred], p_lab[truth & pred])}
        found = len({a for a, _ in overlapping})
        matched = len({b for _, b in overlapping})
        counts = match_lesions(pred, truth, rule)
        assert (counts.found, counts.missed) == (found, n_t - found)
        assert (counts.matched_predictions, counts.false_positives, counts.predicted) == (matched, n_p - matched, n_p)
        dices = [dice(np.isin(p_lab, [b for a, b in overlapping if a == k]), t_lab == k) for k in range(1, n_t + 1)]
        assert counts.dice == pytest.approx(tuple(dices))


def test_bad_shapes_raise() -> None:
    with pytest.raises(UasbenchError, match="3-D"):
        match_lesions(np.zeros((4, 4), bool), np.zeros((4, 4), bool))


def test_dilated_matching_against_a_whole_volume_computation() -> None:
    """The per-lesion boxes give what dilating each lesion over the whole volume gives (BraTS's way)."""
    rng = np.random.default_rng(5)
    full, cross = ndimage.generate_binary_structure(3, 3), ndimage.generate_binary_structure(3, 2)
    for _ in range(10):
        truth = ndimage.binary_opening(rng.random(SHAPE) > 0.75)
        pred = rng.random(SHAPE) > 0.95
        merged, n_t = ndimage.label(ndimage.binary_dilation(truth, cross, iterations=2), structure=full)
        lesions = np.where(truth, merged, 0)
        p_lab, n_p = ndimage.label(pred, structure=full)
        hits = [set(np.unique(p_lab[ndimage.binary_dilation(lesions == k, cross, iterations=2)])) - {0}
                for k in range(1, n_t + 1)]
        expected = tuple(dice(np.isin(p_lab, list(h)), lesions == k) for k, h in enumerate(hits, start=1))
        counts = match_lesions(pred, truth, LesionRule(dilation=2))
        assert counts.dice == pytest.approx(expected)
        assert counts.false_positives == n_p - len(set().union(*hits))
        assert counts.found == sum(bool(h) for h in hits)
