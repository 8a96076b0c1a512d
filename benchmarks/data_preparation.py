"""Time to prepare N subjects (discover, validate, normalise, select, resize, write the cache) against the
floors of merely reading the same NIfTI files with nibabel, all on the same number of worker processes.

    python benchmarks/data_preparation.py --subjects 8 --workers 2
    python benchmarks/data_preparation.py --phantom          # the embedded phantom instead of real copies
    python benchmarks/data_preparation.py --spatial          # the spatial standard on the real shared cases

By default the two real sample cases are copied N/2 times under new IDs into a temporary folder: those of
the in-repository fixture (only their protocol slabs hold values, so they decompress faster than whole
cases) unless `--real DIR` names a folder of whole BraTS-layout cases, as the README's figures used.

``--spatial`` times, on one core and interleaved (best of ``--repeat``), for every real shared case present
(BraTS, IXI, MSLUB, ISLES'22, in the folder ``--shared DIR`` or ``$UASBENCH_SHARED_DATA`` names, holding
``real-brats/``, ``real-ixi/``, ``real-mslub/`` and ``real-isles22/``): a bare nibabel read of the case's
files against reading them and preparing them without registration (the spatial standard, then the
protocol's slices of every image: normalise, slice, resize), target at most 2x; and the seconds that
registration to the MNI152 template takes per case, target at most 10 s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real-brats"
# Real shared cases: (name, folder under --shared); each is read through the layout detected in it.
SPATIAL_CASES = (("brats", "real-brats"), ("ixi", "real-ixi"), ("mslub", "real-mslub"), ("isles22", "real-isles22"))


def copy_real_cases(real: Path, out: Path, n: int) -> Path:
    """``n`` cases made of the real ones, renamed ``COPY_<k>_<ID>`` (files renamed to match)."""
    originals = sorted(p for p in real.iterdir() if p.is_dir())
    for k in range(n):
        src = originals[k % len(originals)]
        new_id = f"COPY_{k // len(originals):03d}_{src.name}"
        (out / new_id).mkdir(parents=True)
        for f in src.iterdir():
            shutil.copyfile(f, out / new_id / f.name.replace(src.name, new_id))
    return out


def read_float(folder: Path) -> float:
    """Floor 1, the usual way to read NIfTI (the official code does this): every file as floats."""
    return float(sum(nib.load(f).get_fdata(dtype=np.float32)[0, 0, 0] for f in sorted(folder.glob("*.nii*"))))


def bare_read(files: list[Path]) -> None:
    """The floor: every file of the case decompressed into its stored dtype."""
    for path in files:
        np.asanyarray(nib.load(path).dataobj)


def read_raw(folder: Path) -> None:
    """Floor 2, the least nibabel can do: every file of a case folder decompressed into its stored dtype."""
    bare_read(sorted(folder.glob("*.nii*")))


def spatial_benchmark(shared: Path, repeat: int) -> None:
    """The spatial standard on the real shared cases, one core (see the module docstring)."""
    import SimpleITK as sitk
    import torch

    from uasbench.data.cache import prepare_case
    from uasbench.data.layouts import open_dataset
    from uasbench.data.layouts.base import read_case
    from uasbench.data.preprocess import Preparation
    from uasbench.data.spatial import SpatialStandard, plan

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    protocol = Preparation()
    print(f"spatial standard on the real cases in {shared}, one core, best of {repeat}")
    print(f"{'case':<34} {'bare read':>9} {'prepare':>9} {'ratio':>6}  {'register':>9} {'Dice':>6}  what preparation did")
    with tempfile.TemporaryDirectory(prefix="uasbench-bench-") as tmp:
        for name, sub in SPATIAL_CASES:
            if not (shared / sub).is_dir():
                print(f"{name:<34} absent, skipped")
                continue
            data = open_dataset(shared / sub)
            for case in data.cases:
                files = sorted(set(case.files.values()))
                bare_read(files)  # warm the page cache
                read_t, prep_t = [], []
                for _ in range(repeat):  # interleaved, best of each: robust to other load on the machine
                    start = time.perf_counter()
                    bare_read(files)
                    read_t.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    problem = prepare_case(data, case, protocol, Path(tmp))
                    prep_t.append(time.perf_counter() - start)
                    if problem:
                        raise SystemExit(problem)
                done = "; ".join(plan({m: nib.load(case.files[m]) for m in data.modalities if m in case.files},
                                      protocol.spatial))
                registered = read_case(data, case, spatial=SpatialStandard(register="mni152"),
                                       axial=protocol.z_values).spatial.registration
                read, prep = min(read_t), min(prep_t)
                print(f"{data.layout + ' ' + case.id:<34} {read:8.2f}s {prep:8.2f}s {prep / read:5.2f}x  "
                      f"{registered['seconds']:8.2f}s {registered['dice']:6.3f}  {done}")
    print("prepare: read, validate, spatial standard, normalise, slice, resize and write the case's cache entry "
          "(uasbench.data.cache.prepare_case)")
    print("targets: prepare <= 2x the bare read; registration <= 10 s per case on one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; the best of each counts")
    parser.add_argument("--phantom", action="store_true", help="use the embedded phantom (first N subjects)")
    parser.add_argument("--spatial", action="store_true", help="only the spatial standard on the real cases of --shared")
    parser.add_argument("--shared", type=Path, default=os.environ.get("UASBENCH_SHARED_DATA"),
                        help="folder of the whole real cases (real-brats/, real-ixi/, ...) for --spatial")
    parser.add_argument("--real", type=Path, default=REAL, help="BraTS-layout cases to copy (default: the fixture)")
    args = parser.parse_args()
    if args.spatial:
        if args.shared is None:
            parser.error("--spatial needs --shared DIR (or UASBENCH_SHARED_DATA): the folder of the whole real cases")
        spatial_benchmark(Path(args.shared), args.repeat)
        return

    with tempfile.TemporaryDirectory(prefix="uasbench-bench-") as tmp:
        import dataclasses

        from uasbench.data.cache import open_cache
        from uasbench.data.layouts import open_dataset
        from uasbench.data.preprocess import Preparation

        if args.phantom:
            from uasbench.data.benchmark_data import dataset

            cases = dataset(None).cases
            cases, source = cases[: args.subjects], "phantom"
        else:
            cases = open_dataset(copy_real_cases(args.real, Path(tmp) / "data", args.subjects)).cases
            source = f"copies of the real cases in {args.real}"
        folders = [c.folder for c in cases]
        times: dict[str, list[float]] = {"read_float": [], "read_raw": [], "prepare": []}
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(read_raw, folders))  # warm the page cache, so every timing reads from memory
            for rep in range(args.repeat):  # interleaved, best of each: robust to other load on the machine
                for name, read in (("read_float", read_float), ("read_raw", read_raw)):
                    start = time.perf_counter()
                    list(pool.map(read, folders))
                    times[name].append(time.perf_counter() - start)
                os.environ["UASBENCH_CACHE_DIR"] = str(Path(tmp) / f"cache{rep}")  # cold, never the user's
                start = time.perf_counter()
                data = open_dataset(folders[0].parent)
                open_cache(dataclasses.replace(data, cases=data.cases[: len(folders)]), Preparation(), progress=False,
                           workers=args.workers)
                times["prepare"].append(time.perf_counter() - start)
        best = {name: min(t) for name, t in times.items()}

    n = len(folders)
    print(f"source     : {source}")
    print(f"subjects   : {n}, workers: {args.workers} (all timings), best of {args.repeat}")
    print(f"read float : {best['read_float']:7.2f} s  ({best['read_float'] / n:.2f} s/subject, get_fdata of 5 files)")
    print(f"read raw   : {best['read_raw']:7.2f} s  ({best['read_raw'] / n:.2f} s/subject, dataobj of 5 files)")
    print(f"prepare    : {best['prepare']:7.2f} s  ({best['prepare'] / n:.2f} s/subject, cold slice cache)")
    print(f"ratio      : {best['prepare'] / best['read_float']:.2f}x the float read, "
          f"{best['prepare'] / best['read_raw']:.2f}x the raw read  (target <= 1.5x)")


if __name__ == "__main__":
    main()
