"""The data layer's entry point: a data folder, a modality pair and a protocol in; ``BenchmarkData`` out.

Slice roles (see ``uasbench.data.preprocess`` for the protocol itself):

* ``train``: every tumour-free protocol slice (no anomalous label on the original grid, and no ignored label
  such as WMH's "other pathology") of training subjects, with ``y`` = the target modality. A healthy-only
  dataset (IXI) has only such slices.
* ``val`` / ``test``: per subject the protocol slice with the largest whole-tumour area (lowest z on
  ties), with ``seg``; subjects without tumour in the z range are left out and listed in the report.
* ``val_healthy``: at most ``protocol.val_healthy_per_subject`` evenly spaced tumour-free slices of every
  validation subject (fully healthy ones included), with an all-false ``seg``.

An empty validation set (e.g. two subjects split train/test) is allowed and noted in
``report["warnings"]``; the evaluation layer decides what to do without one. Scored sets carry ``ignore`` when
the dataset's labels have ignored values.
"""
from __future__ import annotations

import functools
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from uasbench.data.cache import SliceCache, open_cache, open_phantom_cache, phantom_cache_exists
from uasbench.data.layouts import open_dataset
from uasbench.data.layouts.base import Dataset
from uasbench.data.preprocess import Preparation, healthy_subset, largest_tumour_slice
from uasbench.data.slices import BenchmarkData, SliceSet
from uasbench.data.splits import Split, default_split, load_split, make_assignment, test_assignment
from uasbench.errors import UasbenchError, UsageError
from uasbench.modalities import Pair


def _slice_set(cache: SliceCache, pair: Pair, picks: list[tuple[str, int]], protocol: Preparation, *,
               with_y: bool = False, with_seg: bool = False) -> SliceSet:
    """Gather (subject, index into the z range) slices from the cache into memory, every array of a pick from
    one read of its case (the cache keeps only the last few cases unpacked)."""
    fields: dict[str, tuple[Callable[[str], np.ndarray], type]] = {
        "x": (lambda s: cache.image(s, pair.input), np.float32),
        "brain": (lambda s: cache.brain(s, pair.input), bool)}
    if with_y:
        fields["y"] = (lambda s: cache.image(s, pair.target), np.float32)
    if with_seg:
        fields["seg"] = (cache.seg, bool)
        if "t2" in cache.modalities:  # the official MMCCD evaluation's brain mask
            fields["brain_t2"] = (lambda s: cache.brain(s, "t2"), bool)
        if cache.has_ignore:
            fields["ignore"] = (cache.ignore, bool)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    for s, i in picks:
        for name, (get, _) in fields.items():
            rows[name].append(get(s)[i])
    empty = np.zeros((0, protocol.size, protocol.size))
    arrays = {name: (np.stack(rows[name]) if picks else empty).astype(dtype) for name, (_, dtype) in fields.items()}
    return SliceSet(
        x=arrays["x"], brain=arrays["brain"], subjects=tuple(s for s, _ in picks),
        z=np.array([protocol.z_first + i for _, i in picks], dtype=int),
        y=arrays.get("y"), seg=arrays.get("seg"), brain_t2=arrays.get("brain_t2"), ignore=arrays.get("ignore"),
    )


def _healthy(cache: SliceCache, subject: str) -> np.ndarray:
    """Slices without anomalous voxels, nor ignored ones (another pathology is not healthy tissue)."""
    healthy = np.asarray(cache.area(subject)) == 0
    if cache.has_ignore:
        healthy &= ~cache.ignore(subject).any(axis=(1, 2))
    return np.flatnonzero(healthy)


def _tumour_picks(cache: SliceCache, subjects: list[str], skipped: list[str]) -> list[tuple[str, int]]:
    picks = []
    for s in subjects:
        i = largest_tumour_slice(np.asarray(cache.area(s)))
        if i is None:
            skipped.append(s)
        else:
            picks.append((s, i))
    return picks


def _phantom_has_its_own_layout(layout: str | None, card: Path | None) -> None:
    if layout is not None or card is not None:
        raise UsageError("--layout and --card describe a data folder: give the folder too (the embedded phantom "
                         "has its own layout)")


def dataset(data_root: Path | None, *, layout: str | None = None, card: Path | None = None,
            progress: bool = True) -> Dataset:
    """A data folder read through its layout or card, or the embedded phantom for None (its volumes are
    written on first call: only commands that read case files need them)."""
    if data_root is None:
        _phantom_has_its_own_layout(layout, card)
        from uasbench.data.phantom import default_phantom_root

        data_root = default_phantom_root(progress=progress)
    return open_dataset(Path(data_root), layout, card)


