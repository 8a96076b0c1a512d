"""Per-volume preparation arithmetic, old against new, on one core: ``normalisation_stats`` (brain voxels,
percentiles, mean and std of the inner range) and ``prepare_slices`` (those statistics, then the protocol's
20-slice slab normalised and area-resized to 128 with its brain mask). The old code is the frozen copy in
``_reference_preprocess.py``; both must give the same bytes, which this script checks before it times.

    OMP_NUM_THREADS=1 python benchmarks/normalisation_stats.py
    OMP_NUM_THREADS=1 python benchmarks/normalisation_stats.py --nifti CASE/CASE_t1.nii.gz --repeat 30

Volumes: phantom subject 0's T1 (int16) as generated (C order), in the Fortran order that nibabel gives for a
file, and as float32; with ``--nifti``, each file as nibabel reads it (``dataobj``, its stored dtype).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

import _reference_preprocess as old
from uasbench.data import preprocess as new
from uasbench.data.phantom import generate_subject


def best_of(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best seconds of each function, run interleaved so that both meet the same machine load."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def check_identical(vol: np.ndarray, modality: str, protocol: new.Preparation) -> None:
    """Refuse to time code that changed a result."""
    if new.normalisation_stats(vol, modality, protocol) != old.normalisation_stats(vol, modality, protocol):
        raise SystemExit("normalisation_stats differs from the old code")
    for a, b in zip(new.prepare_slices(vol, modality, protocol, protocol.z_values),
                    old.prepare_slices(vol, modality, protocol, protocol.z_values)):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            raise SystemExit("prepare_slices differs from the old code")


def compare(label: str, vol: np.ndarray, modality: str, repeat: int) -> None:
    for protocol in (new.Preparation(), new.Preparation(normalisation="official")):
        check_identical(vol, modality, protocol)
        z = protocol.z_values
        t = best_of({"old stats": lambda: old.normalisation_stats(vol, modality, protocol),
                     "new stats": lambda: new.normalisation_stats(vol, modality, protocol),
                     "old prepare": lambda: old.prepare_slices(vol, modality, protocol, z),
                     "new prepare": lambda: new.prepare_slices(vol, modality, protocol, z)}, repeat)
        cells = [f"{t['old ' + k] * 1e3:7.1f} {t['new ' + k] * 1e3:7.1f} {t['old ' + k] / t['new ' + k]:5.2f}x"
                 for k in ("stats", "prepare")]
        print(f"{label:<34} {protocol.normalisation:<8} {cells[0]}   {cells[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nifti", type=Path, action="append", default=[], help="a NIfTI volume (repeatable)")
    parser.add_argument("--modality", default=None,
                        help="modality of every --nifti (default: from each name, e.g. _flair.nii.gz)")
    parser.add_argument("--repeat", type=int, default=20, help="interleaved repetitions; the best of each counts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"one thread, best of {args.repeat}; milliseconds old, new and old/new")
    print(f"{'':<43} {'normalisation_stats':^21}   {'prepare_slices':^21}")
    print(f"{'volume':<34} {'norm':<8} {'old':>7} {'new':>7} {'ratio':>6}   {'old':>7} {'new':>7} {'ratio':>6}")
    t1 = generate_subject(0).images["t1"]
    for label, vol in (("phantom t1 int16, C order", t1), ("phantom t1 int16, Fortran order", np.asfortranarray(t1)),
                       ("phantom t1 float32, Fortran order", np.asfortranarray(t1, dtype=np.float32))):
        compare(label, vol, "t1", args.repeat)
    for path in args.nifti:
        vol = np.asanyarray(nib.load(path).dataobj)
        modality = args.modality or path.name.split(".")[0].rsplit("_", 1)[-1].lower()
        compare(f"{path.name[:24]} {vol.dtype}", vol, modality, args.repeat)


if __name__ == "__main__":
    main()
