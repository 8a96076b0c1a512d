"""Write maps as NIfTI volumes that overlay the input scan exactly, and never leave half a file behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from uasbench.errors import UasbenchError
from uasbench.files import writing


def like_scan(data: np.ndarray, scan: nib.Nifti1Image, description: str) -> nib.Nifti1Image:
    """``data`` with the scan's affine and a copy of its header (qform, sform, units), retyped to ``data``'s
    dtype, unscaled, and with the scan's display window cleared so that viewers window the map itself."""
    header = scan.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"], header["cal_max"] = 0.0, 0.0
    header["descrip"] = description[:79].encode()
    return nib.Nifti1Image(data, scan.affine, header=header)


def save_together(images: dict[Path, nib.Nifti1Image]) -> None:
    """Write every image under a temporary name in its folder, then rename them all into place: an
    interrupted write leaves no file under a final name that is not complete."""
    written: list[tuple[Path, Path]] = []
    try:
        for final, image in images.items():
            tmp = final.with_name(f".{os.getpid()}.{final.name}")  # same suffix, so the same compression
            written.append((tmp, final))
            with writing(final):  # a full disk or a lost folder: one line naming the file
                nib.save(image, tmp)
        for tmp, final in written:
            with writing(final):
                os.replace(tmp, final)
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise


def check_output_folder(out: Path) -> Path:
    """Create ``out`` if needed and prove it takes files, before any work is done."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UasbenchError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out