def open_dataset_cache(data_root: Path | None, protocol: Preparation, *, on_bad_case: str = "stop",
                       progress: bool = True, workers: int | None = None, layout: str | None = None,
                       card: Path | None = None, modalities: tuple[str, ...] = ()) -> tuple[str, SliceCache]:
    """(description, slice cache) of a data folder, or of the embedded phantom for None, which is generated
    straight into its cache on first use: its volumes are never needed for a run. ``modalities`` (e.g. a run's
    pair) are checked against the dataset's before any case is read."""
    if data_root is not None:
        data = dataset(data_root, layout=layout, card=card, progress=progress)
        data.require_modalities(modalities, "modalities " + ", ".join(modalities))
        return f"{data.root} ({data.layout})", open_cache(data, protocol, on_bad_case=on_bad_case,
                                                          progress=progress, workers=workers)
    from uasbench.data.phantom import DEFAULT_SUBJECTS, IMAGE_MODALITIES, PHANTOM_VERSION

    _phantom_has_its_own_layout(layout, card)
    missing = [m for m in modalities if m not in IMAGE_MODALITIES]
    if missing:
        raise UasbenchError(f"modalities {', '.join(modalities)}: the embedded phantom has no {', '.join(missing)}; "
                            f"it holds {', '.join(IMAGE_MODALITIES)} (give --data for other modalities)")
    label = f"embedded phantom v{PHANTOM_VERSION} ({DEFAULT_SUBJECTS} subjects, seed 0)"
    if progress and not phantom_cache_exists(DEFAULT_SUBJECTS, 0, protocol):
        from rich.console import Console

        Console(stderr=True).print(f"Preparing the {label} (first use only)")
    return label, open_phantom_cache(DEFAULT_SUBJECTS, 0, protocol, progress=progress, workers=workers)


def dataset_subjects(data_root: Path | None, *, layout: str | None = None, card: Path | None = None) -> list[str]:
    """Subject IDs of a data folder, or of the embedded phantom for None (known without generating it)."""
    if data_root is not None:
        return [c.id for c in dataset(data_root, layout=layout, card=card).cases]
    from uasbench.data.phantom import DEFAULT_SUBJECTS, case_id

    _phantom_has_its_own_layout(layout, card)
    return [case_id(i) for i in range(DEFAULT_SUBJECTS)]


def seeded_rule(data_root: Path | None, cache: SliceCache | None = None
                ) -> tuple[Callable[[list[str], int], dict[str, str]], str]:
    """(assignment function, split-file name suffix) of a dataset's seeded default split: 80/10/10 for a data
    folder (with its slice ``cache``: subjects with tumour in the protocol's slices spread over test and
    validation first), the embedded phantom's own rule (``phantom.default_assignment``) for None."""
    if data_root is not None:
        if cache is None:
            return make_assignment, ""
        return functools.partial(make_assignment, tumour=tumour_subjects(cache)), "-by-tumour"
    from uasbench.data.phantom import PHANTOM_VERSION, default_assignment

    return default_assignment, f"-phantom-v{PHANTOM_VERSION}"


def tumour_subjects(cache: SliceCache) -> frozenset[str]:
    """The cached subjects with tumour in at least one of the protocol's slices."""
    return frozenset(s for s in cache.subjects if largest_tumour_slice(np.asarray(cache.area(s))) is not None)


def dataset_split(data_root: Path | None, subjects: list[str], seed: int, split_file: Path | None,
                  cache: SliceCache | None = None) -> Split:
    """A user's split file, else the dataset's seeded default split (see ``seeded_rule``)."""
    if split_file is not None:
        return load_split(subjects, seed, split_file)
    assign, name = seeded_rule(data_root, cache)
    return default_split(subjects, seed, assign, name=name)


