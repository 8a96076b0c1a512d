"""Run directories: what one benchmark run leaves behind, written so that it is never half-finished.

A run directory holds ``manifest.json`` (what ran, on what, how long), ``scores.npz`` (the raw anomaly
maps with the labels and brain masks needed to evaluate them again, including the T2 brain mask the
official MMCCD evaluation uses; runs made before it was stored lack it), ``metrics.json``/``metrics.csv`` and
``checkpoint.pt``. It is assembled in a hidden staging folder and renamed into place only when every
file is written, so an interrupted run never leaves a directory that looks finished; ``manifest.json``
carries ``"complete": true`` as a second guard for readers.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.files import atomic_write, make_folder, write_text_atomic
from uasbench.manifest import MANIFEST, RunManifest, read_manifest_file

SCORES = "scores.npz"
METRICS_JSON = "metrics.json"
METRICS_OFFICIAL_JSON = "metrics_mmccd_official.json"  # `uasbench evaluate --protocol mmccd-official`
METRICS_CSV = "metrics.csv"
CHECKPOINT = "checkpoint.pt"
# A cross-dataset run folder holds one file per test dataset <name> in each of these folders: slice-level
# metrics (<name>.json), volume-, lesion- and healthy-level results (<name>.json) and score maps (<name>.npz).
CROSS_METRICS = "metrics"
CROSS_VOLUMES = "volumes"
CROSS_SCORES = "scores"
STAGING_PREFIX = ".tmp-"  # run directories being assembled; hidden, never read as runs
_SPLITS = ("val", "healthy", "test")


def new_run_name(prefix: str) -> str:
    """``<prefix>_<UTC date-time with microseconds>-<random>``: unique even for jobs started in the same
    second on different machines, and still sorted by time."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return f"{prefix}_{stamp}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside ``final``; rename it to ``final`` only if the block succeeds.

    The staging folder has a unique hidden name and is created with the default mode, so the umask decides
    who may read the finished run (tempfile.mkdtemp would make it private to its owner). A SIGTERM (a
    scheduler, ``kill``, the local executor stopping its workers) while it is written becomes an exception,
    so the staging folder is removed instead of left behind (SIGKILL cannot be caught).
    """
    make_folder(final.parent, final.parent)
    if os.path.lexists(final):
        raise UasbenchError(f"run directory {final} already exists")
    staging = final.parent / f"{STAGING_PREFIX}{final.name}-{secrets.token_hex(4)}"
    staging.mkdir()  # never follows a link: fails if anything has the name
    try:
        with _sigterm_raises():
            yield staging
            if os.path.lexists(final):  # rename would replace an empty folder silently
                raise UasbenchError(f"run directory {final} already exists")
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class Terminated(SystemExit):
    """SIGTERM arrived while a run folder was written (exit status 143, as the default action gives)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM raises ``Terminated`` instead of ending the process at
    once, so ``finally`` and ``except`` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


#: What a checkpoint and a work folder were made for; anything else is refused (``identity_mismatch``).
IDENTITY_FIELDS = ("method", "pair", "profile", "seed", "training_config_sha256", "data_fingerprint",
                   "split_sha256", "protocol")


def run_identity(*, method: str, pair: str, profile: str, seed: int, training_config: dict[str, Any],
                 data_fingerprint: str, split_sha256: str, protocol: dict[str, Any]) -> dict[str, Any]:
    """The identity of a trained network: method, pair, profile, seed, a hash of the config's training fields,
    the data fingerprint (data and preprocessing), the split checksum and the preprocessing protocol."""
    config_text = json.dumps(training_config, sort_keys=True, default=_json_default)
    identity = {"method": method, "pair": str(pair), "profile": profile, "seed": seed,
                "training_config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
                "data_fingerprint": data_fingerprint, "split_sha256": split_sha256, "protocol": protocol}
    return json.loads(json.dumps(identity, sort_keys=True, default=_json_default))  # as stored: lists, not tuples


