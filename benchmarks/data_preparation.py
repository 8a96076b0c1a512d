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
# Real shared case -> (folder, glob of each image in reference-first order, glob of its label or None).
SPATIAL_CASES = {
    "brats TCGA-FG-6692": ("real-brats/TCGA-FG-6692", {m: f"*_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")},
                           "*_seg.nii.gz"),
    "ixi IXI002": ("real-ixi", {"t1": "*-T1.nii.gz", "t2": "*-T2.nii.gz"}, None),
    "mslub patient07": ("real-mslub", {m.lower(): f"*_{m}.nii.gz" for m in ("FLAIR", "T1", "T1POST", "T2")},
                        "*_GOLD_STANDARD.nii.gz"),
    "isles22 case0009": ("real-isles22", {m: f"*_{m}.nii.gz" for m in ("dwi", "adc", "flair")}, "*_msk.nii.gz"),
}


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


def _spatial_files(folder: Path, images: dict[str, str], label: str | None) -> tuple[dict[str, Path], Path | None]:
    found = {m: next(iter(sorted(folder.rglob(g))), None) for m, g in images.items()}
    if any(p is None for p in found.values()):
        raise FileNotFoundError(folder)
    return found, (next(iter(sorted(folder.rglob(label))), None) if label else None)  # type: ignore[return-value]


def bare_read(images: dict[str, Path], label: Path | None) -> None:
    """The floor: every file of the case decompressed into its stored dtype."""
    for path in [*images.values(), *([label] if label else [])]:
        np.asanyarray(nib.load(path).dataobj)


def prepare_case(images: dict[str, Path], label: Path | None, standard) -> object:
    """Read, bring onto the spatial standard, and cut the protocol's slices of every image."""
    from uasbench.data.preprocess import Preparation, prepare_slices
    from uasbench.data.spatial import standardise

    protocol = Preparation(spatial=standard)
    std = standardise({m: nib.load(p) for m, p in images.items()}, nib.load(label) if label else None, None,
                      standard)
    depth = next(iter(std.images.values())).shape[2]
    z = range(min(protocol.z_start, depth - 1), min(protocol.z_stop, depth))
    for modality, vol in std.images.items():
        prepare_slices(vol, modality, protocol, z)
    return std


def spatial_benchmark(shared: Path, repeat: int) -> None:
    """The spatial standard on the real shared cases, one core (see the module docstring)."""
    import SimpleITK as sitk
    import torch

    from uasbench.data.spatial import SpatialStandard

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    print(f"spatial standard on the real cases in {shared}, one core, best of {repeat}")
    print(f"{'case':<18} {'bare read':>9} {'prepare':>9} {'ratio':>6}  {'register':>9} {'Dice':>6}  what preparation did")
    for name, (sub, images, label) in SPATIAL_CASES.items():
        try:
            files, label_file = _spatial_files(shared / sub, images, label)
        except (FileNotFoundError, StopIteration):
            print(f"{name:<18} absent, skipped")
            continue
        bare_read(files, label_file)  # warm the page cache
        read_t, prep_t, reg_t = [], [], []
        for _ in range(repeat):
            start = time.perf_counter()
            bare_read(files, label_file)
            read_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            std = prepare_case(files, label_file, SpatialStandard())
            prep_t.append(time.perf_counter() - start)
        for _ in range(max(1, repeat // 2)):
            reg = prepare_case(files, label_file, SpatialStandard(register="mni152")).record.registration
            reg_t.append(reg["seconds"])
        read, prep = min(read_t), min(prep_t)
        print(f"{name:<18} {read:8.2f}s {prep:8.2f}s {prep / read:5.2f}x  {min(reg_t):8.2f}s {reg['dice']:6.3f}  "
              + "; ".join(std.record.lines()))
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
