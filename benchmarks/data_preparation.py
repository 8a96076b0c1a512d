"""Time to prepare N subjects (discover, validate, normalise, select, resize, write the cache) against the
floors of merely reading the same NIfTI files with nibabel, all on the same number of worker processes.

    python benchmarks/data_preparation.py --subjects 8 --workers 2
    python benchmarks/data_preparation.py --phantom          # the embedded phantom instead of real copies

By default the two real sample cases are copied N/2 times under new IDs into a temporary folder: those of
the in-repository fixture (only their protocol slabs hold values, so they decompress faster than whole
cases) unless `--real DIR` names a folder of whole BraTS-layout cases, as the README's figures used.
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


def read_raw(folder: Path) -> float:
    """Floor 2, the least nibabel can do: every file decompressed into its stored dtype."""
    return float(sum(np.asanyarray(nib.load(f).dataobj)[0, 0, 0] for f in sorted(folder.glob("*.nii*"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; the best of each counts")
    parser.add_argument("--phantom", action="store_true", help="use the embedded phantom (first N subjects)")
    parser.add_argument("--real", type=Path, default=REAL, help="BraTS-layout cases to copy (default: the fixture)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="uasbench-bench-") as tmp:
        from uasbench.data.brats import discover_cases
        from uasbench.data.cache import open_cache
        from uasbench.data.preprocess import Protocol

        if args.phantom:
            from uasbench.data.benchmark_data import dataset_cases

            _, cases = dataset_cases(None)
            cases, source = cases[: args.subjects], "phantom"
        else:
            _, cases = discover_cases(copy_real_cases(args.real, Path(tmp) / "data", args.subjects))
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
                _, cases = discover_cases(folders[0].parent)
                open_cache(cases[: len(folders)], Protocol(), progress=False, workers=args.workers)
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
