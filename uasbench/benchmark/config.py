"""A benchmark file (TOML): which methods, pairs and seeds to run, on which data, under which settings.

The whole file is validated before anything runs, so a typo in the last line of a 50-job grid costs a
second, not an afternoon: an unknown key, method, pair, profile, config field or value ends with one line
naming the file, the key and the valid choices. Layout (see ``benchmarks/*.toml``)::

    [benchmark]                # settings shared by every job
    data = "phantom"           # the embedded phantom, or a data folder ("${BRATS}" reads the environment)
    layout = "brats2021"       # optional: the folder's layout when it is not detected (or card = "FILE")
    profile = "quick"
    register = "none"          # or "mni152": every scan registered to the template before slicing
    seeds = [0, 1, 2]          # default seeds of every [[grid]] entry
    [[grid]]                   # methods x pairs x seeds; entries are merged, duplicates run once
    methods = ["ae", "mmccd"]
    pairs = ["fl-t2"]
    [overrides.mmccd]          # `uasbench run --set` fields of one method, for all its jobs
    max_batch = 1024
    [slurm]                    # only read by --executor slurm
    partition = "gpu"

A cross-dataset benchmark adds ``[[train_data]]`` (folders whose healthy scans train every job) and
``[[test_data]]`` (folders each validated, tested and reported on its own), each with ``path`` and optional
``layout``, ``card`` and (test data) ``split``; ``[benchmark]`` then may set ``slices`` ("slab" or "brain"),
``median_3d`` and ``min_component`` (3-D post-processing, bounded as ``PostProcess``'s fields are), and its
``data`` is not used.

Relative ``data``, ``card`` and ``split`` paths are read relative to the benchmark file's folder. Each table is a typed
dataclass (``BenchmarkFile``, ``BenchmarkTable``, ``GridTable``, ``SlurmSettings``; ``[overrides.M]`` is method
M's config) checked by ``uasbench.config_check``, the path every structured input takes: types, choices and
bounds from the hints and field metadata, rules from ``validate``.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from uasbench.choices import DEVICES, NORMALISATIONS, REGISTRATIONS, SLICE_SELECTIONS, THRESHOLDS
from uasbench.config_check import Invalid, checked_table, checked_values
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.postprocess import PostProcess

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PHANTOM = "phantom"
Normalisation = Literal[NORMALISATIONS]  # type: ignore[valid-type]  # the choices of uasbench.choices
Threshold = Literal[THRESHOLDS]  # type: ignore[valid-type]
SliceSelection = Literal[SLICE_SELECTIONS]  # type: ignore[valid-type]
Registration = Literal[REGISTRATIONS]  # type: ignore[valid-type]
_ENV = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
    """What `--executor slurm` asks the scheduler for, per job of the array (the ``[slurm]`` table)."""

    partition: str | None = None
    timeout_min: int = field(default=24 * 60, metadata={"min": 1, "max": 366 * 24 * 60,
                                                                      "option": "--time"})
    gpus_per_job: int = field(default=1, metadata={"min": 0, "max": 64, "option": "--gpus-per-job"})
    cpus_per_job: int = field(default=8, metadata={"min": 1, "max": 4096})
    mem_gb: int = field(default=32, metadata={"min": 1, "max": 65536})
    array_parallelism: int = field(default=64, metadata={"min": 1, "max": 100_000,
                                                                     "option": "--array-parallelism"})
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load, source venv/bin/activate)


@dataclasses.dataclass(frozen=True)
class BenchmarkTable:
    """The ``[benchmark]`` table: settings shared by every job."""

    data: str = field(default=PHANTOM, metadata={"expected": 'a folder or "phantom"'})
    layout: str | None = field(default=None, metadata={"expected": "a layout name"})  # None: detected
    card: str | None = field(default=None, metadata={"expected": "a file path"})  # a dataset card
    split: str | None = field(default=None, metadata={"expected": "a file path"})
    profile: str = field(default="quick", metadata={"expected": "a profile name"})
    seeds: tuple[int, ...] = field(default=(0,), metadata={"min": 0})  # default seeds of every [[grid]] entry
    device: str = field(default="auto", metadata={"expected": "auto, cpu or cuda"})
    normalisation: Normalisation = "paper"
    register: Registration = "none"  # every scan registered to this template before slicing
    erode_brain: int = field(default=0, metadata={"min": 0})
    median: int = field(default=0, metadata={"min": 0})
    slices: SliceSelection = "slab"  # cross-dataset: "brain" scores every brain slice
    median_3d: int = field(default=0, metadata={"min": 0})  # cross-dataset only; bounds: PostProcess's
    min_component: int = field(default=0, metadata={"min": 0})  # cross-dataset only
    skip_bad_cases: bool = False
    thresholds: tuple[Threshold, ...] = ("val_dice", "oracle_test")

    def validate(self) -> None:
        from uasbench.data.layouts import LAYOUT_NAMES

        if self.layout is not None and self.layout not in LAYOUT_NAMES:
            raise Invalid("layout", f"invalid value {self.layout!r} (valid: {', '.join(LAYOUT_NAMES)})")
        if self.layout is not None and self.card is not None:
            raise Invalid("card", "give layout or card, not both (a card describes a layout of its own)")
        if not self.seeds:
            raise Invalid("seeds", "must be a non-empty list of non-negative integers")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+", self.device):
            raise Invalid("device", f"invalid value {self.device!r} (valid: {', '.join(DEVICES)})")
        if not self.thresholds:
            raise Invalid("thresholds", f"must be a non-empty list of {', '.join(THRESHOLDS)}")


@dataclasses.dataclass(frozen=True)
class DataTable:
    """One ``[[train_data]]`` or ``[[test_data]]`` entry of a cross-dataset benchmark."""

    path: str = field(metadata={"expected": "a folder"})
    layout: str | None = field(default=None, metadata={"expected": "a layout name"})
    card: str | None = field(default=None, metadata={"expected": "a file path"})
    split: str | None = field(default=None, metadata={"expected": "a file path"})

    def validate(self) -> None:
        from uasbench.data.layouts import LAYOUT_NAMES

        if self.layout is not None and self.layout not in LAYOUT_NAMES:
            raise Invalid("layout", f"invalid value {self.layout!r} (valid: {', '.join(LAYOUT_NAMES)})")
        if self.layout is not None and self.card is not None:
            raise Invalid("card", "give layout or card, not both (a card describes a layout of its own)")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A ``DataTable`` resolved against the benchmark file: ``missing`` says why it cannot be used yet."""

    path: Path
    text: str
    layout: str | None
    card: Path | None
    split: Path | None
    missing: str | None

    def source(self) -> Any:
        from uasbench.data.benchmark_data import Source

        return Source(self.path, layout=self.layout, card=self.card, split_file=self.split)


