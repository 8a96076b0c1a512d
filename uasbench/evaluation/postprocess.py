"""Post-processing shared by every method, so that score maps are compared under one identical rule.

The official MMCCD code multiplies its maps by the brain mask and by the brain mask eroded with
``disk(4)``; it uses no median filter. Both steps are toggles here and are recorded with the results.
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


@dataclass(frozen=True)
class PostProcess:
    """Settings of the shared post-processing; ``to_dict()`` goes into every result file."""

    brain_mask: bool = True
    erode_brain_px: int = field(default=0, metadata={"min": 0, "max": MAX_FILTER_PX, "option": "--erode-brain"})
    median_size: int = field(default=0, metadata={"min": 0, "max": MAX_FILTER_PX, "option": "--median"})

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values = {k: int(v) if isinstance(v, np.integer) else v for k, v in values.items()}
        for name, value in checked_values(type(self), values, "", owner="post-processing").items():
            object.__setattr__(self, name, value)
        if self.erode_brain_px and not self.brain_mask:
            raise UasbenchError("post-processing option erode_brain_px needs brain_mask=True")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
