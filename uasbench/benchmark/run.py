"""The engine that runs one method on one benchmark: data -> fit -> score -> evaluate -> run directory.

Methods only fit and score (anomalib's split between models and the engine that runs them); everything
that must be identical across methods (split, preprocessing, seed, thresholds, metrics, what a method
may see) lives here and in ``uasbench.evaluation``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from uasbench.data.benchmark_data import CrossDatasetData, Source, TestDataset, load_benchmark_data, load_cross_dataset
from uasbench.data.preprocess import Preparation
from uasbench.data.slices import BenchmarkData, SliceSet
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.evaluate import EvaluationResult, evaluate
from uasbench.evaluation.evaluate_volumes import VolumeEvaluationResult, evaluate_volumes
from uasbench.files import (atomic_write, check_output_folder, locked, make_folder, write_bytes_atomic,
                            write_text_atomic)
from uasbench.manifest import MANIFEST_VERSION, RunManifest
from uasbench.method import AnomalyMethod, resolve_device, training_fields
from uasbench.modalities import Pair
from uasbench.nn.training import WORK_IDENTITY, seed_everything
from uasbench.registry import get_method, method_infos
from uasbench.results import (CHECKPOINT, CROSS_METRICS, CROSS_SCORES, CROSS_VOLUMES, MANIFEST, METRICS_CSV,
                              METRICS_JSON, SCORES, ScoredSplits, atomic_directory, identity_mismatch, new_run_name,
                              run_identity, write_json)

_VERSIONED_PACKAGES = ("uasbench", "torch", "numpy", "scipy", "monai", "medpy", "scikit-learn", "nibabel")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run; validated before any data is touched."""

    method: str
    pair: Pair
    profile: str = "quick"
    seed: int = 0
    device: str = "auto"
    data_root: Path | None = None  # None: the embedded phantom
    layout: str | None = None  # the data folder's layout (None: detected, or its dataset.toml card)
    card: Path | None = None  # a dataset card for the data folder
    split_file: Path | None = None
    out: Path = Path("results")
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    protocol: Preparation = Preparation()
    post: PostProcess = PostProcess()
    on_bad_case: str = "stop"
    n_bootstrap: int = 1000
    # Cross-dataset protocol (``run_cross_dataset``): healthy training scans of ``train_data``, each of
    # ``test_data`` validated and tested on its own. Empty: the within-dataset protocol above.
    train_data: tuple[Source, ...] = ()
    test_data: tuple[Source, ...] = ()

    @property
    def cross_dataset(self) -> bool:
        return bool(self.train_data)


def validate_spec(spec: RunSpec) -> tuple[type[AnomalyMethod], Any, torch.device]:
    """Fail fast on unknown method, profile, option or device (usage errors), before loading data."""
    if spec.post.volume_only and not spec.cross_dataset:
        raise UsageError("--min-component and --median-3d act on whole volumes: they need a cross-dataset run "
                         "(--train-data), whose volume-level evaluation applies them")
    if spec.test_data and not spec.cross_dataset:
        raise UsageError("test datasets without --train-data: give --train-data for a cross-dataset run")
    if spec.cross_dataset and not spec.test_data:
        raise UsageError("--train-data needs at least one --data test dataset")
    method_cls = get_method(spec.method)
    config = method_cls.config_for(spec.profile, spec.overrides)
    device = resolve_device(spec.device)
    check_output_folder(spec.out, "--out")
    return method_cls, config, device


