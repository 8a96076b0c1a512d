"""Volume-, lesion- and healthy-scan-level evaluation: the entry point beside ``evaluate.evaluate``.

Same guarantee as the slice protocol: the reportable thresholds (``val_dice``: best mean per-volume Dice
on the validation volumes; ``fpr_1``/``fpr_5``: 1 % / 5 % of the healthy validation scans' evaluation-mask
voxels above the threshold) are fixed from validation arrays before the test arrays are read; the oracle
(``oracle_test``) is the Dice search on the test volumes, flagged as an upper bound.

Test volumes with lesion voxels give the volume metrics (``volumes.VOLUME_METRICS``, threshold-free
``auroc``/``auprc``) and the lesion metrics (``lesions.LESION_METRICS``); test volumes without any give
the healthy-scan metrics (false-positive voxel fraction and false-positive lesions at each threshold).
Lesion-volume metrics are also summarised by size tercile and, when kinds are given, by lesion kind.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.evaluation.lesions import LESION_METRICS, LesionRule, lesion_metrics
from uasbench.evaluation.metrics import Summary, summarize, summary_from_dict
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.evaluate import THRESHOLD_FREE, _nan_to_none, _none_to_nan
from uasbench.evaluation.strata import group_summaries, kind_groups, size_terciles
from uasbench.evaluation.thresholds import (
    Threshold,
    volume_oracle_threshold,
    volume_validation_thresholds,
)
from uasbench.evaluation.volumes import (
    VOLUME_METRICS,
    VOLUME_RANKING,
    Volume,
    healthy_false_positives,
    postprocess_volume,
    segment_volume,
    stack_volumes,
    volume_overlap,
    volume_ranking,
)

HEALTHY_METRICS = ("fp_voxel_fraction", "fp_lesions")

PerSubject = dict[str, dict[str, list[float]]]
Summaries = dict[str, dict[str, Summary]]


@dataclass
class VolumeEvaluationResult:
    """Everything ``evaluate_volumes`` measured; ``to_dict()`` is JSON-able (NaN as null).

    ``metrics``/``per_subject``: ``threshold_free`` and each threshold name -> metric -> Summary / values
    in the order of ``subjects`` (the test volumes with lesions). ``healthy``/``healthy_per_subject``: the
    same per threshold for ``healthy_subjects``. ``strata``: ``{"size": {"cutoffs": [q1, q2], "groups":
    {name: {"subjects": [...], "metrics": {...}}}}}`` and, with kinds, ``"kind"`` (no cut-offs).
    """

    thresholds: dict[str, Threshold]
    metrics: Summaries
    per_subject: PerSubject
    subjects: list[str]
    lesion_voxels: list[int]
    healthy: Summaries
    healthy_per_subject: PerSubject
    healthy_subjects: list[str]
    strata: dict[str, Any]
    post: PostProcess
    rule: LesionRule
    n_bootstrap: int
    seed: int
    n_volumes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        def summaries(d: Summaries) -> dict[str, Any]:
            return {k: {m: s.to_dict() for m, s in v.items()} for k, v in d.items()}

        def values(d: PerSubject) -> dict[str, Any]:
            return {k: {m: [float(x) for x in v] for m, v in vals.items()} for k, vals in d.items()}

        strata = {name: {**({"cutoffs": s["cutoffs"]} if "cutoffs" in s else {}),
                         "groups": {g: {"subjects": list(gd["subjects"]), "metrics": summaries(gd["metrics"])}
                                    for g, gd in s["groups"].items()}}
                  for name, s in self.strata.items()}
        return _nan_to_none({
            "thresholds": {k: t.to_dict() for k, t in self.thresholds.items()},
            "metrics": summaries(self.metrics), "per_subject": values(self.per_subject),
            "subjects": list(self.subjects), "lesion_voxels": [int(v) for v in self.lesion_voxels],
            "healthy": summaries(self.healthy), "healthy_per_subject": values(self.healthy_per_subject),
            "healthy_subjects": list(self.healthy_subjects), "strata": strata,
            "post": self.post.to_dict(), "rule": self.rule.to_dict(),
            "n_bootstrap": self.n_bootstrap, "seed": self.seed, "n_volumes": dict(self.n_volumes),
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VolumeEvaluationResult":
        def summaries(d: dict[str, Any]) -> Summaries:
            return {k: {m: summary_from_dict(s) for m, s in v.items()} for k, v in d.items()}

        def values(d: dict[str, Any]) -> PerSubject:
            return {k: {m: [_none_to_nan(x) for x in v] for m, v in vals.items()} for k, vals in d.items()}

        strata = {name: {**({"cutoffs": [_none_to_nan(c) for c in s["cutoffs"]]} if "cutoffs" in s else {}),
                         "groups": {g: {"subjects": list(gd["subjects"]), "metrics": summaries(gd["metrics"])}
                                    for g, gd in s["groups"].items()}}
                  for name, s in data["strata"].items()}
        return cls(
            thresholds={k: Threshold.from_dict(t) for k, t in data["thresholds"].items()},
            metrics=summaries(data["metrics"]), per_subject=values(data["per_subject"]),
            subjects=list(data["subjects"]), lesion_voxels=[int(v) for v in data["lesion_voxels"]],
            healthy=summaries(data["healthy"]), healthy_per_subject=values(data["healthy_per_subject"]),
            healthy_subjects=list(data["healthy_subjects"]), strata=strata,
            post=PostProcess.from_dict(data["post"]), rule=LesionRule.from_dict(data["rule"]),
            n_bootstrap=int(data["n_bootstrap"]), seed=int(data["seed"]), n_volumes=dict(data["n_volumes"]),
        )


def _volumes(maps: np.ndarray, slices: SliceSet, name: str) -> list[Volume]:
    maps = np.asarray(maps)
    if maps.shape != slices.brain.shape:
        raise UasbenchError(f"{name}_maps has shape {maps.shape}, expected {slices.brain.shape} (one map per slice)")
    return stack_volumes(maps, slices.brain, slices.subjects, slices.z, slices.seg,
                         getattr(slices, "ignore", None))  # SliceSet.ignore: optional, from the data layer


def _processed(volumes: list[Volume], post: PostProcess) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(maps, truth, mask) per volume after post-processing."""
    return [(maps, v.truth, mask) for v in volumes for maps, mask in [postprocess_volume(v, post)]]


