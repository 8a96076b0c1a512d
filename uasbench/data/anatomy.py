"""The shipped MNI ICBM152 2009 tissue maps (2 mm, cropped) and the 2 mm -> BraTS 1 mm grid transfer.

The asset is package data built by ``build_anatomy``; reading it needs only numpy (no nilearn).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

BRATS_SHAPE = (240, 240, 155)
TISSUES = ("gm", "wm", "csf", "ventricles")


@dataclass(frozen=True)
class Anatomy:
    """Tissue probabilities in [0, 1] on the cropped 2 mm grid; ``offset`` locates the crop in 2 mm voxels."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    offset: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.gm.shape


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Load ``assets/mni152_anatomy.npz`` from the installed package (cached per process)."""
    ref = resources.files("uasbench.data") / "assets" / "mni152_anatomy.npz"
    with resources.as_file(ref) as path, np.load(path) as data:
        maps = {k: data[k].astype(np.float32) / 255.0 for k in TISSUES}
        offset = tuple(int(v) for v in data["offset"])
    return Anatomy(**maps, offset=offset)


def upsample2(stack: np.ndarray) -> np.ndarray:
    """Trilinear x2 upsampling of (C, X, Y, Z) 2 mm maps to 1 mm, pixel-edge aligned with 2x2x2 block means.

    torch's ``align_corners=False`` interpolation has exactly that geometry and is much faster than scipy; done
    as a bilinear pass over (Y, Z) and a linear pass over X, which gives the same values as the trilinear call
    and vectorises better on a CPU.
    """
    c, x, y, z = stack.shape
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(stack)).reshape(1, c * x, y, z)
        t = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
        t = F.interpolate(t.reshape(c, 1, x, 4 * y * z), scale_factor=(2, 1), mode="bilinear", align_corners=False)
    return t.reshape(c, 2 * x, 2 * y, 2 * z).numpy()


def embed(crop_1mm: np.ndarray, offset: tuple[int, int, int], fill: float = 0) -> np.ndarray:
    """Place a 1 mm array computed on the (upsampled) crop into the full BraTS 240x240x155 volume."""
    out = np.full(BRATS_SHAPE, fill, dtype=crop_1mm.dtype) if fill else np.zeros(BRATS_SHAPE, crop_1mm.dtype)
    x, y, z = (2 * o for o in offset)
    sx, sy, sz = crop_1mm.shape
    sz = min(sz, BRATS_SHAPE[2] - z)
    out[x:x + sx, y:y + sy, z:z + sz] = crop_1mm[:, :, :sz]
    return out
