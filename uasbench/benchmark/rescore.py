"""Score a finished run again with new test-time settings, from its checkpoint, without training again.

MMCCD's cost is at test time (masks x DDIM steps network passes per slice), so exploring those settings must
not pay for training each time. A rescore loads the run's checkpoint and the slices recorded in its
``scores.npz`` (validation, healthy validation, test: the very slices the parent scored), scores them with the
changed test-time fields, evaluates under the parent's post-processing, bootstrap and seed, and writes a new
complete run directory. Its manifest records the merged ``overrides`` (so leaderboards show it as its own
row, the same row as a fresh run with those settings), ``rescored_from`` and ``rescored_fields``.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uasbench.benchmark.run import evaluate_scores, provenance, read_loss_logs, score_splits, write_run_directory
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.protocol import EvaluationResult
from uasbench.files import check_output_folder
from uasbench.method import AnomalyMethod, MethodConfig, resolve_device, test_time_fields, training_fields
from uasbench.registry import get_method
from uasbench.results import (CHECKPOINT, METRICS_JSON, SCORES, ScoredSplits, identity_mismatch, new_run_name,
                              read_manifest, run_identity)

_RESCORED = re.compile(r"_rescored_\d{8}-\d{6}-\d{6}-[0-9a-f]{6}$")


def check_test_time_changes(method_cls: type[AnomalyMethod], changes: dict[str, Any]) -> None:
    """Only test-time fields may change without training: anything else is refused with one line."""
    allowed = test_time_fields(method_cls.Config)
    known = {f.name for f in dataclasses.fields(method_cls.Config)}
    training = sorted(set(changes) & known - allowed)
    if training:
        raise UsageError(f"--set {', '.join(training)}: training field(s) of method {method_cls.name!r}; rescore "
                         f"changes only test-time fields (valid: {', '.join(sorted(allowed)) or 'none'}); "
                         "use `uasbench run` to train again")


def rescored_config(manifest: dict[str, Any], changes: dict[str, Any]) -> MethodConfig:
    """The config of the run that ``manifest`` records, with the test-time ``changes`` on top."""
    method_cls = get_method(manifest["method"])
    check_test_time_changes(method_cls, changes)
    return method_cls.config_for(manifest["profile"], {**(manifest.get("overrides") or {}), **changes})


def load_for_rescore(run_dir: Path, changes: dict[str, Any], device: str = "auto"
                     ) -> tuple[dict[str, Any], AnomalyMethod, ScoredSplits]:
    """The parent's manifest, its fitted method with ``changes`` applied (re-tuned on validation), its slices."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    method_cls = get_method(manifest["method"])
    config = rescored_config(manifest, changes)
    if not (run_dir / CHECKPOINT).is_file():
        raise UasbenchError(f"run {run_dir} has no {CHECKPOINT} to rescore from")
    method = method_cls.load(run_dir / CHECKPOINT, device=resolve_device(device))
    if training_fields(method.config) != training_fields(config):
        raise UasbenchError(f"{run_dir / CHECKPOINT} was not trained with the config its manifest records")
    _check_identity(run_dir, manifest, method, config)
    method.config = config
    parent = ScoredSplits.load(run_dir / SCORES)
    method.retune(parent.val)
    return manifest, method, parent


def _check_identity(run_dir: Path, manifest: dict[str, Any], method: AnomalyMethod, config: MethodConfig) -> None:
    """The checkpoint must be the network of the run its manifest describes (seed, pair, data, split,
    protocol); checkpoints written before the identity was stored are checked on their seed."""
    where = run_dir / CHECKPOINT
    if method.run_identity is None:
        if method.seed != manifest.get("seed"):
            raise UasbenchError(f"{where} was trained with seed {method.seed}, but the run records seed "
                                f"{manifest.get('seed')}: refused (the checkpoint belongs to another run)")
        return
    try:
        expected = run_identity(method=manifest["method"], pair=manifest["pair"], profile=manifest["profile"],
                                seed=manifest["seed"], training_config=training_fields(config),
                                data_fingerprint=manifest["data_fingerprint"],
                                split_sha256=manifest["split_sha256"], protocol=manifest["protocol"])
    except KeyError as exc:
        raise UasbenchError(f"{run_dir / 'manifest.json'} lacks {exc}; it was not written by `uasbench run`") from None
    problem = identity_mismatch(expected, method.run_identity)
    if problem:
        raise UasbenchError(f"{where} was made for another run than {run_dir.name} ({problem}): refused")


def rescore(run_dir: Path, changes: dict[str, Any], *, preset: str | None = None, out: Path | None = None,
            device: str = "auto", log: Callable[[str], None] = print) -> tuple[Path, EvaluationResult]:
    """Rescore ``run_dir`` with the test-time ``changes`` (on top of a named ``preset``); write and return a new
    run directory (in ``out``, default beside the parent) and its evaluation."""
    run_dir = Path(run_dir)
    if out is not None:
        check_output_folder(out, "--out")
    if preset is not None:
        manifest = read_manifest(run_dir)
        changes = {**get_method(manifest["method"]).preset_overrides(preset, manifest["profile"]), **changes}
    if not changes:
        raise UsageError("nothing to rescore: give --set NAME=VALUE of a test-time field "
                         "(e.g. --set ddim_steps=20)")
    manifest, method, parent = load_for_rescore(run_dir, changes, device)
    log(f"rescoring {run_dir.name} with {', '.join(f'{k}={v}' for k, v in changes.items())}: "
        f"{len(parent.val)} validation, {len(parent.val_healthy)} healthy validation, {len(parent.test)} test slices")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    scored = score_splits(method, parent.val, parent.val_healthy, parent.test)
    timings["score_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate_scores(scored, PostProcess.from_dict(manifest["postprocess"]),
                             n_bootstrap=_parent_bootstrap(run_dir), seed=manifest["seed"])
    timings["evaluate_s"] = time.perf_counter() - start

    parent_name = _RESCORED.sub("", run_dir.name)  # a rescore of a rescore keeps one suffix
    final = (out if out is not None else run_dir.parent) / new_run_name(f"{parent_name}_rescored")
    record = {**manifest,
              "overrides": {**(manifest.get("overrides") or {}), **changes},
              "config": dataclasses.asdict(method.config),
              "rescored_from": str(run_dir.resolve()),
              "rescored_fields": changes,
              **provenance(method.device, timings),  # wall times: no data loading, no training
              "complete": True}
    write_run_directory(final, method, scored, result, record,
                        loss_logs=read_loss_logs(run_dir))
    return final, result


def _parent_bootstrap(run_dir: Path) -> int:
    """The parent's bootstrap size (recorded in its metrics), so both runs' intervals are comparable."""
    try:
        return int(json.loads((run_dir / METRICS_JSON).read_text())["n_bootstrap"])
    except (OSError, ValueError, KeyError) as exc:
        raise UasbenchError(f"cannot read the bootstrap size from {run_dir / METRICS_JSON}: {exc}") from None