def identity_mismatch(expected: dict[str, Any], found: Any) -> str | None:
    """None when ``found`` is ``expected``; else the differing fields in words (``seed 1, not 0``)."""
    if not isinstance(found, dict):
        return "it records no run identity"
    diffs = []
    for key in IDENTITY_FIELDS:
        if found.get(key) == expected.get(key):
            continue
        if key in ("method", "pair", "profile", "seed"):
            diffs.append(f"{key} {found.get(key)!r}, not {expected.get(key)!r}")
        else:  # hashes and the protocol say little to a reader: name what differs
            diffs.append(f"another {key.removesuffix('_sha256').replace('_', ' ')}")
    return "; ".join(diffs) or None


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (unique temp file + rename), so a reader never sees half a file."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass(frozen=True)
class ScoredSplits:
    """Anomaly maps of the three evaluated splits with the slices they belong to."""

    val_maps: np.ndarray
    val: SliceSet
    healthy_maps: np.ndarray
    val_healthy: SliceSet
    test_maps: np.ndarray
    test: SliceSet

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for key, maps, slices in self._parts():
            arrays[f"{key}_maps"] = maps.astype(np.float32)
            arrays[f"{key}_x"] = slices.x.astype(np.float32)
            arrays[f"{key}_brain"] = slices.brain.astype(bool)
            arrays[f"{key}_seg"] = (slices.seg if slices.seg is not None
                                    else np.zeros_like(slices.brain)).astype(bool)
            arrays[f"{key}_subjects"] = np.asarray(slices.subjects, dtype=str)
            arrays[f"{key}_z"] = np.asarray(slices.z, dtype=np.int64)
            if slices.brain_t2 is not None:  # for the official MMCCD evaluation; absent in older runs
                arrays[f"{key}_brain_t2"] = slices.brain_t2.astype(bool)
        with atomic_write(Path(path)) as handle:  # a full disk: one line naming the file
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "ScoredSplits":
        if not zipfile.is_zipfile(path):  # np.load would otherwise try to read it as a pickle
            raise UasbenchError(f"cannot read cached scores {path}: it is missing, truncated or not a .npz archive")
        try:
            with np.load(path) as data:
                parts = {}
                for key in _SPLITS:
                    parts[f"{key}_maps"] = data[f"{key}_maps"]
                    parts[key] = SliceSet(
                        x=data[f"{key}_x"], brain=data[f"{key}_brain"], seg=data[f"{key}_seg"],
                        subjects=tuple(str(s) for s in data[f"{key}_subjects"]), z=data[f"{key}_z"],
                        brain_t2=data[f"{key}_brain_t2"] if f"{key}_brain_t2" in data else None)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise UasbenchError(f"cannot read cached scores {path}: {exc}") from None
        return cls(val_maps=parts["val_maps"], val=parts["val"], healthy_maps=parts["healthy_maps"],
                   val_healthy=parts["healthy"], test_maps=parts["test_maps"], test=parts["test"])

    def _parts(self) -> list[tuple[str, np.ndarray, SliceSet]]:
        return [("val", self.val_maps, self.val), ("healthy", self.healthy_maps, self.val_healthy),
                ("test", self.test_maps, self.test)]


def read_manifest(run_dir: Path, required: tuple[str, ...] = ()) -> RunManifest:
    """The manifest of a finished run, its fields checked (``RunManifest.from_dict``); a missing, unfinished or
    malformed one (not a JSON object, a field of the wrong type, or without one of the ``required`` stored
    keys) is a clear error naming it."""
    return read_manifest_file(Path(run_dir) / MANIFEST, required=required)


def manifest_paths(results_dir: Path) -> list[Path]:
    """Every ``manifest.json`` under ``results_dir``, at any depth, except in hidden folders (staging
    folders of runs being written, the ``.work`` folder), sorted."""
    results_dir = Path(results_dir)
    return sorted(p for p in results_dir.rglob(MANIFEST)
                  if not any(part.startswith(".") for part in p.relative_to(results_dir).parts[:-1]))


def official_metrics(run_dir: Path, manifest: RunManifest) -> dict[str, Any]:
    """The official MMCCD evaluation of one run (``evaluation.official``), from its ``scores.npz``."""
    from uasbench.evaluation.official import evaluate_official_run

    scored = ScoredSplits.load(Path(run_dir) / SCORES)
    return evaluate_official_run(scored.test_maps, scored.test, manifest.pair, manifest.seed,
                                 where=f"{run_dir}: {SCORES}")


def write_official_metrics(run_dir: Path, manifest: RunManifest) -> tuple[Path, dict[str, Any]]:
    """``official_metrics`` of a run, written beside its ``metrics.json``; (path, result)."""
    result = official_metrics(run_dir, manifest)
    path = Path(run_dir) / METRICS_OFFICIAL_JSON
    write_json(path, result)
    return path, result
