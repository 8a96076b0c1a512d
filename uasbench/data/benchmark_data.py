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
from typing import Callable

import numpy as np

from uasbench.data.cache import SliceCache, open_cache, open_phantom_cache, phantom_cache_exists
from uasbench.data.layouts import open_dataset
from uasbench.data.layouts.base import Dataset
from uasbench.data.preprocess import Preparation, healthy_subset, largest_tumour_slice
from uasbench.data.slices import BenchmarkData, SliceSet
from uasbench.data.splits import Split, default_split, load_split, make_assignment
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
        z=np.array([protocol.z_start + i for _, i in picks], dtype=int),
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
