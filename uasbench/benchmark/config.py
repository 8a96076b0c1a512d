"""A benchmark file (TOML): which methods, pairs and seeds to run, on which data, under which settings.

The whole file is validated before anything runs, so a typo in the last line of a 50-job grid costs a
second, not an afternoon: an unknown key, method, pair, profile, config field or value ends with one line
naming the file, the key and the valid choices. Layout (see ``benchmarks/*.toml``)::

    [benchmark]                # settings shared by every job
    data = "phantom"           # the embedded phantom, or a BraTS folder ("${BRATS}" reads the environment)
    profile = "quick"
    seeds = [0, 1, 2]          # default seeds of every [[grid]] entry
    [[grid]]                   # methods x pairs x seeds; entries are merged, duplicates run once
    methods = ["ae", "mmccd"]
    pairs = ["fl-t2"]
    [overrides.mmccd]          # `uasbench run --set` fields of one method, for all its jobs
    max_batch = 1024
    [slurm]                    # only read by --executor slurm
    partition = "gpu"

Relative ``data`` and ``split`` paths are read relative to the benchmark file's folder.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

from uasbench.config_check import checked_values
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.postprocess import PostProcess

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PHANTOM = "phantom"
DEVICES = ("auto", "cpu", "cuda")
NORMALISATIONS = ("paper", "official")
_ENV = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
    """What `--executor slurm` asks the scheduler for, per job of the array."""

    partition: str | None = None
    timeout_min: int = dataclasses.field(default=24 * 60, metadata={"min": 1, "max": 366 * 24 * 60,
                                                                      "option": "--time"})
    gpus_per_job: int = dataclasses.field(default=1, metadata={"min": 0, "max": 64, "option": "--gpus-per-job"})
    cpus_per_job: int = dataclasses.field(default=8, metadata={"min": 1, "max": 4096})
    mem_gb: int = dataclasses.field(default=32, metadata={"min": 1, "max": 65536})
    array_parallelism: int = dataclasses.field(default=64, metadata={"min": 1, "max": 100_000,
                                                                     "option": "--array-parallelism"})
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load, source venv/bin/activate)


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

    @property
    def name(self) -> str:
        return self.path.stem

    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for entry in self.grid for m in entry.methods))

    def pairs(self) -> list[str]:
        return list(dict.fromkeys(p for entry in self.grid for p in entry.pairs))

    def seeds(self) -> list[int]:
        return sorted({s for entry in self.grid for s in entry.seeds})


_BENCHMARK_KEYS = ("data", "split", "profile", "seeds", "device", "normalisation", "erode_brain", "median",
                   "skip_bad_cases", "thresholds")
_GRID_KEYS = ("methods", "pairs", "seeds")
_TOP_KEYS = ("benchmark", "grid", "overrides", "slurm")


class _Checker:
    """Reads typed values out of the parsed TOML; every error names the file and the dotted key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str, usage: bool = True) -> UasbenchError:
        cls = UsageError if usage else UasbenchError
        return cls(f"{self.path}: {key}: {message}")

    def table(self, value: Any, key: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table ([{key}]), got {type(value).__name__}")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    raise self.fail(f"{key}.{name}" if key else name,
                                    f"unknown key (valid: {', '.join(allowed)})")
        return value

    def typed(self, value: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(key, f"must be {what}, got {value!r}")
        return value

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"invalid value {value!r} (valid: {', '.join(choices)})")
        return value

    def string_list(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a non-empty list of strings, got {value!r}")
        return tuple(value)

    def seeds(self, value: Any, key: str) -> tuple[int, ...]:
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
            raise self.fail(key, f"must be a non-empty list of non-negative integers, got {value!r}")
        return tuple(dict.fromkeys(value))

    def count(self, value: Any, key: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value


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
    from uasbench.report.leaderboard import THRESHOLDS

    path = Path(path)
    if not path.is_file():
        raise UasbenchError(f"benchmark file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"{path}: not valid TOML: {exc}") from None
    check = _Checker(path)
    check.table(raw, "", _TOP_KEYS)
    if "benchmark" not in raw:
        raise check.fail("benchmark", "missing table [benchmark] (it names data, profile and seeds)")
    bench = check.table(raw["benchmark"], "benchmark", _BENCHMARK_KEYS)

    data_text = str(check.typed(bench.get("data", PHANTOM), "benchmark.data", str, "a folder or \"phantom\""))
    data, data_missing = _data_folder(path, data_text, data_override)
    split, split_missing = None, None
    if "split" in bench:
        split_text, unset = _expand(check.typed(bench["split"], "benchmark.split", str, "a file path"))
        split = (path.parent / split_text).resolve() if not unset else None
        split_missing = (f"environment variable {unset} is not set" if unset
                         else None if split is not None and split.is_file() else f"no such file {split}")
    if need_data and data_missing:
        raise check.fail("benchmark.data", f"{data_text!r}: {data_missing} (\"phantom\" is the embedded "
                         "phantom; `--data PATH` overrides it)", usage=False)
    if need_data and split_missing:
        raise check.fail("benchmark.split", split_missing, usage=False)

    profile = check.typed(bench.get("profile", "quick"), "benchmark.profile", str, "a profile name")
    default_seeds = check.seeds(bench.get("seeds", [0]), "benchmark.seeds")
    device = check.typed(bench.get("device", "auto"), "benchmark.device", str, "auto, cpu or cuda")
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        raise check.fail("benchmark.device", f"invalid value {device!r} (valid: {', '.join(DEVICES)})")
    thresholds = check.string_list(bench.get("thresholds", ["val_dice", "oracle_test"]), "benchmark.thresholds")
    for t in thresholds:
        check.choice(t, "benchmark.thresholds", THRESHOLDS)

    if "grid" not in raw:
        raise check.fail("grid", "missing [[grid]] entries (each lists methods and pairs)")
    if not isinstance(raw["grid"], list) or not raw["grid"]:
        raise check.fail("grid", "must be an array of tables ([[grid]]), each with methods and pairs")
    grid = []
    for i, item in enumerate(raw["grid"]):
        key = f"grid[{i}]"
        check.table(item, key, _GRID_KEYS)
        for needed in ("methods", "pairs"):
            if needed not in item:
                raise check.fail(f"{key}.{needed}", "missing")
        methods = check.string_list(item["methods"], f"{key}.methods")
        for m in methods:
            _wrap(check, f"{key}.methods", lambda: get_method(m))
        pairs = []
        for p in check.string_list(item["pairs"], f"{key}.pairs"):
            pairs.append(str(_wrap(check, f"{key}.pairs", lambda: Pair.parse(p))))
        seeds = check.seeds(item["seeds"], f"{key}.seeds") if "seeds" in item else default_seeds
        grid.append(GridEntry(tuple(dict.fromkeys(methods)), tuple(dict.fromkeys(pairs)), seeds))

    all_methods = list(dict.fromkeys(m for entry in grid for m in entry.methods))
    overrides = check.table(raw.get("overrides", {}), "overrides", tuple(all_methods))
    for method in all_methods:
        fields = check.table(overrides.get(method, {}), f"overrides.{method}", None)
        _wrap(check, f"overrides.{method}" if fields else "benchmark.profile",
              lambda: get_method(method).config_for(profile, fields))

    return BenchmarkConfig(
        path=path, data=data, data_text=data_text, data_missing=data_missing, split=split, profile=profile,
        device=device,
        normalisation=check.choice(bench.get("normalisation", "paper"), "benchmark.normalisation", NORMALISATIONS),
        erode_brain=_post(check, "erode_brain", bench.get("erode_brain", 0)),
        median=_post(check, "median", bench.get("median", 0)),
        skip_bad_cases=check.typed(bench.get("skip_bad_cases", False), "benchmark.skip_bad_cases", bool, "true or false"),
        thresholds=thresholds, grid=tuple(grid), overrides={m: dict(overrides.get(m, {})) for m in all_methods},
        slurm=_slurm(check, raw.get("slurm", {})),
    )


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


def _wrap(check: _Checker, key: str, call: Any) -> Any:
    """Run a registry/config call; its one-line error gains the file and key it came from."""
    try:
        return call()
    except UasbenchError as exc:
        raise type(exc)(f"{check.path}: {key}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a config dataclass given a value of the wrong kind
        raise check.fail(key, str(exc)) from None


def _post(check: _Checker, key: str, value: Any) -> int:
    """A post-processing size, checked against PostProcess's own bounds (as the CLI's options are)."""
    field = {"erode_brain": "erode_brain_px", "median": "median_size"}[key]
    return getattr(_wrap(check, f"benchmark.{key}", lambda: PostProcess(**{field: value})), field)


def slurm_settings(base: SlurmSettings, changes: dict[str, Any], owner: str) -> SlurmSettings:
    """``base`` with ``changes``, each checked against SlurmSettings' types and bounds (field metadata)."""
    return dataclasses.replace(base, **checked_values(SlurmSettings, changes, "", owner=owner))


def _slurm(check: _Checker, raw: Any) -> SlurmSettings:
    fields = {f.name: f for f in dataclasses.fields(SlurmSettings)}
    table = check.table(raw, "slurm", tuple(fields))
    values: dict[str, Any] = {}
    for name, value in table.items():
        key = f"slurm.{name}"
        if name in ("partition", "account", "qos", "constraint"):
            values[name] = check.typed(value, key, str, "a string")
        elif name == "setup":
            values[name] = check.string_list(value, key)
        else:  # numbers: type and bounds from the field's metadata
            values[name] = getattr(_wrap(check, key, lambda: slurm_settings(SlurmSettings(), {name: value},
                                                                              "the slurm settings")), name)
    return SlurmSettings(**values)
