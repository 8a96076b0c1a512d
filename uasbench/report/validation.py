"""What the leaderboard checks in every run before ranking it: it trusts nothing it reads.

A shared results folder may hold runs edited by hand, copied from elsewhere or planted. A run is ranked only
when its manifest has the types ``uasbench run`` writes (checked by ``RunManifest.from_dict``), its method and
pair agree with its checkpoint (read with the plain-data loader, tensors mapped rather than read) and with its folder name, and every metric is
finite and inside its range. Any other run is skipped with one line saying why; it is never dropped silently
and never merged into another method's row.

Symbolic links to run folders are reported, not followed: a link can bring in a run from outside the results
folder (whose files the page would then link to) or make one run count twice.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from uasbench.checkpoints import load_checkpoint
from uasbench.errors import UasbenchError
from uasbench.manifest import RunManifest
from uasbench.modalities import Pair
from uasbench.results import CHECKPOINT, METRICS_JSON

#: Each metric's allowed range (inclusive); a metric not listed must only be finite.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "dice": (0.0, 1.0), "jaccard": (0.0, 1.0), "precision": (0.0, 1.0), "recall": (0.0, 1.0),
    "auroc": (0.0, 1.0), "auprc": (0.0, 1.0), "auroc_image_official": (0.0, 1.0), "assd": (0.0, math.inf),
}
#: Floating-point slack at a range's ends: a mean of per-subject AUPRCs of 1.0 can be stored as 1.0000000000000002.
RANGE_SLACK = 1e-9
_SUMMARY_VALUES = ("mean", "std", "ci_low", "ci_high")


def manifest_problem(manifest: RunManifest, run_dir: Path) -> str | None:
    """Why a manifest cannot be ranked although its fields have the right types (``RunManifest.from_dict``
    checks those): a folder name that names another method or pair, or None."""
    method, pair = manifest.method, manifest.pair
    name = run_dir.name
    if not name.startswith(f"{method}_"):
        return f"its folder name does not start with its manifest's method {method!r}_"
    named_pair = name[len(method) + 1:].split("_")[0]
    if _looks_like_pair(named_pair) and named_pair != pair:
        return f"its folder name says pair {named_pair}, its manifest {pair}"
    return None


def _looks_like_pair(token: str) -> bool:
    try:
        Pair.parse(token)
    except UasbenchError:
        return False
    return True


def checkpoint_problem(manifest: RunManifest, run_dir: Path) -> str | None:
    """Why the run's checkpoint contradicts its manifest (another method, pair or seed), or None. A run without
    a checkpoint is not checked here (runs made by other tools)."""
    path = run_dir / CHECKPOINT
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        return f"{CHECKPOINT} is a symbolic link"
    try:
        header = load_checkpoint(path, header_only=True)
    except UasbenchError as exc:
        return str(exc)
    identity = header.get("identity") if isinstance(header.get("identity"), dict) else {}
    for key, found, recorded in (("method", header.get("method"), manifest.method),
                                 ("seed", header.get("seed"), manifest.seed),
                                 ("pair", identity.get("pair", manifest.pair), manifest.pair)):
        if found != recorded:
            return f"its checkpoint holds {key} {found!r}, its manifest says {recorded!r}"
    return None


def metrics_problem(metrics: dict[str, Any]) -> str | None:
    """Why the metrics cannot be ranked: a value that is not a number, not finite, or outside its metric's
    range (Dice, Jaccard, precision, recall, AUROC, AUPRC in [0, 1]; ASSD >= 0), or None. Undefined values
    are stored as null and stay allowed."""
    if not isinstance(metrics.get("metrics"), dict):
        return f"{METRICS_JSON} lacks metrics"
    for threshold, per_metric in metrics["metrics"].items():
        if not isinstance(per_metric, dict):
            return f"{METRICS_JSON}: metrics.{threshold} is not an object"
        for metric, summary in per_metric.items():
            if not isinstance(summary, dict):
                return f"{METRICS_JSON}: {threshold}/{metric} is not an object"
            values = [summary.get(k) for k in _SUMMARY_VALUES if k in summary]
            per_subject = (metrics.get("per_subject") or {}).get(threshold, {}).get(metric, [])
            if not isinstance(per_subject, list):
                return f"{METRICS_JSON}: per-subject {threshold}/{metric} is not a list"
            for value in values[:1] + values[2:] + per_subject:  # the std has no upper bound of its own
                problem = _value_problem(metric, value)
                if problem:
                    return f"{METRICS_JSON}: {threshold}/{metric} {problem}"
            if len(values) > 1 and values[1] is not None and not _finite_number(values[1]):
                return f"{METRICS_JSON}: {threshold}/{metric} std {values[1]!r} is not a finite number"
    return None


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value_problem(metric: str, value: Any) -> str | None:
    if value is None:
        return None
    if not _finite_number(value):
        return f"value {value!r} is not a finite number"
    low, high = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    if not low - RANGE_SLACK <= value <= high + RANGE_SLACK:
        return f"value {value!r} is outside [{low:g}, {high:g}]"
    return None


def linked_run_folders(results_dir: Path) -> list[tuple[str, str]]:
    """(path, reason) of every symbolic link to a folder under ``results_dir`` (hidden ones aside): reported as
    skipped, never followed."""
    found = []
    for folder, dirs, _ in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in list(dirs):
            path = Path(folder) / name
            if path.is_symlink():
                dirs.remove(name)
                found.append((str(path), f"a symbolic link to {os.readlink(path)}, not followed (a link can bring "
                                         "in a run from outside this results folder or count one run twice); "
                                         "copy the run folder instead"))
    return found