def run_one(spec: RunSpec, log: Callable[[str], None] = print) -> tuple[Path, EvaluationResult]:
    """Run one method end to end and write a complete run directory; return its path and the result."""
    if spec.cross_dataset:
        raise UasbenchError("a run with --train-data is a cross-dataset run: use run_cross_dataset")
    method_cls, config, device = validate_spec(spec)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    data = load_benchmark_data(spec.data_root, spec.pair, protocol=spec.protocol, split_file=spec.split_file,
                               seed=spec.seed, on_bad_case=spec.on_bad_case, layout=spec.layout, card=spec.card)
    timings["data_s"] = time.perf_counter() - start
    log(f"data: {len(data.train)} training slices, {len(data.val)} validation, "
        f"{len(data.val_healthy)} healthy validation, {len(data.test)} test (split {data.split_sha256[:12]})")
    for problem in data.report["bad_cases_skipped"].values():
        log(f"skipped: {problem}")
    _check_testable(data)

    seed_everything(spec.seed)
    method = method_cls(config, device=device, seed=spec.seed)
    method.run_identity = run_identity(
        method=spec.method, pair=str(spec.pair), profile=spec.profile, seed=spec.seed,
        training_config=training_fields(config), data_fingerprint=data.fingerprint,
        split_sha256=data.split_sha256, protocol=data.protocol)
    workdir = make_folder(spec.out / ".work" / _run_key(spec, config, data), spec.out)  # no planted links

    start = time.perf_counter()
    with _training_lock(workdir, log):
        _claim_workdir(workdir, method.run_identity)
        method.fit(_training_view(method, data.train), data.val, val_healthy=data.val_healthy, workdir=workdir)
        loss_logs = read_loss_logs(workdir)
    timings["fit_s"] = time.perf_counter() - start

    start = time.perf_counter()
    scored = score_splits(method, data.val, data.val_healthy, data.test)
    timings["score_s"] = time.perf_counter() - start

    start = time.perf_counter()
    result = evaluate_scores(scored, spec.post, n_bootstrap=spec.n_bootstrap, seed=spec.seed)
    timings["evaluate_s"] = time.perf_counter() - start

    final = spec.out / new_run_name(f"{spec.method}_{spec.pair}_{spec.profile}_s{spec.seed}")
    write_run_directory(final, method, scored, result, _manifest(spec, method, data, device, timings, workdir),
                        loss_logs=loss_logs)  # the loss curves travel with the run
    return final, result


def write_run_directory(final: Path, method: AnomalyMethod, scored: ScoredSplits, result: EvaluationResult,
                        manifest: RunManifest, loss_logs: dict[str, bytes]) -> None:
    """Assemble a complete run directory in a staging folder and rename it to ``final`` (all or nothing)."""
    with atomic_directory(final) as staging:
        method.save(staging / CHECKPOINT)
        for name, content in loss_logs.items():
            write_bytes_atomic(staging / name, content)
        scored.save(staging / SCORES)
        write_metrics(staging, result)
        write_json(staging / MANIFEST, manifest.to_dict())


def score_splits(method: AnomalyMethod, val: SliceSet, val_healthy: SliceSet, test: SliceSet) -> ScoredSplits:
    """The fitted method's maps of the three evaluated splits."""
    return ScoredSplits(val_maps=method.score(val), val=val, healthy_maps=method.score(val_healthy),
                        val_healthy=val_healthy, test_maps=method.score(test), test=test)


def _check_testable(data: BenchmarkData) -> None:
    """Refuse before training a split whose test subjects hold no tumour slice: nothing could be evaluated."""
    if len(data.test) == 0:
        subjects = data.report["subjects"]["test"]
        raise UasbenchError(f"the test split has no slice with tumour ({subjects} test subject(s), none with "
                            f"tumour in z {data.protocol['z_start']}..{data.protocol['z_stop'] - 1}); "
                            "nothing to evaluate: put tumour cases in the test split")


