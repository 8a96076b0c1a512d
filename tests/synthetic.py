"""Synthetic slices shared by the method tests: a noisy disk "brain", its inverse as the target modality Y,
and optionally a bright square lesion with its mask; and the contract kit's checkerboard-lesion slices."""
from __future__ import annotations

import numpy as np

from uasbench.data.slices import SliceSet
from uasbench.testing import pattern_lesion_slices  # noqa: F401  (the contract kit's slices, shared by tests)


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
