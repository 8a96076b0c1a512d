"""The evaluate() entry point: no test leakage, degenerate validation sets, JSON round trip."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.evaluate import EvaluationResult, evaluate

SIZE = 24


def _slices(n: int, seed: int, tumour: bool = True, subjects: tuple[str, ...] | None = None) -> tuple[np.ndarray, SliceSet]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    brain = np.broadcast_to((yy - 12) ** 2 + (xx - 12) ** 2 < 10**2, (n, SIZE, SIZE)).copy()
    seg = np.zeros_like(brain)
    if tumour:
        for i in range(n):
            cy, cx = rng.integers(8, 16, 2)
            seg[i] = ((yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(2, 5) ** 2) & brain[i]
    maps = rng.normal(size=brain.shape) + 2.0 * seg
    names = subjects or tuple(f"s{seed}-{i}" for i in range(n))
    return maps, SliceSet(x=maps.astype(np.float32), brain=brain, subjects=names, z=np.arange(n), seg=seg)


def _run(test_maps: np.ndarray, test: SliceSet, val_seed: int = 1, **kw) -> EvaluationResult:
    val_maps, val = _slices(6, val_seed)
    healthy_maps, healthy = _slices(4, 2, tumour=False)
    return evaluate(val_maps=val_maps, val=val, healthy_maps=healthy_maps, val_healthy=healthy,
                    test_maps=test_maps, test=test, n_bootstrap=200, **kw)


def test_test_data_cannot_move_validation_thresholds() -> None:
    test_maps, test = _slices(5, 3)
    base = _run(test_maps, test)
    rng = np.random.default_rng(9)
    perm = rng.permutation(len(test))
    altered = replace(test.subset(perm), seg=~test.seg[perm])
    other = _run(rng.normal(size=test_maps.shape) * 100, altered)
    for name in ("val_dice", "fpr_1", "fpr_5"):
        assert other.thresholds[name] == base.thresholds[name]  # bit-identical values
    assert other.thresholds["oracle_test"] != base.thresholds["oracle_test"]


def test_result_structure_and_json_round_trip() -> None:
    test_maps, test = _slices(5, 3)
    result = _run(test_maps, test, post=PostProcess(erode_brain_px=1, median_size=3))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["thresholds"]["oracle_test"]["upper_bound"] is True
    assert data["post"] == {"brain_mask": True, "erode_brain_px": 1, "median_size": 3}
    back = EvaluationResult.from_dict(data)
    assert back.thresholds == result.thresholds
    assert back.to_frame().equals(result.to_frame())
    head = result.headline()
    assert set(head) >= {"dice", "jaccard", "precision", "recall", "assd", "auroc", "auprc", "oracle_dice"}
    assert head["oracle_dice"] >= head["dice"] - 1e-12 or np.isnan(head["dice"])
    frame = result.to_frame()
    assert list(frame.columns[:7]) == ["threshold", "metric", "mean", "std", "ci_low", "ci_high", "n"]
    dice = frame[(frame.threshold == "val_dice") & (frame.metric == "dice")].iloc[0]
    assert dice.ci_low <= dice["mean"] <= dice.ci_high and dice.n == 5
    assert len(result.per_subject["val_dice"]["dice"]) == 5


def test_validation_without_tumour_gives_explicit_nan() -> None:
    test_maps, test = _slices(4, 3)
    val_maps, val = _slices(3, 1, tumour=False)
    healthy_maps, healthy = _slices(2, 2, tumour=False)
    empty_healthy = healthy.subset([])
    result = evaluate(val_maps=val_maps, val=val, healthy_maps=healthy_maps[:0], val_healthy=empty_healthy,
                      test_maps=test_maps, test=test, n_bootstrap=50)
    for name in ("val_dice", "fpr_1", "fpr_5"):
        assert result.thresholds[name].value is None and result.thresholds[name].reason
        assert np.isnan(result.metrics[name]["dice"].mean)
    assert result.thresholds["oracle_test"].defined
    assert result.to_dict()["metrics"]["val_dice"]["dice"]["mean"] is None
    assert np.isnan(result.headline()["dice"])


def test_several_slices_per_subject_are_averaged_first() -> None:
    test_maps, test = _slices(4, 3, subjects=("a", "a", "a", "b"))
    result = _run(test_maps, test)
    assert result.subjects == ["a", "b"]
    assert result.metrics["val_dice"]["dice"].n == 2


def test_bad_inputs_name_the_argument() -> None:
    test_maps, test = _slices(3, 3)
    with pytest.raises(UasbenchError, match="test_maps"):
        _run(test_maps[:, :-1], test)
    with pytest.raises(UasbenchError, match="seg"):
        _run(test_maps, test.unlabelled())


def test_headline_frame_and_round_trip_carry_every_field() -> None:
    test_maps, test = _slices(5, 3)
    result = _run(test_maps, test)
    head = result.headline()
    for metric in ("dice", "jaccard", "precision", "recall", "assd"):
        assert head[metric] == result.metrics["val_dice"][metric].mean
    assert (head["auroc"], head["auprc"]) == (result.metrics["threshold_free"]["auroc"].mean,
                                              result.metrics["threshold_free"]["auprc"].mean)
    assert head["oracle_dice"] == result.metrics["oracle_test"]["dice"].mean
    assert head["val_dice_threshold"] == result.thresholds["val_dice"].value is not None
    assert list(result.to_frame().columns) == ["threshold", "metric", "mean", "std", "ci_low", "ci_high", "n",
                                               "n_excluded"]
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["n_slices"] == {"val": 6, "val_healthy": 4, "test": 5}
    assert data["per_subject"]["val_dice"]["dice"] == result.per_subject["val_dice"]["dice"]  # numbers, not nulls
    assert EvaluationResult.from_dict(data).to_dict() == data
    del data["n_slices"]  # results written before the field existed
    assert EvaluationResult.from_dict(data).n_slices == {}
    # NaN (undefined) values survive the trip as well
    undefined = _run(test_maps, test, val_seed=1).to_dict()
    undefined["pooled"]["auroc_pooled"] = None
    undefined["per_subject"]["val_dice"]["dice"][0] = None
    back = EvaluationResult.from_dict(undefined)
    assert np.isnan(back.pooled["auroc_pooled"]) and np.isnan(back.per_subject["val_dice"]["dice"][0])
    assert back.to_dict() == undefined


def test_headline_of_a_result_without_a_metric_is_nan() -> None:
    test_maps, test = _slices(3, 3)
    result = _run(test_maps, test)
    del result.metrics["oracle_test"]
    assert np.isnan(result.headline()["oracle_dice"])


def test_labels_of_validation_are_optional_and_may_be_integers() -> None:
    """Unlabelled validation slices only leave val_dice undefined; integer masks mean the same as booleans."""
    test_maps, test = _slices(4, 3)
    val_maps, val = _slices(3, 1)
    healthy_maps, healthy = _slices(2, 2, tumour=False)
    unlabelled = evaluate(val_maps=val_maps, val=val.unlabelled(), healthy_maps=healthy_maps,
                          val_healthy=healthy.unlabelled(), test_maps=test_maps, test=test, n_bootstrap=20)
    assert unlabelled.thresholds["val_dice"].value is None and unlabelled.thresholds["fpr_1"].defined
    assert unlabelled.counts["val_dice"] == {}
    as_bool = evaluate(val_maps=val_maps, val=val, healthy_maps=healthy_maps, val_healthy=healthy,
                       test_maps=test_maps, test=test, n_bootstrap=20)
    as_int = evaluate(val_maps=val_maps, val=replace(val, seg=val.seg.astype(np.uint8)), healthy_maps=healthy_maps,
                      val_healthy=healthy, test_maps=test_maps, test=replace(test, seg=test.seg.astype(np.uint8)),
                      n_bootstrap=20)
    assert as_int.to_dict() == as_bool.to_dict()
    assert as_bool.n_bootstrap == 20 and as_bool.seed == 0
    defaults = evaluate(val_maps=val_maps, val=val, healthy_maps=healthy_maps, val_healthy=healthy,
                        test_maps=test_maps, test=test)
    assert (defaults.n_bootstrap, defaults.seed) == (1000, 0)  # the documented defaults
    reseeded = evaluate(val_maps=val_maps, val=val, healthy_maps=healthy_maps, val_healthy=healthy,
                        test_maps=test_maps, test=test, n_bootstrap=20, seed=1)
    assert reseeded.metrics["val_dice"]["dice"].ci_low != as_bool.metrics["val_dice"]["dice"].ci_low


def test_each_bad_array_is_named_and_an_empty_test_set_is_refused() -> None:
    test_maps, test = _slices(3, 3)
    val_maps, val = _slices(2, 1)
    healthy_maps, healthy = _slices(2, 2, tumour=False)
    args = dict(val_maps=val_maps, val=val, healthy_maps=healthy_maps, val_healthy=healthy, test_maps=test_maps,
                test=test, n_bootstrap=10)
    with pytest.raises(UasbenchError, match=r"^val_maps has shape"):
        evaluate(**{**args, "val_maps": val_maps[:, 1:]})
    with pytest.raises(UasbenchError, match=r"^val_healthy_maps has shape"):
        evaluate(**{**args, "healthy_maps": healthy_maps[:, 1:]})
    with pytest.raises(UasbenchError, match=r"^the test set is empty: nothing to evaluate$"):
        evaluate(**{**args, "test_maps": test_maps[:0], "test": test.subset([])})
    one = evaluate(**{**args, "test_maps": test_maps[:1], "test": test.subset([0])})
    assert one.n_slices["test"] == 1
