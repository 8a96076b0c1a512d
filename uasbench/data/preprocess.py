"""The MMCCD paper's preprocessing as a named, versioned protocol.

Choices (each one recorded in ``Preparation.to_dict()`` and so in the cache fingerprint):

* Slices: axial (third array axis) z in ``range(70, 90)``, i.e. 70..89. The paper says "70 to 90"; the
  official code stops at 89, and we follow the code. ``slices`` chooses the selection: ``"slab"`` (the
  default) keeps ``z_start..z_stop - 1``, which on the spatial standard's 1 mm grid is a range in millimetres
  (e.g. 40..120); ``"brain"`` keeps every axial slice of the volume (the data layer then uses those with
  brain), for protocols that score whole volumes. A slab protocol's record and fingerprint do not mention
  the selection, so caches and runs made before it existed keep their keys.
* Normalisation, per 3-D volume and modality:
  - ``"paper"`` (the paper's text): z-score with the mean and std of the brain voxels (``vol > 0``) whose
    intensity lies between the 2nd and 98th brain percentiles (2nd-90th for FLAIR). Background is then
    set to ``paper_background`` = 0.0, the mean brain intensity: the same constant for every volume, and
    the area resize blends the brain edge towards the mean instead of towards an extreme value.
  - ``"official"`` (the authors' code, for comparison with published numbers): ``vol * 6 / U - 3`` with
    U the 0.9 quantile of the brain voxels, for every modality, no clipping. Background lands on -3. The
    code computes U as a whole-volume percentile rescaled to the brain fraction and a lower bound that is
    0 in practice; we take the brain quantile and 0 directly (official-mmccd-code.md section 1).
* Brain mask: ``vol > 0`` of the *input* modality (the official code uses T2's for every pair).
* Spatial standard (``spatial``, see ``uasbench.data.spatial``): orientation, voxel size, in-plane field of
  view and optional template registration applied before slicing. Its default leaves BraTS volumes (LPS,
  1 mm, 240 x 240) untouched, so their slices are what they were before the standard existed.
* Resize 240 -> 128 by area interpolation (the official code's MONAI default); brain mask and tumour
  mask are area-resized too and re-binarised with ``> 0`` like the official code, which dilates them by
  at most one output pixel at their border.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from uasbench.choices import NORMALISATIONS, SLICE_SELECTIONS
from uasbench.data.quantiles import quantiles
from uasbench.data.spatial import SpatialStandard, bounding_box
from uasbench.errors import UasbenchError


@dataclass(frozen=True)
class Preparation:
    """Every number that decides what the methods see (the data preparation; "protocol" is kept for the evaluation
    protocol a user chooses). Change ``version`` when the code's meaning changes. Manifests, checkpoints, work
    folders and job files store it under the key ``protocol``, as runs always have, so earlier runs stay
    recognised."""

    name: str = "mmccd"
    version: int = 1
    z_start: int = 70
    z_stop: int = 90  # exclusive: slices 70..89, as in the official code
    size: int = 128
    normalisation: str = "paper"
    paper_percentiles: tuple[float, float] = (2.0, 98.0)
    paper_flair_percentiles: tuple[float, float] = (2.0, 90.0)
    paper_background: float = 0.0
    official_upper_quantile: float = 0.9
    val_healthy_per_subject: int = 4
    spatial: SpatialStandard = SpatialStandard()
    slices: str = "slab"

    def __post_init__(self) -> None:
        if isinstance(self.spatial, dict):  # a recorded protocol read back from JSON
            object.__setattr__(self, "spatial", SpatialStandard.from_dict(self.spatial))
        if self.normalisation not in NORMALISATIONS:
            raise UasbenchError(f"protocol option normalisation={self.normalisation!r}: use one of {NORMALISATIONS}")
        if self.slices not in SLICE_SELECTIONS:
            raise UasbenchError(f"protocol option slices={self.slices!r}: use one of {SLICE_SELECTIONS}")
        if not 0 <= self.z_start < self.z_stop:
            raise UasbenchError(f"protocol options z_start={self.z_start}, z_stop={self.z_stop}: need 0 <= start < stop")
        if self.size < 1:
            raise UasbenchError(f"protocol option size={self.size}: must be positive")
        if self.val_healthy_per_subject < 0:
            raise UasbenchError(f"protocol option val_healthy_per_subject={self.val_healthy_per_subject}: must be >= 0")
        for key in ("paper_percentiles", "paper_flair_percentiles"):
            lo, hi = getattr(self, key)
            if not 0 <= lo < hi <= 100:
                raise UasbenchError(f"protocol option {key}=({lo}, {hi}): need 0 <= low < high <= 100")
        if not 0 < self.official_upper_quantile <= 1:
            raise UasbenchError(f"protocol option official_upper_quantile={self.official_upper_quantile}: need (0, 1]")

    @property
    def z_values(self) -> range:
        return range(self.z_start, self.z_stop)

    def z_range(self, depth: int) -> range:
        """The axial positions the protocol keeps of a volume ``depth`` slices deep."""
        return range(self.z_first, depth if self.slices == "brain" else self.z_stop)

    @property
    def z_first(self) -> int:
        """The axial position of a cached case's first slice."""
        return 0 if self.slices == "brain" else self.z_start

    def to_dict(self) -> dict:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["spatial"] = self.spatial.to_dict()
        if self.slices == "slab":  # the record of every protocol before the choice existed
            del out["slices"]
        return out

    @classmethod
    def from_dict(cls, recorded: dict) -> "Preparation":
        """Inverse of ``to_dict`` (a manifest's or a job file's JSON lists become tuples again); a record
        made before the spatial standard existed gets the default one, which is what those runs did."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})

    def fingerprint(self) -> str:
        """Stable across runs and machines: a hash of the sorted JSON of every field."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _c_order(a: np.ndarray) -> np.ndarray:
    """``a`` (a view into a volume) as a C-contiguous array. numpy copies a Fortran-ordered 3-D view into C
    order with a whole plane's stride innermost; one middle-axis plane at a time is twice as fast."""
    if a.ndim != 3 or a.strides[2] <= max(a.strides[:2]) or a.flags.c_contiguous:
        return np.ascontiguousarray(a)
    out = np.empty(a.shape, a.dtype)
    for j in range(a.shape[1]):
        out[:, j, :] = a[:, j, :]
    return out


