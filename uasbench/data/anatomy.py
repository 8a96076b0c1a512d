"""The shipped MNI ICBM152 2009 tissue maps (2 mm, cropped) and the 2 mm -> BraTS 1 mm grid transfer.

The asset is package data built by ``build_anatomy``; reading it needs only numpy (no nilearn).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterator

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


def upsample2_box(stack: np.ndarray, box: tuple[slice, slice, slice]) -> np.ndarray:
    """``upsample2(stack)`` inside the 1 mm box ``2 * box``, computed from ``box`` grown by one 2 mm voxel.

    Each 1 mm value depends on the two nearest 2 mm voxels per axis only, with the same weights wherever it
    sits, so the grown box gives exactly the values of the whole-volume call.
    """
    shape = stack.shape[1:]
    grown = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, shape))
    up = upsample2(stack[(slice(None), *grown)])
    return up[(slice(None), *(slice(2 * (b.start - g.start), 2 * (b.stop - g.start)) for b, g in zip(box, grown)))]


def _upsampled_slabs(volume: np.ndarray, planes: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first 1 mm x-plane, 1 mm values) of ``upsample2(volume[None])[0]``, ``planes`` 2 mm x-planes at a time.

    A slab's values stay in the CPU's cache, where the whole 1 mm volume would be a fresh 18 MB array per call
    that costs the operating system a page fault per 4 kB.
    """
    x, y, z = volume.shape
    for start in range(0, x, planes):
        stop = min(start + planes, x)
        yield 2 * start, upsample2_box(volume[None], (slice(start, stop), slice(0, y), slice(0, z)))[0]


def upsample2_at(volume: np.ndarray, flat_index: np.ndarray, planes: int = 16) -> np.ndarray:
    """``upsample2(volume[None])[0].reshape(-1)[flat_index]`` (sorted indices), slab by slab."""
    out = np.empty(len(flat_index), np.float32)
    for first, slab in _upsampled_slabs(volume, planes):
        offset, size = first * slab[0].size, slab.size
        lo, hi = np.searchsorted(flat_index, (offset, offset + size))
        out[lo:hi] = slab.reshape(-1)[flat_index[lo:hi] - offset]
    return out


def upsample2_above(volume: np.ndarray, level: float, planes: int = 16) -> np.ndarray:
    """``upsample2(volume[None])[0] > level``, slab by slab."""
    out = np.empty(tuple(2 * n for n in volume.shape), bool)
    for first, slab in _upsampled_slabs(volume, planes):
        np.greater(slab, level, out=out[first:first + len(slab)])
    return out


def embed(crop_1mm: np.ndarray, offset: tuple[int, int, int], fill: float = 0) -> np.ndarray:
    """Place a 1 mm array computed on the (upsampled) crop into the full BraTS 240x240x155 volume."""
    out = np.full(BRATS_SHAPE, fill, dtype=crop_1mm.dtype) if fill else np.zeros(BRATS_SHAPE, crop_1mm.dtype)
    x, y, z = (2 * o for o in offset)
    sx, sy, sz = crop_1mm.shape
    sz = min(sz, BRATS_SHAPE[2] - z)
    out[x:x + sx, y:y + sy, z:z + sz] = crop_1mm[:, :, :sz]
    return out