@dataclasses.dataclass(frozen=True)
class GridTable:
    """One ``[[grid]]`` entry: methods x pairs x seeds (seeds default to ``[benchmark]``'s)."""

    methods: tuple[str, ...]
    pairs: tuple[str, ...]
    seeds: tuple[int, ...] | None = field(default=None, metadata={"min": 0})

    def validate(self) -> None:
        for key in ("methods", "pairs"):
            if not getattr(self, key):
                raise Invalid(key, "must be a non-empty list of strings")
        if self.seeds is not None and not self.seeds:
            raise Invalid("seeds", "must be a non-empty list of non-negative integers")


@dataclasses.dataclass(frozen=True)
class BenchmarkFile:
    """The top level of a benchmark file: its tables."""

    benchmark: dict[str, Any] | None = field(default=None, metadata={"expected": "a table ([benchmark])"})
    grid: list[Any] | None = field(default=None, metadata={
        "expected": "an array of tables ([[grid]]), each with methods and pairs"})
    overrides: dict[str, Any] = field(default_factory=dict, metadata={"expected": "a table ([overrides.METHOD])"})
    slurm: dict[str, Any] = field(default_factory=dict, metadata={"expected": "a table ([slurm])"})
    train_data: list[Any] | None = field(default=None, metadata={
        "expected": "an array of tables ([[train_data]]), each with a path"})
    test_data: list[Any] | None = field(default=None, metadata={
        "expected": "an array of tables ([[test_data]]), each with a path"})


@dataclasses.dataclass(frozen=True)
class GridEntry:
    methods: tuple[str, ...]
    pairs: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    path: Path
    data: Path | None  # None: the embedded phantom
    data_text: str  # as written (before environment variables), for messages
    data_missing: str | None  # why ``data`` cannot be used (unset variable, no such folder), else None
    split: Path | None
    layout: str | None  # None: detected (or the card's, or the phantom's)
    card: Path | None
    profile: str
    device: str
    normalisation: str
    erode_brain: int
    median: int
    skip_bad_cases: bool
    thresholds: tuple[str, ...]
    grid: tuple[GridEntry, ...]
    overrides: dict[str, dict[str, Any]]
    slurm: SlurmSettings
    slices: str = "slab"
    register: str = "none"
    median_3d: int = 0
    min_component: int = 0
    train_data: tuple[DataSource, ...] = ()  # cross-dataset benchmark: empty for a within-dataset one
    test_data: tuple[DataSource, ...] = ()

    @property
    def cross_dataset(self) -> bool:
        return bool(self.train_data)

    @property
    def name(self) -> str:
        return self.path.stem

    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for entry in self.grid for m in entry.methods))

    def pairs(self) -> list[str]:
        return list(dict.fromkeys(p for entry in self.grid for p in entry.pairs))

    def seeds(self) -> list[int]:
        return sorted({s for entry in self.grid for s in entry.seeds})