def brain_values(vol: np.ndarray) -> np.ndarray:
    """``vol[vol > 0]`` in C order, indexing only the brain's bounding box: boolean indexing of the whole
    240x240x155 volume costs as much as decompressing it, and the box is about a third of it."""
    box = bounding_box(vol > 0)
    if box is None:
        return np.empty(0, vol.dtype)
    values = _c_order(vol[box])
    return values[values > 0]


def normalisation_stats(vol: np.ndarray, modality: str, protocol: Preparation) -> tuple[float, float]:
    """(centre, scale) of one whole 3-D volume, from its brain voxels (``vol > 0``) only."""
    values = brain_values(vol)
    if values.size == 0:
        raise ValueError("empty brain: no voxel above 0")
    numeric = values.dtype.kind in "iuf" and values.dtype.itemsize <= 8  # not long double
    if protocol.normalisation == "official":
        q = protocol.official_upper_quantile
        upper = float(quantiles(values, [q], weak=True)[0] if numeric else np.quantile(values, q))
        return upper / 2, upper / 6  # (vol - U/2) / (U/6) == vol * 6/U - 3
    lo_p, hi_p = protocol.paper_flair_percentiles if modality == "flair" else protocol.paper_percentiles
    if numeric:
        lo, hi = quantiles(values, [lo_p / 100, hi_p / 100], weak=False)
    else:
        lo, hi = np.percentile(values, [lo_p, hi_p])
    if values.dtype.kind in "iu" and values.dtype.itemsize <= 4:  # exact in float64: whole bounds, own dtype
        inner = values[(values >= math.ceil(lo)) & (values <= math.floor(hi))]
    else:
        inner = values[(values >= lo) & (values <= hi)]
    std = float(inner.std())  # the same values in the same order: numpy's sums round the same way
    return float(inner.mean()), std if std > 0 else 1.0


def apply_normalisation(x: np.ndarray, stats: tuple[float, float], protocol: Preparation) -> np.ndarray:
    """Normalise any part of a volume (e.g. only the protocol's slab) with the whole volume's statistics."""
    centre, scale = stats
    out = np.subtract(x, np.float32(centre))
    np.divide(out, np.float32(scale), out=out)  # in place: the dtype of ``x - centre`` either way
    out = out.astype(np.float32, copy=False)
    if protocol.normalisation == "paper":
        out[~(x > 0)] = protocol.paper_background
    return out