@contextlib.contextmanager
def _training_lock(workdir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Only one job at a time trains in a work folder (jobs of the same identity share it).

    A second job waits for the first to finish training, then finds its final checkpoints and reuses them
    instead of training again (``train_network`` says so). The lock is an OS file lock (``flock``) on a file
    opened without following links, so a killed job releases it and a planted link is refused; the lock file
    gets the umask's permissions, which decide who may share it.
    """
    def wait() -> None:
        log(f"another job is training in {workdir}; waiting for it to finish, then reusing its checkpoints")

    with locked(workdir / "train.lock", wait):
        yield


def _claim_workdir(workdir: Path, identity: dict[str, Any]) -> None:
    """Record the run identity in a new work folder, or refuse a work folder made for another run (copied or
    linked from another seed, method, data or split); called while holding the training lock."""
    path = workdir / WORK_IDENTITY
    if os.path.lexists(path):
        try:
            found = json.loads(path.read_text(encoding="utf-8")) if not path.is_symlink() else None
        except (OSError, ValueError):
            found = None
        problem = identity_mismatch(identity, found)
        if problem:
            raise UasbenchError(f"work folder {workdir} was made for another run ({problem}): refused to reuse "
                                "it; delete it to train again")
        return
    if any(workdir.glob("ckpt_*.pt")):
        raise UasbenchError(f"work folder {workdir} holds checkpoints but no {WORK_IDENTITY} (made by an older "
                            "uasbench, or copied): refused to reuse them; delete the folder to train again")
    write_text_atomic(path, json.dumps(identity, indent=1, sort_keys=True) + "\n")


def read_loss_logs(folder: Path) -> dict[str, bytes]:
    """The ``loss_*.csv`` files of a work or run folder, which travel with a run; a link among them is refused
    (it could copy any file its reader may read into the shared results folder)."""
    logs = {}
    for path in sorted(folder.glob("loss_*.csv")):
        if path.is_symlink():
            raise UasbenchError(f"{path} is a symbolic link: refused to copy it into the run folder; remove it")
        logs[path.name] = path.read_bytes()
    return logs


def evaluate_scores(scored: ScoredSplits, post: PostProcess, *, n_bootstrap: int, seed: int) -> EvaluationResult:
    return evaluate(val_maps=scored.val_maps, val=scored.val, healthy_maps=scored.healthy_maps,
                    val_healthy=scored.val_healthy, test_maps=scored.test_maps, test=scored.test,
                    post=post, n_bootstrap=n_bootstrap, seed=seed)


def write_metrics(run_dir: Path, result: EvaluationResult) -> None:
    write_json(run_dir / METRICS_JSON, result.to_dict())
    with atomic_write(run_dir / METRICS_CSV) as handle:
        handle.write(result.to_frame().to_csv(index=False).encode("utf-8"))


def _training_view(method: AnomalyMethod, train: SliceSet) -> SliceSet:
    """A single-modality method never sees the target modality, so it cannot gain from it."""
    if "target" in method.train_modalities:
        return train
    return dataclasses.replace(train, y=None)


def _run_key(spec: RunSpec, config: Any, data: BenchmarkData) -> str:
    """Stable key of what determines training, so a rerun after an interruption finds its checkpoints, and a
    run that changes only test-time fields (``--set ddim_steps=20``) reuses the trained networks."""
    payload = {"method": spec.method, "pair": str(spec.pair), "profile": spec.profile, "seed": spec.seed,
               "config": training_fields(config), "data": data.fingerprint, "split": data.split_sha256}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{spec.method}_{spec.pair}_{spec.profile}_s{spec.seed}_{digest}"


# -- the cross-dataset protocol ------------------------------------------------------------------------



@dataclasses.dataclass(frozen=True)
class DatasetResult:
    """One test dataset's results: the slice protocol's (None when no test subject has a lesion slice) and the
    volume, lesion and healthy-scan levels'."""

    name: str
    slice_level: EvaluationResult | None
    volume_level: VolumeEvaluationResult


def run_cross_dataset(spec: RunSpec, log: Callable[[str], None] = print) -> tuple[Path, list[DatasetResult]]:
    """Train once on the healthy scans of ``spec.train_data``, then score, evaluate and store every test
    dataset on its own (thresholds from its own validation subjects); one run directory for all."""
    method_cls, config, device = validate_spec(spec)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = load_cross_dataset(list(spec.train_data), list(spec.test_data), spec.pair, protocol=spec.protocol,
                              seed=spec.seed, on_bad_case=spec.on_bad_case)
    timings["data_s"] = time.perf_counter() - start
    log(f"data: {len(data.train)} healthy training slices from {len(spec.train_data)} dataset(s); " + "; ".join(
        f"{t.name}: {len(t.val)} validation, {len(t.val_healthy)} healthy validation, {len(t.test)} test slices"
        for t in data.tests))
    for t in data.tests:
        _check_cross_testable(t)

    seed_everything(spec.seed)
    method = method_cls(config, device=device, seed=spec.seed)
    first_val, first_healthy, _ = data.tests[0].slice_sets()  # what a method may watch while it trains
    method.run_identity = run_identity(  # training data: the training datasets; its validation: the first test's
        method=spec.method, pair=str(spec.pair), profile=spec.profile, seed=spec.seed,
        training_config=training_fields(config),
        data_fingerprint="+".join(r["fingerprint"] for r in data.train_records),
        split_sha256=data.tests[0].record["split_sha256"], protocol=data.protocol)
    workdir = make_folder(spec.out / ".work" / _cross_run_key(spec, config, data), spec.out)  # no planted links
    start = time.perf_counter()
    with _training_lock(workdir, log):
        _claim_workdir(workdir, method.run_identity)
        method.fit(_training_view(method, data.train), first_val, val_healthy=first_healthy, workdir=workdir)
        loss_logs = read_loss_logs(workdir)
    timings["fit_s"] = time.perf_counter() - start

    results, scored = [], {}
    for t in data.tests:
        start = time.perf_counter()
        scored[t.name] = score_splits(method, t.val, t.val_healthy, t.test)
        timings[f"score_s:{t.name}"] = time.perf_counter() - start
        start = time.perf_counter()
        results.append(_evaluate_test_dataset(t, scored[t.name], spec))
        timings[f"evaluate_s:{t.name}"] = time.perf_counter() - start

    final = spec.out / new_run_name(f"{spec.method}_{spec.pair}_{spec.profile}_s{spec.seed}")
    manifest = RunManifest.from_dict({"manifest_version": MANIFEST_VERSION,  # the cross-dataset part goes to extra
                                      **_base_manifest(spec, method, device, timings, workdir),
                                      **cross_dataset_manifest(spec, data)})
    with atomic_directory(final) as staging:
        method.save(staging / CHECKPOINT)
        for name, content in loss_logs.items():
            write_bytes_atomic(staging / name, content)
        for sub in (CROSS_METRICS, CROSS_VOLUMES, CROSS_SCORES):
            (staging / sub).mkdir()
        for r in results:
            scored[r.name].save(staging / CROSS_SCORES / f"{r.name}.npz")
            if r.slice_level is not None:
                write_json(staging / CROSS_METRICS / f"{r.name}.json", r.slice_level.to_dict())
            write_json(staging / CROSS_VOLUMES / f"{r.name}.json", r.volume_level.to_dict())
        write_json(staging / MANIFEST, manifest.to_dict())
    return final, results


def _check_cross_testable(t: TestDataset) -> None:
    """Refuse before training a test dataset none of whose test subjects has a lesion in the scored slices."""
    if len(t.slice_index["test"]) == 0:
        raise UasbenchError(f"--data {t.record['root']}: none of its {t.record['subjects']['test']} test subject(s) "
                            "has a lesion in the scored slices; nothing to evaluate (give a split file that puts "
                            "lesion cases in test)")


def _evaluate_test_dataset(t: TestDataset, scored: ScoredSplits, spec: RunSpec) -> DatasetResult:
    """Both protocols on one test dataset: the volume levels on every scored slice, the slice protocol on its
    own picks of the same maps (the 3-D post-processing options do not apply there)."""
    volume = evaluate_volumes(val_maps=scored.val_maps, val=t.val, healthy_maps=scored.healthy_maps,
                              val_healthy=t.val_healthy, test_maps=scored.test_maps, test=t.test, kinds=t.kinds,
                              post=spec.post, n_bootstrap=spec.n_bootstrap, seed=spec.seed)
    ix = t.slice_index
    val, healthy, test = t.slice_sets()
    slice_level = evaluate(val_maps=scored.val_maps[ix["val"]], val=val,
                           healthy_maps=scored.healthy_maps[ix["val_healthy"]], val_healthy=healthy,
                           test_maps=scored.test_maps[ix["test"]], test=test,
                           post=dataclasses.replace(spec.post, median_3d=0, min_component_voxels=0),
                           n_bootstrap=spec.n_bootstrap, seed=spec.seed)
    return DatasetResult(t.name, slice_level, volume)


def _cross_run_key(spec: RunSpec, config: Any, data: CrossDatasetData) -> str:
    """As ``_run_key``: what determines training (the training datasets, not the test ones)."""
    payload = {"method": spec.method, "pair": str(spec.pair), "profile": spec.profile, "seed": spec.seed,
               "config": training_fields(config), "train": [r["fingerprint"] for r in data.train_records],
               "validation": data.tests[0].record["split_sha256"], "protocol": data.protocol}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{spec.method}_{spec.pair}_{spec.profile}_s{spec.seed}_cross_{digest}"


def cross_dataset_manifest(spec: RunSpec, data: CrossDatasetData) -> dict[str, Any]:
    """Everything the cross-dataset protocol adds to a manifest, under one key: per training and test dataset
    its layout, card, fingerprint, split and counts, and the shared preparation (protocol, post-processing).
    The leaderboard ranks runs together only when their ``identity`` (data and preparation) is equal, and
    per seed their ``split_identity`` (every test dataset's split)."""
    tests = {t.name: t.record for t in data.tests}
    identity = cross_identity([r["fingerprint"] for r in data.train_records],
                              {name: r["fingerprint"] for name, r in tests.items()}, data.protocol, spec.post.to_dict())
    return {"datasets": {"protocol": "cross-dataset", "train": list(data.train_records), "test": tests,
                         "preparation": {"protocol": data.protocol, "postprocess": spec.post.to_dict()},
                         "identity": identity,
                         "split_identity": split_identity({name: r["split_sha256"] for name, r in tests.items()})}}


def cross_identity(train: list[str], tests: dict[str, str], protocol: dict[str, Any], post: dict[str, Any]) -> str:
    """The data-and-preparation identity of a cross-dataset run (the grid computes it before running)."""
    return _digest({"train": train, "test": tests, "protocol": protocol, "postprocess": post})


def split_identity(splits: dict[str, str]) -> str:
    """The identity of a cross-dataset run's test splits (test dataset name -> split checksum)."""
    return _digest(splits)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _base_manifest(spec: RunSpec, method: AnomalyMethod, device: torch.device, timings: dict[str, float],
                   workdir: Path) -> dict[str, Any]:
    """What every cross-dataset manifest holds besides ``datasets``: the within-dataset manifest's keys that do
    not describe one dataset."""
    return {
        "method": spec.method, "method_source": method_infos()[spec.method].source, "profile": spec.profile,
        "overrides": spec.overrides, "config": dataclasses.asdict(method.config), "pair": str(spec.pair),
        "train_modalities": list(method.train_modalities), "test_modalities": list(method.test_modalities),
        "seed": spec.seed, "postprocess": spec.post.to_dict(),
        **provenance(device, timings), "workdir": str(workdir), "complete": True,
    }


def _manifest(spec: RunSpec, method: AnomalyMethod, data: BenchmarkData, device: torch.device,
              timings: dict[str, float], workdir: Path) -> RunManifest:
    return RunManifest(
        manifest_version=MANIFEST_VERSION,
        method=spec.method,
        method_source=method_infos()[spec.method].source,
        profile=spec.profile,
        overrides=spec.overrides,  # the --set fields that make this config differ from its profile
        config=dataclasses.asdict(method.config),
        pair=str(spec.pair),
        train_modalities=list(method.train_modalities),
        test_modalities=list(method.test_modalities),
        seed=spec.seed,
        data_root=str(spec.data_root) if spec.data_root else "embedded phantom",
        data_fingerprint=data.fingerprint,
        split_file=data.split_path,
        split_sha256=data.split_sha256,
        preparation=data.protocol,
        postprocess=spec.post.to_dict(),
        data_report=data.report,
        counts={"train": len(data.train), "val": len(data.val), "val_healthy": len(data.val_healthy),
                "test": len(data.test)},
        **provenance(device, timings),
        workdir=str(workdir),
        complete=True,
    )


def provenance(device: torch.device, timings: dict[str, float]) -> dict[str, Any]:
    """What a run manifest records about how it was made: package versions, code revision, device, wall times
    per phase and the time of writing (shared by runs and rescored runs)."""
    return {"versions": _versions(), "code_revision": _code_revision(), "device": _describe_device(device),
            "wall_times_s": {k: round(v, 3) for k, v in timings.items()},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _code_revision() -> str:
    """The git commit of the uasbench sources (with '+dirty' if modified), or 'unknown' outside a checkout."""
    src = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def _describe_device(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads(),
                            "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