def _expand(text: str) -> tuple[str, str | None]:
    """Replace $VAR / ${VAR} with the environment; the second value names the first unset variable."""
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            missing.append(name)
            return match.group(0)
        return os.environ[name]

    expanded = _ENV.sub(sub, text)
    return os.path.expanduser(expanded), (missing[0] if missing else None)


def load_config(path: Path, *, data_override: Path | None = None, need_data: bool = True) -> BenchmarkConfig:
    """Parse and validate a benchmark file completely (methods, pairs, profile, every override field).

    ``need_data=False`` (a dry run) accepts a data folder or split file that is not there yet; the cost
    estimate then assumes BraTS2021's counts.
    """
    from uasbench.modalities import Pair
    from uasbench.registry import get_method

    path = Path(path)
    if not path.is_file():
        raise UasbenchError(f"benchmark file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"{path}: not valid TOML: {exc}") from None
    source = str(path)
    top = checked_table(BenchmarkFile, raw, source=source)
    if top.benchmark is None:
        raise _fail(path, "benchmark", "missing table [benchmark] (it names data, profile and seeds)")
    bench = checked_table(BenchmarkTable, top.benchmark, source=source, key="benchmark")

    data, data_missing = _data_folder(path, bench.data, data_override)
    split, split_missing = None, None
    if bench.split is not None:
        split_text, unset = _expand(bench.split)
        split = (path.parent / split_text).resolve() if not unset else None
        split_missing = (f"environment variable {unset} is not set" if unset
                         else None if split is not None and split.is_file() else f"no such file {split}")
    card = (path.parent / bench.card).resolve() if bench.card is not None else None
    if need_data and card is not None and not card.is_file():
        raise _fail(path, "benchmark.card", f"no such file {card}", usage=False)
    if need_data and data_missing:
        raise _fail(path, "benchmark.data", f"{bench.data!r}: {data_missing} (\"phantom\" is the embedded "
                    "phantom; `--data PATH` overrides it)", usage=False)
    if need_data and split_missing:
        raise _fail(path, "benchmark.split", split_missing, usage=False)

    train_data = _data_tables(path, "train_data", top.train_data, need_data, source)
    test_data = _data_tables(path, "test_data", top.test_data, need_data, source)
    if train_data and not test_data:
        raise _fail(path, "test_data", "missing [[test_data]] entries: a cross-dataset benchmark tests on them")
    if test_data and not train_data:
        raise _fail(path, "train_data", "missing [[train_data]] entries: [[test_data]] needs the healthy "
                    "training data of a cross-dataset benchmark")
    if not train_data:
        for key in ("slices", "median_3d", "min_component"):
            if getattr(bench, key) != getattr(BenchmarkTable, key):
                raise _fail(path, f"benchmark.{key}", "applies to a cross-dataset benchmark ([[train_data]] and "
                            "[[test_data]]), whose volume-level evaluation uses it")
    if any(d.split is not None for d in train_data):
        raise _fail(path, "train_data", "split: a training dataset is used whole (its healthy scans); splits "
                    "belong to [[test_data]]")

    if top.grid is None:
        raise _fail(path, "grid", "missing [[grid]] entries (each lists methods and pairs)")
    if not top.grid:
        raise _fail(path, "grid", "must be an array of tables ([[grid]]), each with methods and pairs")
    grid = []
    for i, item in enumerate(top.grid):
        key = f"grid[{i}]"
        entry = checked_table(GridTable, item, source=source, key=key)
        for m in entry.methods:
            _wrap(path, f"{key}.methods", lambda: get_method(m))
        pairs = [str(_wrap(path, f"{key}.pairs", lambda: Pair.parse(p))) for p in entry.pairs]
        seeds = entry.seeds if entry.seeds is not None else bench.seeds
        grid.append(GridEntry(tuple(dict.fromkeys(entry.methods)), tuple(dict.fromkeys(pairs)),
                              tuple(dict.fromkeys(seeds))))

    all_methods = list(dict.fromkeys(m for entry in grid for m in entry.methods))
    for method in top.overrides:
        if method not in all_methods:
            raise _fail(path, f"overrides.{method}", f"unknown key (valid: {', '.join(all_methods)})")
    for method in all_methods:
        fields = top.overrides.get(method, {})
        if not isinstance(fields, dict):
            raise _fail(path, f"overrides.{method}", f"must be a table ([overrides.{method}]), "
                        f"got {type(fields).__name__}")
        _wrap(path, f"overrides.{method}" if fields else "benchmark.profile",
              lambda: get_method(method).config_for(bench.profile, fields))

    return BenchmarkConfig(
        path=path, data=data, data_text=bench.data, data_missing=data_missing, split=split, layout=bench.layout, card=card,
        profile=bench.profile,
        device=bench.device, normalisation=bench.normalisation, erode_brain=_post(path, "erode_brain", bench.erode_brain),
        median=_post(path, "median", bench.median),
        skip_bad_cases=bench.skip_bad_cases, thresholds=bench.thresholds, grid=tuple(grid),
        overrides={m: dict(top.overrides.get(m, {})) for m in all_methods},
        slurm=checked_table(SlurmSettings, top.slurm, source=source, key="slurm"),
        slices=bench.slices, register=bench.register, median_3d=_post(path, "median_3d", bench.median_3d),
        min_component=_post(path, "min_component", bench.min_component),
        train_data=train_data, test_data=test_data,
    )


def _data_tables(path: Path, key: str, tables: list[Any] | None, need_data: bool, source: str
                 ) -> tuple[DataSource, ...]:
    """The ``[[train_data]]``/``[[test_data]]`` entries, paths resolved like ``benchmark.data``."""
    out = []
    for i, item in enumerate(tables or []):
        entry = checked_table(DataTable, item, source=source, key=f"{key}[{i}]")
        folder, missing = _data_folder(path, entry.path, None)
        if folder is None:
            folder = Path(entry.path)
        files = {}
        for name in ("card", "split"):
            text = getattr(entry, name)
            files[name] = None if text is None else (path.parent / _expand(text)[0]).resolve()
            if need_data and files[name] is not None and not files[name].is_file():
                raise _fail(path, f"{key}[{i}].{name}", f"no such file {files[name]}", usage=False)
        if need_data and missing:
            raise _fail(path, f"{key}[{i}].path", f"{entry.path!r}: {missing}", usage=False)
        out.append(DataSource(folder, entry.path, entry.layout, files["card"], files["split"], missing))
    return tuple(out)


def _fail(path: Path, key: str, message: str, usage: bool = True) -> UasbenchError:
    """One line naming the file and the dotted key (a usage error unless the environment is at fault)."""
    return (UsageError if usage else UasbenchError)(f"{path}: {key}: {message}")


def _data_folder(path: Path, text: str, override: Path | None) -> tuple[Path | None, str | None]:
    """The data folder (None: the phantom) and, if it cannot be used, why."""
    if override is not None:
        return override, None if override.is_dir() else f"--data {override}: no such folder"
    if text == PHANTOM:
        return None, None
    expanded, unset = _expand(text)
    if unset:
        return None, f"environment variable {unset} is not set"
    folder = (path.parent / expanded).resolve()
    return folder, None if folder.is_dir() else f"no such folder {folder}"


def _wrap(path: Path, key: str, call: Any) -> Any:
    """Run a registry/config call; its one-line error gains the file and key it came from."""
    try:
        return call()
    except UasbenchError as exc:
        raise type(exc)(f"{path}: {key}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a plugin's config dataclass given a value of the wrong kind
        raise _fail(path, key, str(exc)) from None


def _post(path: Path, key: str, value: int) -> int:
    """A post-processing size, checked against PostProcess's own bounds (as the CLI's options are)."""
    name = {"erode_brain": "erode_brain_px", "median": "median_size", "median_3d": "median_3d",
            "min_component": "min_component_voxels"}[key]
    return getattr(_wrap(path, f"benchmark.{key}", lambda: PostProcess(**{name: value})), name)


def slurm_settings(base: SlurmSettings, changes: dict[str, Any], owner: str) -> SlurmSettings:
    """``base`` with ``changes``, each checked against SlurmSettings' types and bounds (field metadata)."""
    return dataclasses.replace(base, **checked_values(SlurmSettings, changes, "", owner=owner))

