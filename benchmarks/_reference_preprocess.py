"""The volume preparation arithmetic of ``uasbench.data.preprocess`` as it was before it was made faster (main at
27f8c4e), frozen: ``tests/test_preprocess_exact.py`` checks that today's code gives the same bytes, and
``benchmarks/normalisation_stats.py`` times both. The parts that did not change (``axial_stack``, ``resize``)
are imported rather than copied."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from uasbench.data.preprocess import Preparation, axial_stack, resize


def brain_values(vol: np.ndarray) -> np.ndarray:
    """``vol[vol > 0]``, indexing only the brain's bounding box."""
    brain = vol > 0
    box = []
    for axis in range(vol.ndim):
        hit = np.flatnonzero(brain.any(axis=tuple(a for a in range(vol.ndim) if a != axis)))
        box.append(slice(hit[0], hit[-1] + 1) if hit.size else slice(0, 0))
    box = tuple(box)
    return vol[box][brain[box]]


def normalisation_stats(vol: np.ndarray, modality: str, protocol: Preparation) -> tuple[float, float]:
    """(centre, scale) of one whole 3-D volume, from its brain voxels (``vol > 0``) only."""
    values = brain_values(vol)
    if values.size == 0:
        raise ValueError("empty brain: no voxel above 0")
    if protocol.normalisation == "official":
        upper = float(np.quantile(values, protocol.official_upper_quantile))
        return upper / 2, upper / 6
    lo_p, hi_p = protocol.paper_flair_percentiles if modality == "flair" else protocol.paper_percentiles
    lo, hi = np.percentile(values, [lo_p, hi_p])
    inner = values[(values >= lo) & (values <= hi)]
    std = float(inner.std())
    return float(inner.mean()), std if std > 0 else 1.0


def apply_normalisation(x: np.ndarray, stats: tuple[float, float], protocol: Preparation) -> np.ndarray:
    """Normalise any part of a volume with the whole volume's statistics."""
    centre, scale = stats
    out = ((x - np.float32(centre)) / np.float32(scale)).astype(np.float32)
    if protocol.normalisation == "paper":
        out[~(x > 0)] = protocol.paper_background
    return out


def resize_mask(stack: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a boolean stack and re-binarise with ``> 0``."""
    return resize(stack.astype(np.float32), size) > 0


def prepare_slices(vol: np.ndarray, modality: str, protocol: Preparation, z: range) -> tuple[np.ndarray, np.ndarray]:
    """Axial slices ``z`` of one volume, normalised and area-resized, with their brain masks."""
    stats = normalisation_stats(vol, modality, protocol)
    slab = axial_stack(vol, replace(protocol, z_start=z.start, z_stop=z.stop, slices="slab"))
    return resize(apply_normalisation(slab, stats, protocol), protocol.size), resize_mask(slab > 0, protocol.size)