def load_benchmark_data(data_root: Path | None, pair: Pair, *, protocol: Preparation = Preparation(),
                        split_file: Path | None = None, seed: int = 0, on_bad_case: str = "stop",
                        progress: bool = True, workers: int | None = None, layout: str | None = None,
                        card: Path | None = None) -> BenchmarkData:
    """Discover, validate, preprocess (cached), split by subject and select slices for ``pair``.

    ``data_root=None`` uses the embedded phantom dataset. ``workers`` defaults to all cores.
    """
    source, cache = open_dataset_cache(data_root, protocol, on_bad_case=on_bad_case, progress=progress,
                                       workers=workers, layout=layout, card=card,
                                       modalities=tuple(dict.fromkeys((pair.input, pair.target))))
    cases = cache.all_cases
    split = dataset_split(data_root, cases, seed, split_file, cache)
    good = set(cache.subjects)
    members = {name: [s for s in split.subjects(name) if s in good] for name in ("train", "val", "test")}

    train = [(s, int(i)) for s in members["train"] for i in _healthy(cache, s)]
    no_tumour: dict[str, list[str]] = {"val": [], "test": []}
    val = _tumour_picks(cache, members["val"], no_tumour["val"])
    test = _tumour_picks(cache, members["test"], no_tumour["test"])
    k = protocol.val_healthy_per_subject
    val_healthy = [(s, int(i)) for s in members["val"] for i in healthy_subset(_healthy(cache, s), k)]

    data = {
        "train": _slice_set(cache, pair, train, protocol, with_y=True),
        "val": _slice_set(cache, pair, val, protocol, with_seg=True),
        "val_healthy": _slice_set(cache, pair, val_healthy, protocol, with_seg=True),
        "test": _slice_set(cache, pair, test, protocol, with_seg=True),
    }
    warnings = [f"{name} set is empty" for name in ("train", "val", "test") if len(data[name]) == 0]
    if cache.bad_cases:
        warnings.append(f"{len(cache.bad_cases)} bad case(s) skipped: " + ", ".join(cache.bad_cases))
    unassigned = sorted(good - set(split.assignment))
    report = {
        "data_root": source,
        "pair": str(pair),
        "cases": len(cases),
        "subjects": {name: len(m) for name, m in members.items()},
        "slices": {name: len(s) for name, s in data.items()},
        "no_tumour_in_range": no_tumour,
        "bad_cases_skipped": cache.bad_cases,
        "not_in_split_file": unassigned,
        "warnings": warnings,
        "cache": str(cache.path),
    }
    return BenchmarkData(
        **data, fingerprint=cache.path.name, split_path=str(split.path),
        split_sha256=split.sha256, protocol=protocol.to_dict(), report=report,
    )


# Cross-dataset runs: healthy scans of one or more datasets train, each test dataset validates and tests.

KINDS_FILE = "lesion_kinds.csv"  # optional ``subject,kind`` file at a data folder's root (the phantom writes one)


@dataclass(frozen=True)
class Source:
    """One data folder of a cross-dataset run as the user named it: its layout or card, and for a test dataset
    its split file (default: a seeded third for validation, the rest for test)."""

    root: Path
    layout: str | None = None
    card: Path | None = None
    split_file: Path | None = None

    def describe(self, option: str) -> str:
        return f"{option} {self.root}"


@dataclass(frozen=True)
class TestDataset:
    """A test dataset's scored slices: every selected slice of its validation subjects with lesions (``val``),
    every lesion-free selected slice of its validation subjects (``val_healthy``; a healthy subject gives its
    whole scan) and every selected slice of its test subjects (``test``, healthy scans included).

    ``slice_index`` picks the slice protocol's sets out of them (per subject the largest-lesion slice for
    ``val``/``test``, evenly spaced lesion-free slices for ``val_healthy``), so the slice level reuses the
    volume level's score maps. ``record`` is what the manifest keeps (layout, fingerprint, split, preparation).
    """

    name: str
    val: SliceSet
    val_healthy: SliceSet
    test: SliceSet
    slice_index: dict[str, np.ndarray]
    kinds: dict[str, str] | None
    record: dict[str, Any]

    def slice_sets(self) -> tuple[SliceSet, SliceSet, SliceSet]:
        """(val, val_healthy, test) of the slice protocol."""
        return tuple(getattr(self, k).subset(self.slice_index[k]) for k in ("val", "val_healthy", "test"))


@dataclass(frozen=True)
class CrossDatasetData:
    """Everything a cross-dataset run needs: one training set and the test datasets, in the order given."""

    train: SliceSet
    tests: tuple[TestDataset, ...]
    train_records: tuple[dict[str, Any], ...]
    protocol: dict[str, Any]


def _selected(cache: SliceCache, subject: str, modality: str, protocol: Preparation) -> np.ndarray:
    """Indices of a case's cached slices the protocol scores: all of a slab, those with brain otherwise."""
    brain = cache.brain(subject, modality)
    if protocol.slices == "brain":
        return np.flatnonzero(brain.any(axis=(1, 2)))
    return np.arange(len(brain))


