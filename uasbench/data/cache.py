"""On-disk cache of preprocessed slices, one folder per (data fingerprint, protocol fingerprint).

All four modalities are cached, not only the requested pair: validating a case reads them anyway, and
one cache then serves all twelve input/target pairs of a dataset (the paper reports several pairs).
The data fingerprint hashes each case's ID, naming and, per file, its name, size and mtime (a stat, no
read): an edited, replaced or added file changes it, so a stale cache is never reused; content is not
hashed, since that would cost as much as the preprocessing it guards. The cache is built in a temporary
folder and renamed into place, so a folder under ``slices/`` is always complete, and its arrays are
memory-mapped when read.

Layout of ``cache_root()/slices/<key>/``: ``meta.json`` and per good case ``<ID>/img.npy`` (4, Z, S, S)
float32 in ``MODALITIES`` order, ``brain.npy`` (4, Z, S, S) bool (brain mask of each modality),
``seg.npy`` (Z, S, S) bool whole tumour, ``area.npy`` (Z,) whole-tumour pixels on the original grid.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uasbench.data.brats import BadCaseError, Case, read_case
from uasbench.data.preprocess import (
    Protocol, apply_normalisation, axial_stack, normalisation_stats, resize, resize_mask, tumour_area,
)
from uasbench.errors import UasbenchError
from uasbench.modalities import MODALITIES
from uasbench.paths import cache_root

CACHE_FORMAT = 1


def data_fingerprint(cases: list[Case]) -> str:
    """Hash of case IDs, namings and every file's name, size and mtime."""
    entries = []
    for case in cases:
        files = []
        for name, path in sorted(case.files.items()):
            st = path.stat()
            files.append([name, path.name, st.st_size, st.st_mtime_ns])
        entries.append([case.id, case.naming, files])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def cache_key(data_fp: str, protocol: Protocol) -> str:
    return hashlib.sha256(f"{CACHE_FORMAT}:{data_fp}:{protocol.fingerprint()}".encode()).hexdigest()[:16]


def prepare_case(case: Case, protocol: Protocol, out: Path) -> str | None:
    """Read, validate and preprocess one case into ``out/<ID>/``; returns the problem line of a bad case.

    Returns a message rather than raising so that it crosses the process boundary unchanged.
    """
    try:
        vols = read_case(case)
        depth = vols.seg.shape[2]
        if depth < protocol.z_stop:
            raise BadCaseError(case.id, f"volumes have {depth} axial slices, the protocol needs z < {protocol.z_stop}")
        images, brains = [], []
        for m in MODALITIES:
            vol = vols.images[m]
            try:  # statistics of the whole volume, applied to the slab only: 8x less work
                stats = normalisation_stats(vol, m, protocol)
            except ValueError as exc:
                raise BadCaseError(case.id, f"file {case.files[m].name}: {exc}") from None
            slab = axial_stack(vol, protocol)
            images.append(resize(apply_normalisation(slab, stats, protocol), protocol.size))
            brains.append(resize_mask(slab > 0, protocol.size))
    except BadCaseError as exc:
        return str(exc)
    folder = out / case.id
    folder.mkdir()
    np.save(folder / "img.npy", np.stack(images))
    np.save(folder / "brain.npy", np.stack(brains))
    np.save(folder / "seg.npy", resize_mask(axial_stack(vols.seg, protocol) > 0, protocol.size))
    np.save(folder / "area.npy", tumour_area(vols.seg, protocol))
    return None


def _init_worker() -> None:
    """One torch thread per process: the parallelism is across cases."""
    import torch

    torch.set_num_threads(1)


@dataclass(frozen=True)
class SliceCache:
    """A complete cache folder; arrays come back memory-mapped."""

    path: Path
    meta: dict

    @property
    def subjects(self) -> list[str]:
        return list(self.meta["cases"])

    @property
    def bad_cases(self) -> dict[str, str]:
        return dict(self.meta["bad_cases"])

    def _load(self, subject: str, name: str) -> np.ndarray:
        return np.load(self.path / subject / f"{name}.npy", mmap_mode="r")

    def image(self, subject: str, modality: str) -> np.ndarray:
        return self._load(subject, "img")[MODALITIES.index(modality)]

    def brain(self, subject: str, modality: str) -> np.ndarray:
        return self._load(subject, "brain")[MODALITIES.index(modality)]

    def seg(self, subject: str) -> np.ndarray:
        return self._load(subject, "seg")

    def area(self, subject: str) -> np.ndarray:
        return self._load(subject, "area")


def _build(cases: list[Case], protocol: Protocol, tmp: Path, on_bad_case: str, progress: bool,
           workers: int) -> dict[str, str]:
    """Prepare every case in parallel into ``tmp``; returns the bad cases (raises on one in stop mode)."""
    from rich.progress import Progress

    bad: dict[str, str] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool, \
            Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"Preparing {len(cases)} cases on {workers} workers", total=len(cases))
        futures = {pool.submit(prepare_case, case, protocol, tmp): case for case in cases}
        for future in as_completed(futures):
            problem = future.result()
            bar.advance(task)
            if problem is None:
                continue
            if on_bad_case == "stop":
                for f in futures:
                    f.cancel()
                raise UasbenchError(problem)
            bad[futures[future].id] = problem
    return dict(sorted(bad.items()))


def open_cache(cases: list[Case], protocol: Protocol, *, on_bad_case: str = "stop", progress: bool = True,
               workers: int | None = None) -> SliceCache:
    """The cache for these cases and this protocol, built first if absent."""
    if on_bad_case not in ("stop", "skip"):
        raise UasbenchError(f"option on_bad_case={on_bad_case!r}: use 'stop' or 'skip'")
    data_fp = data_fingerprint(cases)
    root = cache_root() / "slices"
    path = root / cache_key(data_fp, protocol)
    if not (path / "meta.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
        try:
            n_workers = max(1, min(workers or os.cpu_count() or 1, len(cases)))
            bad = _build(cases, protocol, tmp, on_bad_case, progress, n_workers)
            meta = {
                "format": CACHE_FORMAT, "data_fingerprint": data_fp, "protocol": protocol.to_dict(),
                "cases": [c.id for c in cases if c.id not in bad], "bad_cases": bad,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            try:
                tmp.rename(path)
            except OSError:  # another process finished the same cache first; theirs is as good as ours
                if not (path / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = json.loads((path / "meta.json").read_text())
    if meta["data_fingerprint"] != data_fp or meta["protocol"] != protocol.to_dict():
        raise UasbenchError(f"slice cache {path} does not match its key; delete the folder to rebuild it")
    if on_bad_case == "stop" and meta["bad_cases"]:
        raise UasbenchError(next(iter(meta["bad_cases"].values())))
    return SliceCache(path, meta)
