"""A benchmark grid as jobs: each job is exactly one `uasbench run` (method, pair, profile, seed, config,
data, split, protocol, post-processing), and a job whose run is already in the results folder is done.

Run folders are named for people, not identities, so a finished run is recognised by its manifest: the
same method, pair, profile, seed, overrides and resulting config, on the same prepared data (slice-cache
fingerprint), the same split file checksum, protocol and post-processing. Everything a job needs to know
its identity is computed once, before the fan-out, by ``prepare_data`` (which also builds the slice cache
and the split files, so parallel jobs never race to create them).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from uasbench.benchmark.config import BenchmarkConfig
from uasbench.benchmark.run import RunSpec, cross_identity, run_cross_dataset, run_one, split_identity
from uasbench.data.preprocess import Preparation
from uasbench.errors import UasbenchError
from uasbench.files import make_folder, open_in_place
from uasbench.evaluation.postprocess import PostProcess
from uasbench.modalities import Pair
from uasbench.manifest import read_manifest_file
from uasbench.results import manifest_paths, read_manifest

LOGS = "logs"
#: The manifest fields that together say "this run is that job".
IDENTITY_FIELDS = ("method", "pair", "profile", "seed", "overrides", "config", "data_fingerprint",
                   "split_sha256", "protocol", "postprocess")


def job_name(spec: RunSpec) -> str:
    """Unique within a grid: one benchmark file has one profile and one set of overrides per method."""
    return f"{spec.method}_{spec.pair}_{spec.profile}_s{spec.seed}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the grid: its engine spec, its identity (as its manifest will record it) and its log."""

    spec: RunSpec
    identity: dict[str, Any]
    log: Path

    @property
    def name(self) -> str:
        return job_name(self.spec)

    @property
    def method(self) -> str:
        return self.spec.method

    def to_json(self) -> str:
        """The job for a worker process (``python -m uasbench.benchmark.worker``)."""
        s = self.spec
        spec = {**dataclasses.asdict(s), "pair": str(s.pair), "protocol": s.protocol.to_dict(),
                "post": s.post.to_dict()}
        return json.dumps({"spec": spec, "identity": self.identity, "log": str(self.log)}, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Job":
        raw = json.loads(text)
        spec = dict(raw["spec"])
        for key in ("data_root", "card", "split_file", "out"):
            spec[key] = None if spec.get(key) is None else Path(spec[key])
        from uasbench.data.benchmark_data import Source

        path = lambda v: None if v is None else Path(v)  # noqa: E731
        for key in ("train_data", "test_data"):
            spec[key] = tuple(Source(Path(d["root"]), layout=d["layout"], card=path(d["card"]),
                                     split_file=path(d["split_file"])) for d in spec.get(key, ()))
        spec.update(pair=Pair.parse(spec["pair"]), protocol=Preparation.from_dict(spec["protocol"]),
                    post=PostProcess.from_dict(spec["post"]))
        return cls(RunSpec(**spec), raw["identity"], Path(raw["log"]))


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """What a job's identity needs from the data: the slice-cache fingerprint and each seed's split checksum."""

    fingerprint: str  # cross-dataset: the data-and-preparation identity (``run.cross_identity``)
    split_sha256: dict[int, str]  # cross-dataset: per seed the test splits' identity


def _normalised(value: Any) -> Any:
    """JSON round trip: tuples become lists, paths strings, exactly as a manifest stores them."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def identity_key(identity: dict[str, Any]) -> str:
    datasets = identity.get("datasets")
    if isinstance(datasets, dict):  # a cross-dataset manifest: its identity lives in its datasets block
        identity = {**identity, "data_fingerprint": datasets["identity"], "split_sha256": datasets["split_identity"],
                    "protocol": datasets["preparation"]["protocol"]}
    return json.dumps(_normalised({k: identity.get(k) for k in IDENTITY_FIELDS}), sort_keys=True)


def specs(config: BenchmarkConfig, out: Path) -> list[RunSpec]:
    """Every run of the grid once, in file order (entries merged, duplicates dropped)."""
    protocol = _protocol(config)
    post = PostProcess(erode_brain_px=config.erode_brain, median_size=config.median, median_3d=config.median_3d,
                       min_component_voxels=config.min_component)
    cross = {"train_data": tuple(d.source() for d in config.train_data),
             "test_data": tuple(d.source() for d in config.test_data)} if config.cross_dataset else {}
    seen: dict[tuple[str, str, int], RunSpec] = {}
    for entry in config.grid:
        for method in entry.methods:
            for pair in entry.pairs:
                for seed in entry.seeds:
                    seen.setdefault((method, pair, seed), RunSpec(
                        method=method, pair=Pair.parse(pair), profile=config.profile, seed=seed,
                        device=config.device, data_root=config.data, layout=config.layout, card=config.card,
                        split_file=config.split, out=out,
                        overrides=dict(config.overrides.get(method, {})), protocol=protocol, post=post,
                        on_bad_case="skip" if config.skip_bad_cases else "stop", **cross))
    return list(seen.values())


def _protocol(config: BenchmarkConfig) -> Preparation:
    """The data preparation every job of the benchmark file shares."""
    from uasbench.data.spatial import SpatialStandard

    return Preparation(normalisation=config.normalisation, slices=config.slices,
                       spatial=SpatialStandard(register=config.register))


def prepare_data(config: BenchmarkConfig) -> PreparedData:
    """Build the slice cache and every seed's split file once, before any job starts."""
    from uasbench.data.benchmark_data import dataset_split, open_dataset_cache, prepare_cross_dataset

    if config.cross_dataset:
        post = PostProcess(erode_brain_px=config.erode_brain, median_size=config.median,
                           median_3d=config.median_3d, min_component_voxels=config.min_component)
        train, tests, splits = prepare_cross_dataset(
            [d.source() for d in config.train_data], [d.source() for d in config.test_data],
            _pair_modalities(config.pairs()), tuple(dict.fromkeys(Pair.parse(p).input for p in config.pairs())),
            _protocol(config), config.seeds(),
            on_bad_case="skip" if config.skip_bad_cases else "stop")
        return PreparedData(cross_identity(train, tests, _protocol(config).to_dict(), post.to_dict()),
                            {seed: split_identity(by_name) for seed, by_name in splits.items()})
    _, cache = open_dataset_cache(config.data, _protocol(config),
                                  on_bad_case="skip" if config.skip_bad_cases else "stop", layout=config.layout,
                                  card=config.card, modalities=_pair_modalities(config.pairs()))
    ids = cache.all_cases  # as load_benchmark_data splits them
    return PreparedData(cache.path.name, {seed: dataset_split(config.data, ids, seed, config.split, cache).sha256
                                          for seed in config.seeds()})


def _pair_modalities(pairs: list[str]) -> tuple[str, ...]:
    """Every modality the grid's pairs use, so a pair the dataset lacks is refused before any case is read."""
    return tuple(dict.fromkeys(m for p in pairs for m in (Pair.parse(p).input, Pair.parse(p).target)))


def method_config(spec: RunSpec) -> Any:
    """The method config of a job; built once per (method, profile, overrides), so expanding a grid of tens of
    thousands of jobs does not look the method up and check its config once per job."""
    return _method_config(spec.method, spec.profile, json.dumps(spec.overrides, sort_keys=True, default=str))


@functools.lru_cache(maxsize=None)
def _method_config(method: str, profile: str, overrides_json: str) -> Any:
    from uasbench.registry import get_method

    return get_method(method).config_for(profile, json.loads(overrides_json))


def make_jobs(config: BenchmarkConfig, out: Path, data: PreparedData) -> list[Job]:
    jobs = []
    for spec in specs(config, out):
        cfg = method_config(spec)
        identity = {"method": spec.method, "pair": str(spec.pair), "profile": spec.profile, "seed": spec.seed,
                    "overrides": spec.overrides, "config": dataclasses.asdict(cfg),
                    "data_fingerprint": data.fingerprint, "split_sha256": data.split_sha256[spec.seed],
                    "protocol": spec.protocol.to_dict(), "postprocess": spec.post.to_dict()}
        jobs.append(Job(spec, _normalised(identity), out / LOGS / f"{job_name(spec)}.log"))
    return jobs


def finished_runs(out: Path) -> dict[str, Path]:
    """Identity key -> run folder of every complete run under ``out`` (the newest when repeated); a manifest
    that cannot be read or does not check is no finished run (its job runs again)."""
    found: dict[str, Path] = {}
    if not out.is_dir():
        return found
    for manifest_path in manifest_paths(out):  # staging and work folders are hidden: never finished runs
        try:
            manifest = read_manifest_file(manifest_path)
        except UasbenchError:
            continue
        found[identity_key(manifest.to_dict())] = manifest_path.parent
    return found


@contextlib.contextmanager
def _job_log(path: Path, results: Path) -> Iterator[Any]:
    """Send the job's output (its messages, training bars, warnings) to its log file, appended per attempt;
    the log and its folder are never opened through a link planted in the results folder."""
    with open_log(path, results) as raw, io.TextIOWrapper(raw, encoding="utf-8", line_buffering=True) as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"=== attempt started {datetime.now(timezone.utc).isoformat(timespec='seconds')}", flush=True)
        yield log


def open_log(path: Path, results: Path) -> Any:
    """A job's log, opened for appending inside ``results`` (no link in its path, no hard link)."""
    make_folder(path.parent, results)
    return open_in_place(path, append=True)


def run_job(job: Job) -> Path:
    """Run one job in this process (or find its finished run) and return the run folder.

    Shared by every executor: in the calling process, in a local worker process and in a SLURM task. A
    rerun after an interruption resumes training from the run's work folder.
    """
    existing = finished_runs(job.spec.out).get(identity_key(job.identity))
    if existing is not None:
        return existing
    with _job_log(job.log, job.spec.out) as log:
        try:
            runner = run_cross_dataset if job.spec.cross_dataset else run_one
            run_dir, _ = runner(job.spec, log=lambda msg: print(msg, flush=True))
        except BaseException:
            traceback.print_exc(file=log)
            raise
        manifest = read_manifest(run_dir)
        if identity_key(manifest.to_dict()) != identity_key(job.identity):
            raise UasbenchError(f"run {run_dir} does not match its job {job.name} (did the data or split "
                                "change while the benchmark ran?)")
        print(f"run directory: {run_dir}", flush=True)
    return run_dir