def _lesion_free(cache: SliceCache, subject: str) -> bool:
    return bool((np.asarray(cache.area(subject)) == 0).all()) and not (
        cache.has_ignore and cache.ignore(subject).any())


def _open_source(source: Source, option: str, protocol: Preparation, modalities: tuple[str, ...], *,
                 on_bad_case: str, progress: bool, workers: int | None) -> tuple[Dataset, SliceCache]:
    if not source.root.is_dir():
        raise UasbenchError(f"{source.describe(option)}: no such folder")
    data = dataset(source.root, layout=source.layout, card=source.card, progress=progress)
    data.require_modalities(modalities, f"{option} {source.root} for modalities {', '.join(modalities)}")
    return data, open_cache(data, protocol, on_bad_case=on_bad_case, progress=progress, workers=workers)


def _record(data: Dataset, cache: SliceCache, option: str) -> dict[str, Any]:
    return {"option": option, "root": str(data.root), "layout": data.layout, "card": data.card or None,
            "fingerprint": cache.path.name, "cases": len(cache.all_cases), "bad_cases_skipped": cache.bad_cases,
            "healthy_only": data.healthy_only}


def _read_kinds(data: Dataset, subjects: list[str]) -> dict[str, str] | None:
    """Lesion kinds from the folder's ``lesion_kinds.csv``, when the data says so: ``subject,kind`` rows by
    case ID, or ``label,kind`` rows by each case's label file relative to the folder (what the phantom writes,
    since a layout's case IDs are the layout's to make)."""
    path = data.root / KINDS_FILE
    if not path.is_file():
        return None
    import csv

    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header not in (["subject", "kind"], ["label", "kind"]):
        raise UasbenchError(f"lesion kinds file {path}: the first line must be the header 'subject,kind' or 'label,kind'")
    kinds = {r[0].strip(): r[1].strip() for r in rows[1:] if len(r) == 2}
    if header[0] == "label":
        by_id = {c.id: str(c.files["seg"].relative_to(data.root)) for c in data.cases if "seg" in c.files}
        kinds = {case: kinds[label] for case, label in by_id.items() if label in kinds}
    return {s: kinds[s] for s in subjects if s in kinds}


def test_split(source: Source, cases: list[str], seed: int) -> Split:
    """A test dataset's split: its split file (val and test rows), else the seeded third for validation."""
    if source.split_file is not None:
        return load_split(cases, seed, source.split_file, need_train=False)
    return default_split(cases, seed, test_assignment, name="-test", need_train=False)


def prepare_cross_dataset(train: list[Source], tests: list[Source], modalities: tuple[str, ...],
                          test_modalities: tuple[str, ...], protocol: Preparation, seeds: list[int], *,
                          on_bad_case: str = "stop"
                          ) -> tuple[list[str], dict[str, str], dict[int, dict[str, str]]]:
    """Build every dataset's slice cache and each seed's test splits once (before a grid fans out); returns the
    training fingerprints, the test fingerprints by name and per seed the test splits' checksums by name."""
    train_fps = [_open_source(s, "--train-data", protocol, modalities, on_bad_case=on_bad_case, progress=True,
                              workers=None)[1].path.name for s in train]
    test_fps, caches = {}, {}
    for source, name in zip(tests, dataset_names(tests)):
        _, cache = _open_source(source, "--data", protocol, test_modalities, on_bad_case=on_bad_case,
                                progress=True, workers=None)
        test_fps[name], caches[name] = cache.path.name, (source, cache)
    splits = {seed: {name: test_split(source, cache.all_cases, seed).sha256 for name, (source, cache) in caches.items()}
              for seed in seeds}
    return train_fps, test_fps, splits


