"""Post-processing shared by every method, so that score maps are compared under one identical rule.

The official MMCCD code multiplies its maps by the brain mask and by the brain mask eroded with
``disk(4)``; it uses no median filter. Both steps are toggles here and are recorded with the results.

Two options act on whole volumes only (``uasbench.evaluation.volumes``): ``median_3d``, a median filter
over a cube of that many voxels a side, run over each run of consecutive scored slices (a gap in z is
never bridged), and ``min_component_voxels``, which drops connected components of a *segmentation*
(after thresholding, before every threshold-dependent metric and threshold search) smaller than that.
Both are off by default and are then left out of ``to_dict()``, so the settings recorded by every earlier
run, and the leaderboard's benchmark identity built from them, stay byte-identical.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy import ndimage

from uasbench.config_check import checked_values
from uasbench.errors import UasbenchError

#: The largest erosion radius and median window: a 128 x 128 slice has nothing left beyond them, and larger
#: values only allocate memory for hours (checked before any work starts, on the CLI and in benchmark files).
MAX_FILTER_PX = 64

VOLUME_OPTIONS = ("median_3d", "min_component_voxels")


@dataclass(frozen=True)
class PostProcess:
    """Settings of the shared post-processing; ``to_dict()`` goes into every result file."""

    brain_mask: bool = True
    erode_brain_px: int = field(default=0, metadata={"min": 0, "max": MAX_FILTER_PX, "option": "--erode-brain"})
    median_size: int = field(default=0, metadata={"min": 0, "max": MAX_FILTER_PX, "option": "--median"})  # 2-D
    median_3d: int = field(default=0, metadata={"min": 0, "max": 15, "option": "--median-3d"})  # volume level only
    min_component_voxels: int = field(default=0, metadata={"min": 0, "max": 100_000,
                                                           "option": "--min-component"})  # volume level only

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values = {k: int(v) if isinstance(v, np.integer) else v for k, v in values.items()}
        for name, value in checked_values(type(self), values, "", owner="post-processing").items():
            object.__setattr__(self, name, value)
        if self.erode_brain_px and not self.brain_mask:
            raise UasbenchError("post-processing option erode_brain_px needs brain_mask=True")

    @property
    def volume_only(self) -> bool:
        """Whether an option is set that only the volume-level evaluation can apply."""
        return bool(self.median_3d or self.min_component_voxels)

    def to_dict(self) -> dict[str, Any]:
        """All settings, the volume-level ones only when set (earlier runs' records stay identical)."""
        data = asdict(self)
        for name in VOLUME_OPTIONS:
            if not data[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "PostProcess":
        """Settings read back from a manifest; anything but a dict of known fields is one clear line."""
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not set(data) <= known:
            raise UasbenchError(f"post-processing settings {data!r} are not a dict of {', '.join(sorted(known))}")
        return cls(**data)


def disk(radius: int) -> np.ndarray:
    """Boolean disk footprint of the given radius (same shape rule as skimage.morphology.disk)."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy**2 + xx**2) <= radius**2


def erode(masks: np.ndarray, radius: int) -> np.ndarray:
    """Erode each (H, W) mask of a stack by ``disk(radius)`` as ``skimage.morphology.erosion`` does (the
    official code's call): a grey erosion whose border reflects the image, so brain touching the image
    edge is not eaten from outside."""
    masks = np.asarray(masks, dtype=bool)
    if radius == 0 or masks.size == 0:
        return masks.copy()
    footprint = disk(radius)
    return np.stack([ndimage.grey_erosion(m.astype(np.uint8), footprint=footprint, mode="reflect") > 0
                     for m in masks])


def evaluation_mask(brain: np.ndarray, post: PostProcess) -> np.ndarray:
    """The pixels where thresholds are searched and metrics computed: the (eroded) brain, or everything."""
    brain = np.asarray(brain, dtype=bool)
    if not post.brain_mask:
        return np.ones_like(brain)
    return erode(brain, post.erode_brain_px)


def apply_postprocess(maps: np.ndarray, brain: np.ndarray, post: PostProcess) -> tuple[np.ndarray, np.ndarray]:
    """Median-filter each slice (optional), then restrict it to the evaluation mask.

    Returns ``(maps, mask)``. Outside the mask a slice takes the smallest score it has inside the mask
    (0 when the mask is empty): finite, so scikit-learn accepts it, and never above any in-mask score,
    so background ranks last. Segmentations are additionally ANDed with ``mask`` by the metrics, so a
    threshold below that floor still never marks background.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape != np.shape(brain):
        raise UasbenchError(f"score maps of shape {maps.shape} do not match brain masks of shape {np.shape(brain)}")
    if not np.all(np.isfinite(maps)):
        raise UasbenchError("score maps contain NaN or infinite values")
    if post.median_size > 1:
        maps = ndimage.median_filter(maps, size=(1, post.median_size, post.median_size), mode="nearest")
    mask = evaluation_mask(brain, post)
    out = maps.copy()
    for i in range(len(out)):
        floor = out[i][mask[i]].min() if mask[i].any() else 0.0
        out[i][~mask[i]] = floor
    return out, mask


def runs_of_slices(z: np.ndarray) -> list[slice]:
    """Index ranges of consecutive axial positions in a sorted ``z``: a volume's pieces without gaps."""
    z = np.asarray(z)
    cuts = np.flatnonzero(np.diff(z) != 1) + 1
    bounds = [0, *cuts.tolist(), len(z)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def median_filter_3d(maps: np.ndarray, z: np.ndarray, size: int) -> np.ndarray:
    """Median filter over ``size``-voxel cubes of a (D, H, W) volume whose slices sit at sorted axial
    positions ``z``; each run of consecutive slices is filtered on its own (edges repeat, as in 2-D)."""
    out = np.asarray(maps, dtype=np.float64).copy()
    if size <= 1:
        return out
    for run in runs_of_slices(z):
        out[run] = ndimage.median_filter(out[run], size=size, mode="nearest")
    return out


def remove_small_components(seg: np.ndarray, min_voxels: int, structure: np.ndarray) -> np.ndarray:
    """``seg`` without its connected components (``structure``: scipy connectivity) below ``min_voxels``."""
    seg = np.asarray(seg, dtype=bool)
    if min_voxels <= 1 or not seg.any():
        return seg.copy()
    labels, n = ndimage.label(seg, structure=structure)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]
