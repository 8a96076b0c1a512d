"""Finished runs as rows for the report: found at any depth of a results folder, each one checked
(``report.validation``) before it is ranked, one row per (run, threshold, metric) with its per-subject values."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uasbench.choices import EVALUATION_PROTOCOLS as PROTOCOLS
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.official import PROTOCOL as OFFICIAL
from uasbench.manifest import MANIFEST, RunManifest
from uasbench.report import validation
from uasbench.results import METRICS_JSON, manifest_paths, official_metrics

log = logging.getLogger(__name__)

_REPORTED: set[tuple[str, str]] = set()  # skipped runs already reported by this process


def collect_runs(results_dir: Path, protocol: str = "project",
                 warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (run, threshold, metric) for every complete run found at any depth, with the run's
    per-subject values (``subjects``, ``subject_values``) beside the mean (``value``).

    ``protocol="mmccd-official"`` recomputes the official MMCCD evaluation from each run's maps instead
    of reading ``metrics.json`` (threshold key ``mmccd_official``). Runs whose manifest is not marked
    complete or that lack ``metrics.json`` are unfinished: how many is logged and kept in
    ``df.attrs["ignored"]`` (their folders in ``df.attrs["ignored_runs"]``). Runs that fail
    ``uasbench.report.validation``'s checks (and links to run folders) are skipped: one warning line each,
    and ``df.attrs["skipped"]`` lists (run, reason). ``warn`` receives those lines (default: this module's
    logger), each once per process.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown --protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UasbenchError(f"results folder {results_dir} does not exist")
    rows: list[dict[str, Any]] = []
    ignored: list[str] = []
    skipped = validation.linked_run_folders(results_dir)  # (run, reason): reported, never ranked
    for manifest_path in manifest_paths(results_dir):  # hidden staging folders hold no finished run
        run_dir = manifest_path.parent
        try:
            stored = read_json(manifest_path)
        except UasbenchError as exc:
            skipped.append((str(run_dir), str(exc)))
            continue
        if isinstance(stored.get("datasets"), dict):  # a cross-dataset run: report.levels tabulates it
            continue
        if stored.get("complete") is not True or not (run_dir / METRICS_JSON).is_file():
            ignored.append(str(run_dir))
            continue
        try:
            manifest = RunManifest.from_dict(stored, MANIFEST)
            metrics = _checked_run(run_dir, manifest, protocol)
        except UasbenchError as exc:
            skipped.append((str(run_dir), str(exc)))
            continue
        base = {"method": manifest.method, "pair": manifest.pair, "profile": manifest.profile,
                "seed": manifest.seed, "run": str(run_dir)}
        base["variant"] = variant_label(manifest.profile, manifest.override_values)
        base["input_only"] = manifest.train_modalities == ["input"]
        base["benchmark"] = json.dumps([manifest.data_fingerprint, manifest.postprocess], sort_keys=True)
        base["split"] = manifest.split_sha256
        base["empty_predictions"] = len(metrics.get("empty_predictions", []))
        subjects = tuple(metrics.get("subjects", ()))
        for threshold, per_metric in metrics["metrics"].items():
            chosen = metrics.get("thresholds", {}).get(threshold, {}).get("value")
            for metric, summary in per_metric.items():
                value = summary.get("mean")
                values = metrics.get("per_subject", {}).get(threshold, {}).get(metric, [])
                rows.append(base | {"threshold": threshold, "threshold_value": chosen, "metric": metric,
                                    "value": np.nan if value is None else float(value), "subjects": subjects,
                                    "subject_values": tuple(np.nan if v is None else float(v) for v in values)})
    if ignored:
        log.warning("ignored %d incomplete run(s) under %s", len(ignored), results_dir)
    for run, reason in skipped:
        if (run, reason) not in _REPORTED:  # the page and the grid's figures read the same runs again
            _REPORTED.add((run, reason))
            (warn or log.warning)(f"skipped run {run}: {reason}")
    df = pd.DataFrame(rows, columns=["method", "pair", "profile", "variant", "seed", "run", "input_only", "benchmark",
                                     "split", "empty_predictions", "threshold", "threshold_value", "metric",
                                     "value", "subjects", "subject_values"])
    _check_one_benchmark(df, results_dir)
    df.attrs["ignored"] = len(ignored)
    df.attrs["ignored_runs"] = ignored
    df.attrs["skipped"] = skipped
    df.attrs["protocol"] = protocol
    return df


def _checked_run(run_dir: Path, manifest: RunManifest, protocol: str) -> dict[str, Any]:
    """The run's metrics after ``validation``'s checks of its manifest, checkpoint and metrics; UasbenchError
    with the reason to skip it otherwise."""
    problem = validation.manifest_problem(manifest, run_dir) or validation.checkpoint_problem(manifest, run_dir)
    if problem:
        raise UasbenchError(problem)
    if protocol == OFFICIAL:
        metrics = official_metrics(run_dir, manifest)
    else:
        metrics = read_json(run_dir / METRICS_JSON)
        if "metrics" not in metrics:
            raise UasbenchError(f"{run_dir / METRICS_JSON} lacks metrics")
        if "per_subject" not in metrics or "subjects" not in metrics:
            raise UasbenchError(f"{run_dir / METRICS_JSON} has no per-subject values (older format): "
                                f"run `uasbench evaluate {run_dir}` to rewrite it")
    problem = validation.metrics_problem(metrics)
    if problem:
        raise UasbenchError(problem)
    subjects = metrics.get("subjects", ())
    for threshold, per_metric in metrics["metrics"].items():
        for metric in per_metric:
            values = metrics.get("per_subject", {}).get(threshold, {}).get(metric, [])
            if len(values) != len(subjects):
                raise UasbenchError(f"{len(values)} per-subject values of {threshold}/{metric} for "
                                    f"{len(subjects)} subjects")
    return metrics


def variant_label(profile: str, overrides: dict[str, Any]) -> str:
    """The profile plus any ``--set`` overrides: runs of one method with different settings are separate rows."""
    return "; ".join([profile, *(f"{k}={v}" for k, v in sorted(overrides.items()))])


def _check_one_benchmark(df: pd.DataFrame, results_dir: Path) -> None:
    """Refuse to rank runs that were not made under the same conditions: one data folder and
    preprocessing protocol (the data fingerprint), one post-processing, and per seed one split file.
    A table mixing them would compare methods on different test slices without saying so."""
    runs = df.drop_duplicates("run")
    if runs["benchmark"].nunique() > 1:
        a, b = runs.drop_duplicates("benchmark")["run"].iloc[:2]
        raise UasbenchError(f"runs under {results_dir} come from different data, preprocessing or "
                            f"post-processing ({a} vs {b}): tabulate each benchmark's folder on its own")
    for seed, group in runs.groupby("seed"):
        if group["split"].nunique(dropna=False) > 1:
            a, b = group.drop_duplicates("split")["run"].iloc[:2]
            raise UasbenchError(f"runs under {results_dir} with seed {seed} used different split files "
                                f"({a} vs {b}): tabulate each benchmark's folder on its own")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UasbenchError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data
