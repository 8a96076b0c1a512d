"""Threshold protocols: Dice-optimal on validation, healthy false-positive rates, oracle, degenerate cases."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from uasbench.evaluation.thresholds import (
    Threshold,
    candidate_grid,
    dice_curve,
    dice_optimal,
    fpr_threshold,
    oracle_threshold,
    validation_thresholds,
)


def _data(n: int = 5, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seg = np.zeros((n, size, size), bool)
    seg[:, 3:7, 4:8] = True
    maps = rng.normal(size=seg.shape) + 1.5 * seg
    mask = np.ones_like(seg)
    mask[:, 0, :] = False
    return maps, seg, mask


def test_dice_curve_matches_sklearn_f1_per_slice() -> None:
    maps, seg, mask = _data()
    grid = candidate_grid(maps, mask, n=50)
    curve = dice_curve(maps, seg, mask, grid)
    for t, value in zip(grid[::7], curve[::7]):
        ref = np.mean([f1_score(s[b], m[b] > t, zero_division=1.0) for m, s, b in zip(maps, seg, mask)])
        assert np.isclose(value, ref)


def test_grid_is_unique_quantiles_of_in_mask_scores() -> None:
    maps, _, mask = _data()
    grid = candidate_grid(maps, mask)
    assert len(grid) <= 1000 and np.all(np.diff(grid) > 0)
    assert grid[0] == maps[mask].min() and grid[-1] == maps[mask].max()


def test_dice_optimal_is_best_on_grid() -> None:
    maps, seg, mask = _data()
    thr = dice_optimal(maps, seg, mask, name="val_dice", source="val")
    grid = candidate_grid(maps, mask)
    assert thr.defined and thr.value in grid
    curve = dice_curve(maps, seg, mask, grid)
    assert np.isclose(dice_curve(maps, seg, mask, np.array([thr.value]))[0], curve.max())


def test_no_tumour_in_validation_is_explicitly_undefined() -> None:
    maps, seg, mask = _data()
    thr = dice_optimal(maps, np.zeros_like(seg), mask, name="val_dice", source="val")
    assert thr.value is None and "no tumour" in thr.reason
    empty = dice_optimal(maps[:0], seg[:0], mask[:0], name="val_dice", source="val")
    assert empty.value is None and "no val slices" in empty.reason
    assert dice_optimal(maps, None, mask, name="val_dice", source="val").value is None


def test_fpr_threshold_bounds_healthy_false_positives() -> None:
    rng = np.random.default_rng(1)
    healthy = rng.normal(size=(3, 20, 20))
    mask = np.ones_like(healthy, bool)
    scores = healthy[mask]
    for fpr in (0.01, 0.05):
        t = fpr_threshold(healthy, mask, fpr, name="x").value
        assert np.mean(scores > t) <= fpr
        lower = scores[scores < t].max()  # the next lower candidate would exceed the budget
        assert np.mean(scores > lower) > fpr


def test_empty_healthy_validation_is_undefined() -> None:
    thr = fpr_threshold(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), bool), 0.01, name="fpr_1")
    assert thr.value is None and thr.source == "val_healthy" and thr.reason


def test_validation_thresholds_and_oracle_labels() -> None:
    maps, seg, mask = _data()
    out = validation_thresholds(maps, seg, mask, maps, ~seg & mask)
    assert set(out) == {"val_dice", "fpr_1", "fpr_5"}
    assert not any(t.upper_bound for t in out.values())
    assert out["fpr_1"].value >= out["fpr_5"].value
    oracle = oracle_threshold(maps, seg, mask)
    assert oracle.upper_bound and oracle.source == "test" and oracle.name == "oracle_test"


def test_threshold_records_say_where_they_came_from() -> None:
    """Name, source and the upper-bound flag go into every results file: each threshold states them exactly."""
    maps, seg, mask = _data()
    out = validation_thresholds(maps, seg, mask, maps, ~seg & mask)
    assert [(k, t.name, t.source, t.upper_bound, t.reason) for k, t in out.items()] == [
        ("val_dice", "val_dice", "val", False, ""), ("fpr_1", "fpr_1", "val_healthy", False, ""),
        ("fpr_5", "fpr_5", "val_healthy", False, "")]
    healthy = maps[~seg & mask]
    for name, fpr in (("fpr_1", 0.01), ("fpr_5", 0.05)):  # the budgets are 1% and 5% of healthy pixels
        assert np.mean(healthy > out[name].value) <= fpr < np.mean(healthy >= out[name].value)
    assert dice_optimal(maps[:0], seg[:0], mask[:0], name="oracle_test", source="test", upper_bound=True) == \
        Threshold("oracle_test", None, "test", True, "no test slices")
    assert oracle_threshold(maps, np.zeros_like(seg), mask) == Threshold(
        "oracle_test", None, "test", True, "no tumour pixels in the test slices: the Dice-optimal threshold is undefined")
    assert fpr_threshold(maps[:0], mask[:0], 0.01, name="fpr_1") == Threshold(
        "fpr_1", None, "val_healthy", False, "no healthy validation pixels: the false-positive-rate threshold is undefined")


def test_grid_edge_cases() -> None:
    one = np.zeros((1, 3, 3))
    one[0, 1, 1] = 7.0
    only_centre = np.zeros((1, 3, 3), bool)
    only_centre[0, 1, 1] = True
    assert candidate_grid(one, only_centre).tolist() == [7.0]  # a single in-mask pixel is a grid of one
    assert candidate_grid(one, np.zeros_like(only_centre)).size == 0
    distinct = np.arange(5000.0).reshape(2, 50, 50)
    assert len(candidate_grid(distinct, np.ones_like(distinct, bool))) == 1000  # N_CANDIDATES quantiles


def test_dice_curve_single_pixel_slices() -> None:
    """Denominators of 1 and 2 (one predicted pixel, with or without a matching tumour pixel) are ordinary."""
    maps = np.zeros((2, 3, 3))
    maps[:, 0, 0] = 1.0
    seg = np.zeros((2, 3, 3), bool)
    seg[1, 0, 0] = True
    mask = np.ones_like(seg)
    np.testing.assert_allclose(dice_curve(maps, seg, mask, np.array([0.5])), [(0.0 + 1.0) / 2])


def _volume(rng: np.random.Generator, lesion: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth = np.zeros((3, 10, 10), bool)
    truth[1, 2:2 + lesion, 2:6] = True
    maps = rng.normal(size=truth.shape) + 3 * truth
    return maps, truth, np.ones(truth.shape, bool)


def test_volume_dice_rule_maximises_mean_per_volume_dice() -> None:
    from uasbench.evaluation.thresholds import candidate_grid, volume_dice_optimal

    rng = np.random.default_rng(0)
    vols = [_volume(rng, k) for k in (1, 3, 6)]
    thr = volume_dice_optimal(vols, name="val_dice", source="val")
    scores = np.concatenate([m[k] for m, _, k in vols])
    grid = candidate_grid(scores, np.ones(scores.shape, bool))

    def mean_dice(t: float) -> float:
        return float(np.mean([2 * np.sum((m > t) & s) / ((m > t).sum() + s.sum()) for m, s, _ in vols]))

    brute = [mean_dice(t) for t in grid]
    assert thr.value == grid[int(np.argmax(brute))] and thr.source == "val" and not thr.upper_bound
    # the slow path (a segmenter per candidate) finds the same threshold when it only thresholds
    same = volume_dice_optimal(vols, name="val_dice", source="val", segment_fn=lambda m, k, t: (m > t) & k)
    assert same.value == thr.value


def test_volume_thresholds_undefined_without_lesions_or_healthy_scans() -> None:
    from uasbench.evaluation.thresholds import volume_oracle_threshold, volume_validation_thresholds

    rng = np.random.default_rng(1)
    empty = [(rng.normal(size=(2, 4, 4)), np.zeros((2, 4, 4), bool), np.ones((2, 4, 4), bool))]
    got = volume_validation_thresholds(empty, [])
    assert not got["val_dice"].defined and "no lesion voxels" in got["val_dice"].reason
    assert not got["fpr_1"].defined and not got["fpr_5"].defined
    oracle = volume_oracle_threshold([_volume(rng, 2)])
    assert oracle.defined and oracle.upper_bound and oracle.source == "test"
    assert not volume_oracle_threshold([]).defined


def test_volume_fpr_thresholds_count_healthy_mask_voxels() -> None:
    from uasbench.evaluation.thresholds import volume_validation_thresholds

    maps = np.arange(200, dtype=float).reshape(2, 10, 10)
    mask = np.ones_like(maps, dtype=bool)
    mask[1] = False  # only the first 100 voxels count
    got = volume_validation_thresholds([], [(maps, mask)])
    assert np.sum(maps[mask] > got["fpr_1"].value) == 1 and np.sum(maps[mask] > got["fpr_5"].value) == 5