def evaluate_volumes(*, val_maps: np.ndarray, val: SliceSet, healthy_maps: np.ndarray, val_healthy: SliceSet,
                     test_maps: np.ndarray, test: SliceSet, kinds: Mapping[str, str] | None = None,
                     post: PostProcess = PostProcess(), rule: LesionRule = LesionRule(),
                     n_bootstrap: int = 1000, seed: int = 0) -> VolumeEvaluationResult:
    """Choose volume-level thresholds on validation, then measure the test volumes at each of them.

    The slice sets may hold any slices of a subject (a slab, every brain slice, with gaps); each subject's
    slices become one volume. ``kinds`` maps test subjects to a lesion kind for the kind strata.
    """
    def segmenter(maps: np.ndarray, mask: np.ndarray, t: float) -> np.ndarray:
        return segment_volume(maps, mask, t, post, rule)

    search = segmenter if post.min_component_voxels > 1 else None
    val_vols = _volumes(val_maps, val, "val")
    healthy_vols = _volumes(healthy_maps, val_healthy, "val_healthy")
    thresholds = volume_validation_thresholds(
        _processed(val_vols, post), [(m, k) for m, _, k in _processed(healthy_vols, post)], search)

    # Only from here on is test data read.
    test_vols = _volumes(test_maps, test, "test")
    if not test_vols:
        raise UasbenchError("the test set is empty: nothing to evaluate")
    processed = dict(zip((v.subject for v in test_vols), _processed(test_vols, post)))
    lesion = [v for v in test_vols if v.lesion_voxels > 0]
    healthy = [v for v in test_vols if v.lesion_voxels == 0]
    thresholds["oracle_test"] = volume_oracle_threshold([processed[v.subject] for v in lesion], search)

    subjects = [v.subject for v in lesion]
    threshold_free = [volume_ranking(*processed[s]) for s in subjects]
    per_subject: PerSubject = {THRESHOLD_FREE: {m: [r[m] for r in threshold_free] for m in VOLUME_RANKING}}
    healthy_per_subject: PerSubject = {}
    for name, thr in thresholds.items():
        rows, healthy_rows = [], []
        for s in subjects:
            maps, truth, mask = processed[s]
            if thr.defined:
                pred = segmenter(maps, mask, thr.value)
                rows.append({**volume_overlap(pred, truth), **lesion_metrics(pred, truth, rule)})
            else:
                rows.append({m: float("nan") for m in (*VOLUME_METRICS, *LESION_METRICS)})
        for v in healthy:
            maps, _, mask = processed[v.subject]
            healthy_rows.append(healthy_false_positives(segmenter(maps, mask, thr.value), mask, rule)
                                if thr.defined else {m: float("nan") for m in HEALTHY_METRICS})
        per_subject[name] = {m: [r[m] for r in rows] for m in (*VOLUME_METRICS, *LESION_METRICS)}
        healthy_per_subject[name] = {m: [r[m] for r in healthy_rows] for m in HEALTHY_METRICS}

    def summaries(d: PerSubject) -> Summaries:
        return {k: {m: summarize(np.asarray(v, dtype=float), n_bootstrap, seed) for m, v in vals.items()}
                for k, vals in d.items()}

    lesion_voxels = [v.lesion_voxels for v in lesion]
    cutoffs, sizes = size_terciles(subjects, lesion_voxels)
    strata: dict[str, Any] = {"size": {"cutoffs": cutoffs, "groups": {
        g: {"subjects": members, "metrics": group_summaries(per_subject, subjects, members, n_bootstrap, seed)}
        for g, members in sizes.items()}}}
    if kinds is not None:
        strata["kind"] = {"groups": {
            g: {"subjects": members, "metrics": group_summaries(per_subject, subjects, members, n_bootstrap, seed)}
            for g, members in kind_groups(subjects, kinds).items()}}

    return VolumeEvaluationResult(
        thresholds=thresholds, metrics=summaries(per_subject), per_subject=per_subject, subjects=subjects,
        lesion_voxels=lesion_voxels, healthy=summaries(healthy_per_subject),
        healthy_per_subject=healthy_per_subject, healthy_subjects=[v.subject for v in healthy], strata=strata,
        post=post, rule=rule, n_bootstrap=n_bootstrap, seed=seed,
        n_volumes={"val": len(val_vols), "val_healthy": len(healthy_vols), "test": len(lesion),
                   "test_healthy": len(healthy)},
    )
