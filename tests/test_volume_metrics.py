"""Volume-level evaluation: stacking slices into volumes, 3-D metrics, healthy scans, strata, evaluate_volumes."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.evaluation.lesions import LesionRule
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.protocol import THRESHOLD_FREE, evaluate
from uasbench.evaluation.strata import kind_groups, size_terciles
from uasbench.evaluation.volume_protocol import VolumeEvaluationResult, evaluate_volumes
from uasbench.evaluation.volumes import (
    healthy_false_positives,
    postprocess_volume,
    stack_volumes,
    volume_overlap,
    volume_ranking,
)


def test_stacking_orders_by_z_and_keeps_gaps_empty() -> None:
    maps = np.arange(4 * 2 * 2, dtype=float).reshape(4, 2, 2)
    brain = np.ones((4, 2, 2), bool)
    vols = stack_volumes(maps, brain, ["b", "a", "a", "a"], np.array([5, 7, 3, 4]))
    assert [v.subject for v in vols] == ["a", "b"]
    a = vols[0]
    assert a.z.tolist() == [3, 4, 5, 6, 7] and a.scored.tolist() == [True, True, False, False, True]
    assert np.array_equal(a.maps[0], maps[2]) and np.array_equal(a.maps[1], maps[3])
    assert np.array_equal(a.maps[4], maps[1])
    assert not a.brain[2:4].any() and not a.maps[2:4].any()  # the gap: no brain, nothing scored
    with pytest.raises(UasbenchError, match="two slices at one axial position z=3"):
        stack_volumes(maps, brain, ["a"] * 4, np.array([3, 3, 4, 5]))


def test_ignore_leaves_truth_and_mask() -> None:
    maps = np.zeros((1, 4, 4))
    brain = np.ones((1, 4, 4), bool)
    truth = np.zeros((1, 4, 4), bool)
    truth[0, :2] = True
    ignore = np.zeros((1, 4, 4), bool)
    ignore[0, 0] = True
    ignore[0, 3, 3] = True
    (vol,) = stack_volumes(maps, brain, ["s"], np.array([0]), truth, ignore)
    assert vol.truth.sum() == 4 and not (vol.truth & vol.ignore).any()
    _, mask = postprocess_volume(vol, PostProcess())
    assert mask.sum() == 16 - 5


def test_volume_overlap_is_3d_not_a_mean_of_slices() -> None:
    truth = np.zeros((2, 4, 4), bool)
    truth[0, :2, :2] = True  # 4 voxels on slice 0
    truth[1] = True  # 16 on slice 1
    pred = np.zeros_like(truth)
    pred[1] = True
    values = volume_overlap(pred, truth)
    assert values["dice"] == pytest.approx(2 * 16 / (16 + 20))  # per-slice mean would be (0 + 1) / 2
    assert values["precision"] == 1.0 and values["recall"] == pytest.approx(16 / 20)
    assert volume_overlap(np.zeros_like(truth), np.zeros_like(truth))["dice"] == 1.0


def test_volume_ranking_ranks_truth_outside_the_mask_last() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 6, 6))
    truth = np.zeros((3, 6, 6), bool)
    truth[1, 2:4, 2:4] = True
    truth[2, 0, 0] = True  # outside the mask below
    mask = np.ones((3, 6, 6), bool)
    mask[:, 0, :] = False
    got = volume_ranking(maps, truth, mask)
    y = np.concatenate([truth[mask], [True]])
    s = np.concatenate([maps[mask], [maps[mask].min() - 1.0]])
    assert got["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert got["auprc"] == pytest.approx(average_precision_score(y, s))
    assert np.isnan(volume_ranking(maps, np.zeros_like(truth), mask)["auroc"])


def test_median_3d_filters_each_run_of_slices_without_bridging_gaps() -> None:
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(5, 7, 7))
    brain = np.ones((5, 7, 7), bool)
    (vol,) = stack_volumes(maps, brain, ["s"] * 5, np.array([0, 1, 2, 5, 6]))
    out, _ = postprocess_volume(vol, PostProcess(median_3d=3))
    np.testing.assert_array_equal(out[:3], ndimage.median_filter(maps[:3], size=3, mode="nearest"))
    np.testing.assert_array_equal(out[5:], ndimage.median_filter(maps[3:], size=3, mode="nearest"))
    same, _ = postprocess_volume(vol, PostProcess())
    np.testing.assert_array_equal(same[vol.scored], maps)  # off by default: untouched


def test_healthy_false_positives() -> None:
    pred = np.zeros((3, 8, 8), bool)
    pred[0, 1, 1] = pred[2, 5:7, 5:7] = True
    mask = np.ones_like(pred)
    got = healthy_false_positives(pred, mask, LesionRule())
    assert got == {"fp_voxel_fraction": 5 / pred.size, "fp_lesions": 2.0}


def test_size_terciles_and_kinds() -> None:
    cut, groups = size_terciles(["a", "b", "c", "d", "e", "f"], [10, 60, 20, 50, 30, 40])
    assert cut == pytest.approx(np.quantile([10, 20, 30, 40, 50, 60], [1 / 3, 2 / 3]).tolist())
    assert groups == {"small": ["a", "c"], "medium": ["e", "f"], "large": ["b", "d"]}
    assert kind_groups(["a", "b"], {"a": "gbm", "b": "lgg"}) == {"gbm": ["a"], "lgg": ["b"]}
    with pytest.raises(UasbenchError, match="no lesion kind"):
        kind_groups(["a", "b"], {"a": "gbm"})


def _set(n_subjects: int, prefix: str, lesion: bool, rng: np.random.Generator) -> tuple[np.ndarray, SliceSet]:
    seg, subjects, z = [], [], []
    for i in range(n_subjects):
        for k in (3, 4, 5, 7):
            s = np.zeros((16, 16), bool)
            if lesion and k in (4, 5):
                s[4:6 + i, 4:8] = True
            seg.append(s)
            subjects.append(f"{prefix}{i}")
            z.append(k)
    seg_arr = np.array(seg)
    brain = np.zeros(seg_arr.shape, bool)
    brain[:, 1:15, 1:15] = True
    maps = rng.normal(size=seg_arr.shape) + 2.5 * seg_arr
    return maps, SliceSet(x=maps.astype(np.float32), brain=brain, subjects=tuple(subjects), z=np.array(z),
                          seg=seg_arr)


def _inputs(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    val_maps, val = _set(4, "v", True, rng)
    healthy_maps, healthy = _set(3, "h", False, rng)
    t_maps, test = _set(6, "t", True, rng)
    h_maps, test_healthy = _set(2, "x", False, rng)
    both = SliceSet(x=np.concatenate([test.x, test_healthy.x]), brain=np.concatenate([test.brain, test_healthy.brain]),
                    subjects=test.subjects + test_healthy.subjects, z=np.concatenate([test.z, test_healthy.z]),
                    seg=np.concatenate([test.seg, test_healthy.seg]))
    return dict(val_maps=val_maps, val=val, healthy_maps=healthy_maps, val_healthy=healthy,
                test_maps=np.concatenate([t_maps, h_maps]), test=both)


def test_evaluate_volumes_end_to_end() -> None:
    inputs = _inputs()
    kinds = {f"t{i}": ("glioblastoma" if i % 2 else "low_grade") for i in range(6)}
    result = evaluate_volumes(**inputs, kinds=kinds, n_bootstrap=50)
    assert result.subjects == [f"t{i}" for i in range(6)] and result.healthy_subjects == ["x0", "x1"]
    assert result.thresholds["oracle_test"].upper_bound and not result.thresholds["val_dice"].upper_bound
    assert result.n_volumes == {"val": 4, "val_healthy": 3, "test": 6, "test_healthy": 2}
    # the per-volume Dice at val_dice recomputed directly
    thr = result.thresholds["val_dice"].value
    vols = stack_volumes(inputs["test_maps"], inputs["test"].brain, inputs["test"].subjects, inputs["test"].z,
                         inputs["test"].seg)
    direct = [volume_overlap((v.maps > thr) & v.brain, v.truth)["dice"] for v in vols[:6]]
    assert result.per_subject["val_dice"]["dice"] == pytest.approx(direct)
    fp = [healthy_false_positives((v.maps > thr) & v.brain, v.brain, LesionRule()) for v in vols[6:]]
    assert result.healthy_per_subject["val_dice"]["fp_lesions"] == [f["fp_lesions"] for f in fp]
    # healthy validation voxels above fpr_5: at most 5 %
    h = stack_volumes(inputs["healthy_maps"], inputs["val_healthy"].brain, inputs["val_healthy"].subjects,
                      inputs["val_healthy"].z)
    scores = np.concatenate([v.maps[v.brain] for v in h])
    assert np.mean(scores > result.thresholds["fpr_5"].value) <= 0.05
    assert result.metrics["val_dice"]["lesion_dice"].n == 6
    assert result.strata["size"]["cutoffs"][0] <= result.strata["size"]["cutoffs"][1]
    assert sorted(result.strata["kind"]["groups"]) == ["glioblastoma", "low_grade"]
    data = json.loads(json.dumps(result.to_dict()))
    assert VolumeEvaluationResult.from_dict(data).to_dict() == result.to_dict()


def test_thresholds_come_from_validation_only() -> None:
    inputs = _inputs()
    a = evaluate_volumes(**inputs, n_bootstrap=0)
    changed = dict(inputs, test_maps=inputs["test_maps"] * 10 + 3)
    b = evaluate_volumes(**changed, n_bootstrap=0)
    for name in ("val_dice", "fpr_1", "fpr_5"):
        assert a.thresholds[name] == b.thresholds[name]
    assert a.thresholds["oracle_test"] != b.thresholds["oracle_test"]


def test_minimum_component_size_drops_false_positive_lesions() -> None:
    inputs = _inputs(2)
    plain = evaluate_volumes(**inputs, n_bootstrap=0)
    cleaned = evaluate_volumes(**inputs, post=PostProcess(min_component_voxels=4), n_bootstrap=0)
    assert cleaned.metrics["fpr_5"]["fp_lesions"].mean < plain.metrics["fpr_5"]["fp_lesions"].mean
    assert cleaned.post.to_dict()["min_component_voxels"] == 4 and "median_3d" not in cleaned.post.to_dict()


def test_slice_protocol_refuses_volume_only_options() -> None:
    inputs = _inputs()
    with pytest.raises(UasbenchError, match="whole volumes"):
        evaluate(**inputs, post=PostProcess(median_3d=3), n_bootstrap=0)


def test_bad_inputs_raise() -> None:
    inputs = _inputs()
    with pytest.raises(UasbenchError, match="test_maps has shape"):
        evaluate_volumes(**dict(inputs, test_maps=inputs["test_maps"][:, :4]), n_bootstrap=0)
    with pytest.raises(UasbenchError, match="no lesion kind"):
        evaluate_volumes(**inputs, kinds={"t0": "a"}, n_bootstrap=0)


def test_ignore_is_excluded_at_slice_and_volume_level() -> None:
    inputs = _inputs(4)
    test = inputs["test"]
    ignore = np.zeros_like(test.seg)
    ignore[:, 10:14, 10:14] = True  # a patch of "other pathology" away from the lesions
    maps = inputs["test_maps"].copy()
    maps[ignore] = 50.0  # would be false positives at every threshold if counted
    marked = replace(test, ignore=ignore)
    plain = evaluate_volumes(**dict(inputs, test_maps=inputs["test_maps"]), n_bootstrap=0)
    hidden = evaluate_volumes(**dict(inputs, test_maps=maps, test=marked), n_bootstrap=0)
    clean = replace(test, ignore=ignore)
    same = evaluate_volumes(**dict(inputs, test_maps=inputs["test_maps"], test=clean), n_bootstrap=0)
    assert hidden.per_subject == same.per_subject  # scores under ignore change nothing
    assert hidden.per_subject[THRESHOLD_FREE] != plain.per_subject[THRESHOLD_FREE]  # the mask did change
    sliced = evaluate(**dict(inputs, test_maps=maps, test=marked), n_bootstrap=0)
    sliced_clean = evaluate(**dict(inputs, test=clean), n_bootstrap=0)
    for key in ("val_dice", "fpr_5"):
        assert sliced.per_subject[key]["dice"] == sliced_clean.per_subject[key]["dice"]
        assert sliced.per_subject[key]["precision"] == sliced_clean.per_subject[key]["precision"]
