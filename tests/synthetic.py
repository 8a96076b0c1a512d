"""Synthetic slices shared by the method tests: a noisy disk "brain", its inverse as the target modality Y,
and optionally a bright square lesion with its mask."""
from __future__ import annotations

import numpy as np

from uasbench.data.slices import SliceSet


def disk_slices(n: int, size: int, seed: int = 0, *, lesion: tuple[slice, slice] | None = None,
                paired: bool = True) -> SliceSet:
    """``n`` slices of ``size`` x ``size``: X is 1 +- 10% noise inside a centred disk (radius 7/16 of the side),
    Y = -X when ``paired``; a ``lesion`` box adds 2 to X and is returned as ``seg``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre, radius = size // 2, 7 * size // 16
    brain = np.broadcast_to((yy - centre) ** 2 + (xx - centre) ** 2 < radius**2, (n, size, size)).copy()
    x = (brain * (1.0 + 0.1 * rng.normal(size=(n, size, size)))).astype(np.float32)
    seg = np.zeros_like(brain)
    if lesion is not None:
        seg[(slice(None), *lesion)] = True
        x[seg] += 2.0
    return SliceSet(x=x, brain=brain, subjects=tuple(f"s{i}" for i in range(n)), z=np.arange(n),
                    y=(-x).astype(np.float32) if paired else None, seg=seg if lesion is not None else None)


def pattern_lesion_slices(n: int, seed: int, *, lesion: bool, size: int = 32) -> SliceSet:
    """Slices whose lesion is a pattern, not a brightness: a checkerboard of 2x2-pixel cells, +-0.6 around the
    local tissue, in a 8x8 square at a random place. Healthy tissue is smooth (1 +- about 0.3, from blurred noise)
    with 3% pixel noise, so the lesion's intensities lie inside the healthy range: an intensity or identity map
    ranks lesion pixels barely above chance, and only a method that learned what healthy tissue looks like
    finds it. Y = -(X blurred with sigma 1) inside the brain: a translation that erases fine patterns, as the
    cyclic methods need."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre, radius = size / 2 - 0.5, 7 * size / 16
    brain = (yy - centre) ** 2 + (xx - centre) ** 2 < radius**2
    checker = np.where(((yy // 2) + (xx // 2)) % 2 == 0, 0.6, -0.6)
    xs, ys, segs = [], [], []
    for _ in range(n):
        texture = gaussian_filter(rng.normal(size=(size, size)), 3)
        image = 1.0 + 0.3 * texture / texture.std() + 0.03 * rng.normal(size=(size, size))
        seg = np.zeros((size, size), dtype=bool)
        if lesion:
            top, left = rng.integers(size // 2 - 8, size // 2, 2)
            seg[top:top + 8, left:left + 8] = True
            image = np.where(seg, image + checker, image)
        image = np.where(brain, image, 0.0)
        xs.append(image)
        ys.append(np.where(brain, -gaussian_filter(image, 1), 0.0))
        segs.append(seg)
    return SliceSet(x=np.stack(xs).astype(np.float32), brain=np.broadcast_to(brain, (n, size, size)).copy(),
                    subjects=tuple(f"p{seed}-{i}" for i in range(n)), z=np.arange(n),
                    y=np.stack(ys).astype(np.float32), seg=np.stack(segs) if lesion else None)
