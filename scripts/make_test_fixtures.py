"""Cut the small real-data test fixtures in tests/fixtures/real-<name>/ from the full real cases.

Usage: python scripts/make_test_fixtures.py SOURCE [--out tests/fixtures] [--only brats,ixi,...]

SOURCE is a folder holding the full cases as ``real-brats/``, ``real-ixi/``, ``real-mslub/`` and
``real-isles22/`` (any of them; missing ones are skipped). Each fixture keeps exactly the relative paths and
file names of its source; JSON sidecars are copied unchanged, README.md files are not copied (each fixture
has its own, hand-written, with the source's attribution and licence) and a SHA256SUMS file is rewritten
for the fixture's files. Every NIfTI keeps its source header: datatype, scl_slope/scl_inter, qform and sform
codes, orientation (axis codes), units and description. Two ways of cutting, chosen per dataset (CUTS):

- ``slab``: the array keeps its shape and affine, voxels outside the kept axial slabs are set to 0. BraTS
  keeps z 70..89, the slices the benchmark protocol reads, so runs and predictions on the fixture see
  exactly the real protocol slices at their real indices, and z 100 (tumour in both cases) for slices
  scored outside the protocol.
- ``stride``: every n-th voxel along each axis (starting at index 0), with the affine scaled by n, so each
  kept voxel sits at the same world position as in the source (voxel sizes become n times larger).

The output is deterministic (gzip without a time stamp), and every written file is read back and its header
checked against the source; a mismatch stops the script.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Cut:
    kind: str  # "slab" or "stride"
    z_slabs: tuple[tuple[int, int], ...] = ()  # slab: kept axial index ranges, stop exclusive
    step: int = 1  # stride: keep every step-th voxel


CUTS = {
    # The protocol's slices (uasbench.data.preprocess.Preparation) and one slice above them with tumour in both
    # cases, so that `predict --slices all` has real tissue outside the protocol.
    "brats": Cut("slab", z_slabs=((70, 90), (100, 101))),
    "ixi": Cut("stride", step=2),
    "mslub": Cut("stride", step=2),
    "isles22": Cut("stride", step=2),
}
# Header fields that must survive the cut unchanged (dim, pixdim and the affine change by design).
KEPT_FIELDS = ("datatype", "bitpix", "scl_slope", "scl_inter", "qform_code", "sform_code", "xyzt_units", "descrip",
               "intent_code", "dim_info", "slice_code", "cal_min", "cal_max", "aux_file")


def cut_volume(src: Path, dst: Path, cut: Cut) -> None:
    """Write the cut of one NIfTI file, its raw (unscaled) values and header kept."""
    img = nib.load(src)
    header = img.header
    raw = np.asanyarray(img.dataobj.get_unscaled())
    q_affine, q_code = header.get_qform(coded=True)
    s_affine, s_code = header.get_sform(coded=True)
    q_affine = header.get_qform() if q_affine is None else q_affine
    s_affine = header.get_sform() if s_affine is None else s_affine
    if cut.kind == "slab":
        data = np.zeros_like(raw)
        for lo, hi in cut.z_slabs:
            data[:, :, lo:hi] = raw[:, :, lo:hi]
        scale = np.eye(4)
    else:
        data = np.ascontiguousarray(raw[:: cut.step, :: cut.step, :: cut.step])
        scale = np.diag([cut.step, cut.step, cut.step, 1.0])
    out = nib.Nifti1Image(data, None, header=header.copy())
    out.set_qform(q_affine @ scale, code=int(q_code))
    out.set_sform(s_affine @ scale, code=int(s_code))
    out.header.set_slope_inter(*header.get_slope_inter())
    dst.parent.mkdir(parents=True, exist_ok=True)
    # nibabel's own gzip writer stores the current time; write uncompressed bytes and gzip them without it.
    raw_nii = out.to_bytes()
    with open(dst, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", filename="", mtime=0, compresslevel=9) as gz:
        gz.write(raw_nii)
    _check(img, nib.load(dst), scale)


def _check(src: nib.Nifti1Image, got: nib.Nifti1Image, scale: np.ndarray) -> None:
    a, b = src.header, got.header
    for field in KEPT_FIELDS:
        nan_ok = a[field].dtype.kind == "f"
        if not np.array_equal(a[field], b[field], equal_nan=nan_ok):
            sys.exit(f"{got.get_filename()}: header field {field} changed: {a[field]} -> {b[field]}")
    if nib.aff2axcodes(src.affine) != nib.aff2axcodes(got.affine):
        sys.exit(f"{got.get_filename()}: orientation changed")
    if not np.allclose(src.affine @ scale, got.affine, atol=1e-4):
        sys.exit(f"{got.get_filename()}: affine is not the source's scaled by the cut")


def make_fixture(source: Path, out: Path, cut: Cut) -> list[Path]:
    """Mirror ``source`` into ``out``: NIfTI files cut, JSON sidecars copied; returns the written files."""
    if out.exists():
        shutil.rmtree(out)
    written = []
    for src in sorted(source.rglob("*")):
        rel = src.relative_to(source)
        dst = out / rel
        if src.is_dir() or src.name in ("README.md", "SHA256SUMS"):
            continue
        if src.name.endswith((".nii.gz", ".nii")):
            cut_volume(src, dst, cut)
        elif src.suffix == ".json":
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            sys.exit(f"{src}: unexpected file kind; extend make_test_fixtures.py to handle it")
        written.append(dst)
    if (source / "SHA256SUMS").is_file():
        lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}\n"
                 for p in written]
        (out / "SHA256SUMS").write_text("".join(lines))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding real-brats/, real-ixi/, ...")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    parser.add_argument("--only", default=",".join(CUTS), help=f"comma-separated subset of {','.join(CUTS)}")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(CUTS))
    if unknown:
        parser.error(f"--only: unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(CUTS)}")
    if not args.source.is_dir():
        parser.error(f"source folder {args.source} does not exist")
    for name in names:
        source = args.source / f"real-{name}"
        if not source.is_dir():
            print(f"skipped real-{name}: {source} not found")
            continue
        # The hand-written README of the fixture survives the rebuild.
        out = args.out / f"real-{name}"
        readme = (out / "README.md").read_bytes() if (out / "README.md").is_file() else None
        files = make_fixture(source, out, CUTS[name])
        if readme is not None:
            (out / "README.md").write_bytes(readme)
        size = sum(p.stat().st_size for p in files)
        print(f"real-{name}: {len(files)} files, {size / 1e6:.2f} MB -> {out}")


if __name__ == "__main__":
    main()