def _test_dataset(source: Source, name: str, pair: Pair, protocol: Preparation, seed: int, *, on_bad_case: str,
                  progress: bool, workers: int | None) -> TestDataset:
    data, cache = _open_source(source, "--data", protocol, (pair.input,), on_bad_case=on_bad_case,
                               progress=progress, workers=workers)
    if data.healthy_only:
        raise UasbenchError(f"--data {source.root}: a healthy-only dataset ({data.layout}) has no lesions to "
                            "test on; give it with --train-data")
    split = test_split(source, cache.all_cases, seed)
    good = set(cache.subjects)
    members = {k: [s for s in split.subjects(k) if s in good] for k in ("val", "test")}

    picks: dict[str, list[tuple[str, int]]] = {"val": [], "val_healthy": [], "test": []}
    index: dict[str, list[int]] = {"val": [], "val_healthy": [], "test": []}
    k = protocol.val_healthy_per_subject
    for s in members["val"]:
        chosen = _selected(cache, s, pair.input, protocol)
        area = np.asarray(cache.area(s))
        healthy = np.intersect1d(chosen, _healthy(cache, s))
        slab_pick = healthy_subset(healthy, k)
        index["val_healthy"] += [len(picks["val_healthy"]) + int(np.searchsorted(healthy, i)) for i in slab_pick]
        picks["val_healthy"] += [(s, int(i)) for i in healthy]
        if area[chosen].max(initial=0) > 0:
            index["val"].append(len(picks["val"]) + int(np.argmax(area[chosen])))
            picks["val"] += [(s, int(i)) for i in chosen]
    for s in members["test"]:
        chosen = _selected(cache, s, pair.input, protocol)
        area = np.asarray(cache.area(s))
        if area[chosen].max(initial=0) > 0:
            index["test"].append(len(picks["test"]) + int(np.argmax(area[chosen])))
        picks["test"] += [(s, int(i)) for i in chosen]
    # without ``with_y`` only the input modality is read: a method sees nothing else at test time
    sets = {key: _slice_set(cache, pair, p, protocol, with_seg=True) for key, p in picks.items()}
    record = {**_record(data, cache, "--data"), "split_file": str(split.path), "split_sha256": split.sha256,
              "subjects": {key: len(m) for key, m in members.items()},
              "slices": {key: len(v) for key, v in sets.items()},
              "slice_protocol": {key: len(v) for key, v in index.items()}}
    return TestDataset(name=name, **sets, slice_index={key: np.asarray(v, int) for key, v in index.items()},
                       kinds=_read_kinds(data, members["test"]), record=record)


def dataset_names(sources: list[Source]) -> list[str]:
    """The names a run's test datasets are reported under: their folder names, made unique by position."""
    names = [s.root.name or "data" for s in sources]
    return [n if names.count(n) == 1 else f"{n}-{i + 1}" for i, n in enumerate(names)]


def load_cross_dataset(train: list[Source], tests: list[Source], pair: Pair, *, protocol: Preparation = Preparation(),
                       seed: int = 0, on_bad_case: str = "stop", progress: bool = True,
                       workers: int | None = None) -> CrossDatasetData:
    """Healthy scans of every ``train`` dataset (a healthy-only dataset gives all its subjects, a mixed one its
    lesion-free subjects) and each ``tests`` dataset's validation and test slices, all under ``protocol``."""
    rows: list[tuple[SliceCache, str, int]] = []
    records = []
    for source in train:
        data, cache = _open_source(source, "--train-data", protocol, tuple(dict.fromkeys((pair.input, pair.target))),
                                   on_bad_case=on_bad_case, progress=progress, workers=workers)
        healthy = [s for s in cache.subjects if data.healthy_only or _lesion_free(cache, s)]
        if not healthy:
            raise UasbenchError(f"--train-data {source.root}: not a healthy-only dataset ({data.layout}) and none of "
                                f"its {len(cache.subjects)} subjects is free of lesions: no healthy scan to train on")
        records.append({**_record(data, cache, "--train-data"), "subjects": {"train": len(healthy)}})
        rows += [(cache, s, int(i)) for s in healthy for i in _selected(cache, s, pair.input, protocol)]
    by_cache: dict[Path, list[tuple[str, int]]] = {}
    caches: dict[Path, SliceCache] = {}
    for cache, s, i in rows:
        by_cache.setdefault(cache.path, []).append((s, i))
        caches[cache.path] = cache
    sets = [_slice_set(caches[p], pair, picks, protocol, with_y=True) for p, picks in by_cache.items()]
    train_set = _concat(sets)
    tests_data = tuple(_test_dataset(source, name, pair, protocol, seed, on_bad_case=on_bad_case,
                                     progress=progress, workers=workers)
                       for source, name in zip(tests, dataset_names(tests)))
    for record, s in zip(records, sets):
        record["slices"] = {"train": len(s)}
    return CrossDatasetData(train=train_set, tests=tests_data, train_records=tuple(records),
                            protocol=protocol.to_dict())


def _concat(sets: list[SliceSet]) -> SliceSet:
    """One training set of several datasets' slices, in the order given."""
    if len(sets) == 1:
        return sets[0]
    return SliceSet(x=np.concatenate([s.x for s in sets]), brain=np.concatenate([s.brain for s in sets]),
                    subjects=tuple(x for s in sets for x in s.subjects), z=np.concatenate([s.z for s in sets]),
                    y=np.concatenate([s.y for s in sets]))