def normalise(vol: np.ndarray, modality: str, protocol: Preparation) -> np.ndarray:
    """Intensity-normalise one whole 3-D volume as the protocol says."""
    return apply_normalisation(vol, normalisation_stats(vol, modality, protocol), protocol)


def axial_stack(vol: np.ndarray, protocol: Preparation) -> np.ndarray:
    """(H, W, D) volume -> (Z, H, W) stack of the protocol's axial slices, z ascending."""
    z = protocol.z_range(vol.shape[2])
    return np.ascontiguousarray(np.moveaxis(vol[:, :, z.start:z.stop], 2, 0))


def resize(stack: np.ndarray, size: int | tuple[int, int], mode: str = "area") -> np.ndarray:
    """(N, H, W) stack -> (N, *size) float32; an int size means a square grid.

    The one resampler of the toolkit: ``area`` (block averaging, MONAI's ``Resize`` default and the official
    code's 240 -> 128) shrinks the protocol's slices and a method's inputs to its internal grid without
    aliasing; ``bilinear`` enlarges a method's score maps back to the slices' grid. Same size: the input as
    float32 (not copied when it already is).
    """
    shape = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]
    if tuple(t.shape[-2:]) == shape:
        return t[:, 0].numpy()
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(t, size=shape, mode=mode, **kwargs)[:, 0].numpy()


def prepare_slices(vol: np.ndarray, modality: str, protocol: Preparation, z: range,
                   native: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Axial slices ``z`` of one volume as a method sees them, with their brain masks (``vol > 0``), both on
    the protocol's grid: normalised with the whole volume's statistics, area-resized. The slice cache does
    this for the protocol's slab of every modality; ``uasbench predict`` for the slab it applies a run to.

    The statistics come from ``native`` when given: the whole scan as stored, before the spatial standard
    interpolated it (``vol`` may then be only a part of the standard grid). Interpolation smooths the
    intensity histogram and shifts its percentiles, and the scan's own voxels are what was measured.
    Raises ``ValueError`` for a volume without brain voxels."""
    stats = normalisation_stats(vol if native is None else native, modality, protocol)
    slab = axial_stack(vol, replace(protocol, z_start=z.start, z_stop=z.stop, slices="slab"))
    return resize(apply_normalisation(slab, stats, protocol), protocol.size), resize_mask(slab > 0, protocol.size)


def resize_mask(stack: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a boolean stack and re-binarise with ``> 0`` (the official code's slight dilation).

    An area average of zeros and ones is above 0 exactly when its window holds a one, so a boolean (N, H, W)
    stack takes an OR over torch's windows instead (ten times cheaper); other stacks are resized."""
    if (stack.dtype != np.bool_ or stack.ndim != 3 or 0 in stack.shape[1:]
            or not isinstance(size, int) or size < 1):
        return resize(stack.astype(np.float32), size) > 0
    for axis in (1, 2):
        stack = _any_in_windows(stack, axis, size)
    return stack


def _any_in_windows(stack: np.ndarray, axis: int, size: int) -> np.ndarray:
    """OR of ``stack`` along ``axis`` over the ``size`` windows of torch's adaptive pooling (output ``i`` covers
    ``floor(i * n / size)`` up to ``ceil((i + 1) * n / size)``), shorter windows repeating their last entry."""
    n = stack.shape[axis]
    i = np.arange(size)
    start, end = i * n // size, -(-(i + 1) * n // size)
    out = np.take(stack, start, axis=axis)
    for k in range(1, int((end - start).max())):
        out |= np.take(stack, np.minimum(start + k, end - 1), axis=axis)
    return out


def tumour_area(seg: np.ndarray, protocol: Preparation) -> np.ndarray:
    """Whole-tumour pixel count per protocol slice on the original grid: 0 marks a healthy slice."""
    return (axial_stack(seg, protocol) > 0).sum(axis=(1, 2)).astype(np.int64)


def largest_tumour_slice(area: np.ndarray) -> int | None:
    """Index (into the protocol's z range) of the largest whole-tumour slice, lowest on ties; None if none."""
    return int(np.argmax(area)) if area.max(initial=0) > 0 else None


def healthy_subset(healthy: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced entries of ``healthy`` (all of them when there are no more than ``k``)."""
    if len(healthy) <= k:
        return healthy
    return healthy[np.unique(np.linspace(0, len(healthy) - 1, k).round().astype(int))]
