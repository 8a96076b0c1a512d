"""The slice-level evaluation entry point: identical post-processing, thresholds and metrics for every method
(``evaluate_volumes.evaluate_volumes`` is its volume-, lesion- and healthy-scan-level sibling).

Pixels in the slices' optional ``ignore`` mask (neither anomalous nor normal) leave the evaluation mask and
the truth, so no threshold search and no metric counts them; only the official whole-image AUROC, which
ranks every pixel of the image for comparison with published numbers, still sees them as background.

Order matters and is the guarantee against test leakage: the reportable thresholds (``val_dice``,
``fpr_1``, ``fpr_5``) are fixed from validation arrays before the test arrays are even validated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.evaluation.metrics import (
    SEGMENTATION_METRICS,
    Summary,
    pooled_ranking_metrics,
    ranking_metrics,
    segmentation_metrics,
    subject_means,
    summarize,
)
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess
from uasbench.evaluation.thresholds import Threshold, oracle_threshold, validation_thresholds

THRESHOLD_FREE = "threshold_free"


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def _none_to_nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


@dataclass
class EvaluationResult:
    """Everything ``evaluate`` measured; ``to_dict()`` is what a run stores as ``metrics.json``.

    ``metrics`` maps ``"threshold_free"`` and each threshold name to ``{metric: Summary}``;
    ``per_subject`` holds the same keys with per-subject values (order of ``subjects``);
    ``counts`` says how often each empty-mask rule was applied.
    """

    thresholds: dict[str, Threshold]
    metrics: dict[str, dict[str, Summary]]
    per_subject: dict[str, dict[str, list[float]]]
    subjects: list[str]
    pooled: dict[str, float]
    counts: dict[str, dict[str, int]]
    post: PostProcess
    n_bootstrap: int
    seed: int
    n_slices: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN written as null)."""
        return _nan_to_none({
            "thresholds": {k: t.to_dict() for k, t in self.thresholds.items()},
            "metrics": {k: {m: s.to_dict() for m, s in d.items()} for k, d in self.metrics.items()},
            "per_subject": {k: {m: [float(v) for v in vals] for m, vals in d.items()}
                            for k, d in self.per_subject.items()},
            "subjects": list(self.subjects),
            "pooled": dict(self.pooled),
            "counts": self.counts,
            "post": self.post.to_dict(),
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "n_slices": self.n_slices,
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        def summary(d: dict[str, Any]) -> Summary:
            return Summary(*(_none_to_nan(d[k]) for k in ("mean", "std", "ci_low", "ci_high")),
                           int(d["n"]), int(d["n_excluded"]))

        return cls(
            thresholds={k: Threshold.from_dict(t) for k, t in data["thresholds"].items()},
            metrics={k: {m: summary(s) for m, s in d.items()} for k, d in data["metrics"].items()},
            per_subject={k: {m: [_none_to_nan(v) for v in vals] for m, vals in d.items()}
                         for k, d in data["per_subject"].items()},
            subjects=list(data["subjects"]),
            pooled={k: _none_to_nan(v) for k, v in data["pooled"].items()},
            counts=data["counts"],
            post=PostProcess.from_dict(data["post"]),
            n_bootstrap=int(data["n_bootstrap"]),
            seed=int(data["seed"]),
            n_slices=dict(data.get("n_slices", {})),
        )

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (threshold, metric)."""
        rows = [{"threshold": k, "metric": m, **s.to_dict()} for k, d in self.metrics.items() for m, s in d.items()]
        cols = ["threshold", "metric", "mean", "std", "ci_low", "ci_high", "n", "n_excluded"]
        return pd.DataFrame(rows, columns=cols)

    def headline(self) -> dict[str, float | None]:
        """Flat one-row summary: segmentation metrics at ``val_dice``, threshold-free AUROC/AUPRC, oracle Dice."""
        def mean(key: str, metric: str) -> float:
            s = self.metrics.get(key, {}).get(metric)
            return float("nan") if s is None else s.mean

        row: dict[str, float | None] = {m: mean("val_dice", m) for m in SEGMENTATION_METRICS}
        row.update(auroc=mean(THRESHOLD_FREE, "auroc"), auprc=mean(THRESHOLD_FREE, "auprc"),
                   oracle_dice=mean("oracle_test", "dice"), val_dice_threshold=self.thresholds["val_dice"].value)
        return row


def _check(maps: np.ndarray, slices: SliceSet, name: str, need_seg: bool) -> np.ndarray:
    maps = np.asarray(maps)
    if maps.shape != slices.brain.shape:
        raise UasbenchError(f"{name}_maps has shape {maps.shape}, expected {slices.brain.shape} (one map per slice)")
    if need_seg and slices.seg is None:
        raise UasbenchError(f"the {name} slices carry no tumour mask (seg): cannot compute metrics")
    return maps


def _without_ignore(mask: np.ndarray, slices: SliceSet) -> np.ndarray:
    """``mask`` without the slices' ``ignore`` pixels (neither anomalous nor normal), when they carry any;
    the optional ``SliceSet.ignore`` comes from the data layer. Without it the mask is returned as is."""
    ignore = getattr(slices, "ignore", None)
    return mask if ignore is None else mask & ~np.asarray(ignore, dtype=bool)


def evaluate(*, val_maps: np.ndarray, val: SliceSet, healthy_maps: np.ndarray, val_healthy: SliceSet,
             test_maps: np.ndarray, test: SliceSet, post: PostProcess = PostProcess(),
             n_bootstrap: int = 1000, seed: int = 0) -> EvaluationResult:
    """Choose thresholds on validation, then measure the test slices at each of them."""
    if post.volume_only:
        raise UasbenchError("post-processing options median_3d and min_component_voxels act on whole volumes: "
                            "use the volume-level evaluation (evaluation.evaluate_volumes)")
    val_maps, val_mask = apply_postprocess(_check(val_maps, val, "val", False), val.brain, post)
    healthy_maps, healthy_mask = apply_postprocess(
        _check(healthy_maps, val_healthy, "val_healthy", False), val_healthy.brain, post)
    val_mask, healthy_mask = _without_ignore(val_mask, val), _without_ignore(healthy_mask, val_healthy)
    val_seg = None if val.seg is None else _without_ignore(np.asarray(val.seg, dtype=bool), val)
    thresholds = validation_thresholds(val_maps, val_seg, val_mask, healthy_maps, healthy_mask)

    # Only from here on is test data read.
    test_maps, test_mask = apply_postprocess(_check(test_maps, test, "test", True), test.brain, post)
    if len(test) == 0:
        raise UasbenchError("the test set is empty: nothing to evaluate")
    test_mask = _without_ignore(test_mask, test)
    seg = _without_ignore(np.asarray(test.seg, dtype=bool), test)
    thresholds["oracle_test"] = oracle_threshold(test_maps, seg, test_mask)

    per_slice: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, dict[str, int]] = {}
    per_slice[THRESHOLD_FREE], counts[THRESHOLD_FREE] = ranking_metrics(test_maps, seg, test_mask)
    for name, thr in thresholds.items():
        if thr.defined:
            per_slice[name], counts[name] = segmentation_metrics(test_maps, seg, test_mask, thr.value)
        else:
            per_slice[name] = {m: np.full(len(test), np.nan) for m in SEGMENTATION_METRICS}
            counts[name] = {}

    subjects: list[str] = []
    per_subject: dict[str, dict[str, list[float]]] = {}
    metrics: dict[str, dict[str, Summary]] = {}
    for key, values in per_slice.items():
        per_subject[key], metrics[key] = {}, {}
        for metric, vals in values.items():
            subjects, subj = subject_means(vals, test.subjects)
            per_subject[key][metric] = subj.tolist()
            metrics[key][metric] = summarize(subj, n_bootstrap, seed)

    return EvaluationResult(
        thresholds=thresholds, metrics=metrics, per_subject=per_subject, subjects=subjects,
        pooled=pooled_ranking_metrics(test_maps, seg, test_mask), counts=counts, post=post,
        n_bootstrap=n_bootstrap, seed=seed,
        n_slices={"val": len(val), "val_healthy": len(val_healthy), "test": len(test)},
    )
