"""The spatial standard: every scan is brought onto one grid before it is sliced.

API (stable; the layouts, the slice cache, ``data inspect`` and ``predict`` all go through it):

* ``SpatialStandard`` (frozen, recorded in ``Preparation.spatial`` and so in the cache fingerprint):
  ``orientation`` (nibabel axis codes, default ``"LPS"``: BraTS's (L, P, S), the third array axis axial),
  ``spacing_mm`` (default 1.0), ``fov_mm`` (in-plane field of view, default (240, 240)), ``reference`` (the
  modality whose grid the others are resampled onto; None: the first one given) and ``register`` (None, or
  ``"none"``, or ``"mni152"``), with ``registration_floor`` (the brain-mask Dice below which a registered case is reported).
* ``plan(images, standard) -> list[str]``: what ``standardise`` will do, from the headers only (for
  ``data inspect``); ``standard_shape(images, standard)``: the shape it will produce (headers only).
* ``standardise(images, label, brain_mask, standard, axial=None) -> Standardised``: numpy arrays on one grid,
  the grid's affine and a ``SpatialRecord`` of what was done (``record.to_dict()`` goes into a manifest). With
  ``axial`` (a range of axial positions of the standard grid) only those slices are produced: the slice cache
  needs the protocol's 20-slice slab, and interpolating the whole volume would cost more than reading it.
* ``to_grid(array, affine, shape, target_affine, nearest=...)``: an array from one grid onto another (world
  coordinates); ``SpatialRecord.to_scan(array, scan, nearest=...)`` puts an array back onto a scan's own grid
  (undoing a registration too), which is how ``predict`` makes its maps overlay the input.

Steps, in order (docs/explanation/spatial-standard.md says why):

1. Reorient every scan to ``orientation`` with nibabel's orientation tools: flips and axis permutations
   only, no interpolation (the array axes nearest to the world axes; an oblique scan stays oblique).
2. The reference modality's grid is kept when its voxel size already is ``spacing_mm`` on every axis
   (within 1e-3 mm); otherwise a grid with that spacing, the same direction and the same centre replaces it.
3. In-plane (array axes 0 and 1), an axis that already has ``fov_mm / spacing_mm`` voxels is left alone;
   any other is padded or cropped to that many voxels centred on the brain's bounding box (the brain mask
   when given, else the reference image's non-zero voxels). The axial axis is never changed.
4. Every image, the label and the brain mask are then put onto that grid in world coordinates: copied
   exactly (a pure integer shift, pad or crop, or no change) when their grid already lines up with it, else
   resampled (images linearly to float32, label and mask by nearest neighbour).
5. With ``register="mni152"``: the reference image is registered (affine, SimpleITK, see ``registration``)
   to the MNI152 template that the phantom's anatomy comes from, and every array is resampled once, from its
   reoriented scan, onto the BraTS/phantom 240 x 240 x 155 grid at 1 mm placed in MNI space, so a slice
   index means the same anatomy as in the phantom. Steps 2-3 then do not apply. The quality figure is the
   Dice of the case's brain mask with the template's; below ``registration_floor`` the record says so.

BraTS (LPS, 1 mm, 240 x 240) passes steps 1-4 untouched: the arrays come back as they were read, same
dtype, same bytes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from uasbench.choices import REGISTRATIONS
from uasbench.errors import UasbenchError

SPACING_ATOL_MM = 1e-3  # voxel sizes closer than this to the standard's count as equal (no resampling)
_SHIFT_ATOL = 1e-3  # grids whose offset is this close to whole voxels line up exactly
_AXIS_PAIRS = ("LR", "PA", "IS")


def _valid_orientation(codes: str) -> bool:
    """Three codes, one from each pair L/R, P/A, I/S (in any order)."""
    pairs = [next((p for p in _AXIS_PAIRS if c in p), "?") for c in codes]
    return len(codes) == 3 and sorted(pairs) == sorted(_AXIS_PAIRS)


@dataclass(frozen=True)
class SpatialStandard:
    """One orientation, voxel size, in-plane field of view and (optionally) template space for every scan."""

    orientation: str = "LPS"
    spacing_mm: float = 1.0
    fov_mm: tuple[float, float] = (240.0, 240.0)
    reference: str | None = None
    register: str | None = None
    registration_floor: float = 0.8

    def __post_init__(self) -> None:
        if not isinstance(self.orientation, str) or not _valid_orientation(self.orientation.upper()):
            raise UasbenchError(f"spatial option orientation={self.orientation!r}: give three axis codes, one of "
                                "L/R, one of P/A and one of I/S, e.g. 'LPS' (BraTS) or 'RAS'")
        object.__setattr__(self, "orientation", self.orientation.upper())
        if not (math.isfinite(self.spacing_mm) and 0.1 <= self.spacing_mm <= 10):
            raise UasbenchError(f"spatial option spacing_mm={self.spacing_mm}: need 0.1 to 10 mm")
        fov = tuple(float(v) for v in self.fov_mm)
        if len(fov) != 2 or not all(math.isfinite(v) and 10 <= v <= 1000 for v in fov):
            raise UasbenchError(f"spatial option fov_mm={self.fov_mm}: need two sizes of 10 to 1000 mm")
        object.__setattr__(self, "fov_mm", fov)
        if self.register == "none":  # the command line's and benchmark file's word for no registration
            object.__setattr__(self, "register", None)
        if self.register is not None and self.register not in REGISTRATIONS:
            raise UasbenchError(f"spatial option register={self.register!r}: use one of {', '.join(REGISTRATIONS)}")
        if self.register is not None and (self.spacing_mm != 1.0 or fov != (240.0, 240.0)):
            raise UasbenchError(f"spatial option register={self.register!r} lands on the template's 1 mm 240 x 240 "
                                "grid: leave spacing_mm=1 and fov_mm=(240, 240)")
        if not 0 <= self.registration_floor <= 1:
            raise UasbenchError(f"spatial option registration_floor={self.registration_floor}: need 0 to 1")

    @property
    def fov_voxels(self) -> tuple[int, int]:
        return tuple(int(round(f / self.spacing_mm)) for f in self.fov_mm)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, recorded: Mapping[str, Any]) -> "SpatialStandard":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})


@dataclass(frozen=True)
class Grid:
    """A voxel grid: array shape and voxel-to-world affine (RAS+ mm, nibabel's convention)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def axcodes(self) -> str:
        return "".join(c or "?" for c in nib.aff2axcodes(self.affine))


@dataclass(frozen=True)
class SpatialRecord:
    """What ``standardise`` did to one case (``to_dict`` for a manifest, ``lines`` for people)."""

    standard: SpatialStandard
    grid: Grid
    sources: dict[str, Grid]  # scan name -> its grid as stored
    reoriented: dict[str, str]  # scan name -> axis codes it was stored in, for those that were reoriented
    resampled: tuple[str, ...]  # scans that were interpolated (others copied exactly)
    fov_shift: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))  # (pad before, pad after), < 0 crops
    registration: dict[str, Any] | None = None  # template, dice, floor, below_floor, seconds, matrix

    @property
    def untouched(self) -> bool:
        """True when every array is exactly what was read (BraTS on the default standard)."""
        return not self.reoriented and not self.resampled and self.fov_shift == ((0, 0), (0, 0)) \
            and self.registration is None

    @property
    def below_floor(self) -> bool:
        return bool(self.registration and self.registration["below_floor"])

    def lines(self) -> list[str]:
        out = [f"reorient {name} {codes} -> {self.standard.orientation}" for name, codes in self.reoriented.items()]
        for name in self.resampled:
            spacing = "x".join(f"{v:.3g}" for v in self.sources[name].spacing)
            out.append(f"resample {name} ({spacing} mm) onto the common {self.standard.spacing_mm:g} mm grid")
        for axis, (before, after) in zip("xy", self.fov_shift):
            if (before, after) != (0, 0):
                ends = ", ".join(f"{'pad' if n > 0 else 'crop'} {abs(n)} {end}" for n, end in
                                 ((before, "before"), (after, "after")) if n)
                out.append(f"{axis}: {ends} (centred on the brain) to {self.grid.shape['xy'.index(axis)]} voxels")
        if self.registration:
            reg = self.registration
            out.append(f"registered to {reg['template']}: brain-mask Dice {reg['dice']:.3f}"
                       + (f" (below the floor {reg['floor']:g})" if reg["below_floor"] else ""))
        return out or ["none (already on the standard grid)"]

    def to_scan(self, array: np.ndarray, scan: nib.spatialimages.SpatialImage, *, nearest: bool) -> np.ndarray:
        """An array on the whole standard grid (``grid``) put back onto ``scan``'s own grid (through the inverse
        registration, if any): how ``predict`` makes its maps overlay the scan they were computed from."""
        world = None if self.registration is None else np.linalg.inv(np.array(self.registration["matrix"]))
        return to_grid(array, self.grid.affine, scan.shape, scan.affine, nearest=nearest, world=world)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": {"shape": list(self.grid.shape), "affine": self.grid.affine.round(6).tolist()},
            "sources": {k: {"shape": list(g.shape), "spacing": [round(v, 6) for v in g.spacing],
                            "axcodes": g.axcodes} for k, g in self.sources.items()},
            "reoriented": dict(self.reoriented), "resampled": list(self.resampled),
            "fov_shift": [list(p) for p in self.fov_shift], "registration": self.registration,
        }


@dataclass(frozen=True)
class Standardised:
    """A case on one grid: images keyed by name (stored dtype when copied, float32 when resampled), the
    label and brain mask (or None), the grid's affine, and the record of what was done. The arrays hold the
    axial positions ``z_first`` .. ``z_first + depth - 1`` of the grid (``record.grid``: all of them unless
    ``standardise`` was given ``axial``)."""

    images: dict[str, np.ndarray]
    label: np.ndarray | None
    brain_mask: np.ndarray | None
    affine: np.ndarray
    record: SpatialRecord = field(repr=False)
    z_first: int = 0


# ---------------------------------------------------------------------------------------------- geometry


def _grid_of(img: nib.spatialimages.SpatialImage) -> Grid:
    if len(img.shape) != 3:
        raise UasbenchError(f"spatial standard: expected a 3-D scan, got shape {img.shape}")
    return Grid(tuple(int(n) for n in img.shape), np.asarray(img.affine, dtype=float))  # type: ignore[arg-type]


def _orientation_change(grid: Grid, standard: SpatialStandard) -> np.ndarray | None:
    """nibabel ``ornt`` taking ``grid``'s axes to the standard's, or None when they already match."""
    ornt = ornt_transform(io_orientation(grid.affine), axcodes2ornt(tuple(standard.orientation)))
    return None if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]) else ornt


def reoriented_grid(grid: Grid, standard: SpatialStandard) -> Grid:
    """The grid ``grid`` becomes after step 1 (headers only)."""
    ornt = _orientation_change(grid, standard)
    if ornt is None:
        return grid
    shape = tuple(np.array(grid.shape)[np.argsort(ornt[:, 0])].tolist())
    return Grid(shape, grid.affine @ inv_ornt_aff(ornt, grid.shape))  # type: ignore[arg-type]


def _reorient(data: np.ndarray, grid: Grid, standard: SpatialStandard) -> tuple[np.ndarray, Grid]:
    ornt = _orientation_change(grid, standard)
    if ornt is None:
        return data, grid
    return apply_orientation(data, ornt), reoriented_grid(grid, standard)


def _respaced(grid: Grid, spacing: float) -> Grid:
    """Step 2: ``grid`` itself when its voxels already measure ``spacing``, else a grid of that spacing with
    the same direction and centre, covering the same extent."""
    zooms = np.array(grid.spacing)
    if np.allclose(zooms, spacing, atol=SPACING_ATOL_MM):
        return grid
    shape = np.maximum(np.ceil(np.array(grid.shape) * zooms / spacing - 1e-6), 1).astype(int)
    direction = grid.affine[:3, :3] / zooms
    centre = grid.affine[:3, :3] @ ((np.array(grid.shape) - 1) / 2) + grid.affine[:3, 3]
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing
    affine[:3, 3] = centre - affine[:3, :3] @ ((shape - 1) / 2)
    return Grid(tuple(shape.tolist()), affine)  # type: ignore[arg-type]


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``mask``'s true voxels, or None when there are none. The axis with the largest
    stride is folded first (a cheap OR of whole planes: the last axis of a NIfTI volume in Fortran order),
    the other extents come from that one small projection."""
    outer = int(np.argmax(mask.strides)) if mask.ndim > 1 else 0
    planes = mask.any(axis=outer)
    if not planes.any():
        return None
    box = []
    for axis in range(mask.ndim):
        if axis == outer:
            hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        else:
            rest = axis - (axis > outer)
            hit = np.flatnonzero(planes.any(axis=tuple(a for a in range(planes.ndim) if a != rest)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first, last) voxel index of the non-zero voxels per axis, or None when there are none."""
    box = bounding_box(mask)
    if box is None:
        return None
    return np.array([s.start for s in box], float), np.array([s.stop - 1 for s in box], float)


def _fov_window(grid: Grid, brain_centre: np.ndarray | None, standard: SpatialStandard) -> tuple[Grid, tuple]:
    """Step 3: the in-plane window of ``fov_voxels`` centred on the brain (axes already that size untouched)."""
    start = np.zeros(3)
    shape = list(grid.shape)
    shift = []
    for axis, n in enumerate(standard.fov_voxels):
        if grid.shape[axis] == n:
            shift.append((0, 0))
            continue
        centre = brain_centre[axis] if brain_centre is not None else (grid.shape[axis] - 1) / 2
        start[axis] = int(math.floor(centre - (n - 1) / 2 + 0.5))
        shift.append((int(-start[axis]), int(start[axis] + n - grid.shape[axis])))
        shape[axis] = n
    affine = grid.affine.copy()
    affine[:3, 3] = grid.affine[:3, :3] @ start + grid.affine[:3, 3]
    return Grid(tuple(shape), affine), tuple(shift)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- resampling


def _exact_map(data: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """When ``matrix`` (target voxel -> source voxel) only permutes and flips axes and shifts by whole
    voxels: (a view of ``data`` with the target's axes, the whole-voxel offset into it); else None."""
    linear = matrix[:3, :3]
    signs = np.round(linear)
    if not np.allclose(linear, signs, atol=1e-6) or not (np.abs(signs).sum(0) == 1).all() \
            or not (np.abs(signs).sum(1) == 1).all():
        return None
    shift = matrix[:3, 3]
    if not np.allclose(shift, np.round(shift), atol=_SHIFT_ATOL):
        return None
    source_axis = np.abs(signs).argmax(0)  # target axis a reads source axis source_axis[a]
    sign = signs[source_axis, np.arange(3)]
    view = data.transpose(source_axis) if (source_axis != np.arange(3)).any() else data
    offset = np.round(shift[source_axis]).astype(int)
    for axis in np.flatnonzero(sign < 0):
        view = np.flip(view, axis)
        offset[axis] = view.shape[axis] - 1 - offset[axis]
    return view, offset


def _shifted(data: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``out[i] = data[i + offset]``, zero outside ``data``; ``data`` itself when nothing changes, a view of it
    when it covers all of ``out``."""
    if not offset.any() and tuple(data.shape) == tuple(shape):
        return data
    if (offset >= 0).all() and all(o + n <= s for o, n, s in zip(offset, shape, data.shape)):
        return data[tuple(slice(o, o + n) for o, n in zip(offset, shape))]
    out = np.zeros(shape, dtype=data.dtype)
    src = tuple(slice(max(o, 0), min(o + n, s)) for o, n, s in zip(offset, shape, data.shape))
    dst = tuple(slice(s.start - o, s.stop - o) for s, o in zip(src, offset))
    if all(s.stop > s.start for s in src):
        out[dst] = data[src]
    return out


def _corners(matrix: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(3, 8): the eight corners of the voxel box ``lo`` .. ``hi`` mapped by ``matrix`` (4 x 4)."""
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij"), dtype=float).reshape(3, -1)
    return matrix[:3, :3] @ corners + matrix[:3, 3:4]


def _sitk_resample(data: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...], nearest: bool) -> np.ndarray:
    """``out[p] = data(matrix @ p)`` by SimpleITK (linear, or nearest neighbour), zero outside ``data``.

    Only what matters is handed over: the part of the source the target can see (a slab of it when the
    target is a few axial slices), within that the non-zero box (with a one-voxel rim of what surrounds it),
    and only the part of the target that can see that box is interpolated (the rest is zero by definition):
    for a skull-stripped scan that is about half the work, for a 20-slice slab a tenth. SimpleITK's index
    (x, y, z) is numpy's (k, j, i), so the matrix is reversed on both sides instead of the arrays being
    transposed.
    """
    import SimpleITK as sitk

    out = np.zeros(shape, dtype=data.dtype if nearest else np.float32)
    seen = _corners(matrix, np.zeros(3), np.array(shape) - 1)
    s_lo = np.maximum(np.floor(seen.min(1)) - 1, 0).astype(int)
    s_hi = np.minimum(np.ceil(seen.max(1)) + 1, np.array(data.shape) - 1).astype(int)
    if (s_hi < s_lo).any():
        return out
    part = tuple(slice(a, b + 1) for a, b in zip(s_lo, s_hi))
    box = _box(data[part] != 0)
    if box is None:
        return out
    lo = np.maximum(box[0] - 1 + s_lo, s_lo).astype(int)
    hi = np.minimum(box[1] + 1 + s_lo, s_hi).astype(int)
    target = _corners(np.linalg.inv(matrix), lo, hi)
    t_lo = np.maximum(np.floor(target.min(1)) - 1, 0).astype(int)
    t_hi = np.minimum(np.ceil(target.max(1)) + 2, shape).astype(int)
    if (t_hi <= t_lo).any():
        return out
    crop = data[tuple(slice(a, b + 1) for a, b in zip(lo, hi))]
    dtype = np.float32 if data.dtype == np.float64 or not nearest else (np.uint8 if data.dtype == bool else None)
    moving = sitk.GetImageFromArray(np.ascontiguousarray(crop, dtype=dtype))
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in matrix[:3, :3][::-1, ::-1].ravel()])
    transform.SetTranslation([float(v) for v in (matrix[:3, 3] - lo)[::-1]])
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    resampled = sitk.Resample(moving, [int(v) for v in (t_hi - t_lo)[::-1]], transform, interpolator,
                              [float(v) for v in t_lo[::-1]], [1.0, 1.0, 1.0], [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                              0.0, moving.GetPixelID())
    result = sitk.GetArrayViewFromImage(resampled)  # a view: ``resampled`` stays alive until it is copied
    out[tuple(slice(a, b) for a, b in zip(t_lo, t_hi))] = result.view(out.dtype) if out.dtype == bool else result
    return out


def to_grid(data: np.ndarray, affine: np.ndarray, shape: tuple[int, ...], target_affine: np.ndarray, *,
            nearest: bool, world: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """``data`` (on the grid ``affine``) on the grid (``shape``, ``target_affine``), in world coordinates.

    ``world`` (4x4, optional) maps a target world point to a source world point (a registration). Returns
    the array and whether it was interpolated: a grid that lines up with the target up to whole voxels,
    flips and axis swaps is copied exactly (a view of ``data`` when the target lies inside it, so treat the
    result as read-only), anything else is resampled, linearly to float32 or, with ``nearest``, by nearest
    neighbour in the stored dtype.
    """
    matrix = np.linalg.inv(affine) @ (np.eye(4) if world is None else world) @ target_affine
    exact = _exact_map(data, matrix)
    if exact is not None:
        return _shifted(*exact, tuple(shape)), False
    return _sitk_resample(data, matrix, tuple(shape), nearest), True


# ---------------------------------------------------------------------------------------------- the standard


def _reference_name(images: Mapping[str, Any], standard: SpatialStandard) -> str:
    if not images:
        raise UasbenchError("spatial standard: a case needs at least one image")
    if standard.reference is None:
        return next(iter(images))
    if standard.reference not in images:
        raise UasbenchError(f"spatial option reference={standard.reference!r}: this case has "
                            f"{', '.join(images)}")
    return standard.reference


def _target_grid(reference: Grid, standard: SpatialStandard) -> Grid:
    """Steps 1-2 for the reference scan, from its header."""
    return _respaced(reoriented_grid(reference, standard), standard.spacing_mm)


def standard_shape(images: Mapping[str, nib.spatialimages.SpatialImage],
                   standard: SpatialStandard) -> tuple[int, int, int]:
    """The shape of the arrays ``standardise`` returns for these scans, from their headers only."""
    if standard.register:
        from uasbench.data.registration import template_grid

        return template_grid().shape
    grids = {name: _grid_of(img) for name, img in images.items()}
    target = _target_grid(grids[_reference_name(grids, standard)], standard)
    return (*standard.fov_voxels, target.shape[2])  # type: ignore[return-value]


def plan(images: Mapping[str, nib.spatialimages.SpatialImage], standard: SpatialStandard) -> list[str]:
    """What ``standardise`` will do to a case with these scans, from their headers only (one line each)."""
    grids = {name: _grid_of(img) for name, img in images.items()}
    ref = _reference_name(grids, standard)
    target = _target_grid(grids[ref], standard)
    lines = [f"reorient {name} {g.axcodes} -> {standard.orientation}" for name, g in grids.items()
             if _orientation_change(g, standard) is not None]
    if standard.register:
        return lines + [f"register {ref} (affine) to {standard.register}, then resample every scan onto the "
                        "template's 240x240x155 1 mm grid"]
    for name, g in grids.items():
        mine = reoriented_grid(g, standard)
        if name == ref and not np.allclose(mine.spacing, standard.spacing_mm, atol=SPACING_ATOL_MM):
            lines.append(f"resample {name} ({'x'.join(f'{v:.3g}' for v in g.spacing)} mm) to "
                         f"{standard.spacing_mm:g} mm")
        elif name != ref and _exact_map(np.empty((0, 0, 0)), np.linalg.inv(mine.affine) @ target.affine) is None:
            lines.append(f"resample {name} onto {ref}'s grid")
    n = standard.fov_voxels
    for axis in (0, 1):
        if target.shape[axis] != n[axis]:
            verb = "pad" if target.shape[axis] < n[axis] else "crop"
            lines.append(f"{verb} {'xy'[axis]} {target.shape[axis]} -> {n[axis]} voxels around the brain")
    return lines or ["none (already on the standard grid)"]


def _axial_window(grid: Grid, axial: range | None) -> tuple[Grid, int]:
    """The part of ``grid`` at the axial positions ``axial`` (clipped to the grid), and its first position."""
    if axial is None:
        return grid, 0
    first = min(max(axial.start, 0), grid.shape[2])
    stop = min(max(axial.stop, first), grid.shape[2])
    affine = grid.affine.copy()
    affine[:3, 3] = grid.affine[:3, :3] @ np.array([0.0, 0.0, first]) + grid.affine[:3, 3]
    return Grid((grid.shape[0], grid.shape[1], stop - first), affine), first


def standardise(images: Mapping[str, nib.spatialimages.SpatialImage],
                label: nib.spatialimages.SpatialImage | None = None,
                brain_mask: nib.spatialimages.SpatialImage | None = None,
                standard: SpatialStandard = SpatialStandard(), axial: range | None = None) -> Standardised:
    """Bring one case's scans onto the standard grid (the module docstring lists the steps).

    ``images`` maps a name (a modality) to a nibabel image; its voxels are read here in their stored dtype.
    ``label`` and ``brain_mask`` may sit on any grid: they are put onto the common one by nearest neighbour.
    ``axial``: produce only these axial positions of the standard grid (clipped to it; ``z_first`` says where
    the arrays start); the grid, its centring and any registration are those of the whole volume.
    Raises ``UasbenchError`` for a missing reference or a scan that is not 3-D, and ``ValueError`` when a
    case to register has no brain voxel.
    """
    ref = _reference_name(images, standard)
    scans: dict[str, tuple[nib.spatialimages.SpatialImage, bool]] = {name: (img, False) for name, img in images.items()}
    if label is not None:
        scans["label"] = (label, True)
    if brain_mask is not None:
        scans["brain_mask"] = (brain_mask, True)
    sources = {name: _grid_of(img) for name, (img, _) in scans.items()}
    oriented = {name: _reorient(np.asanyarray(img.dataobj), sources[name], standard) for name, (img, _) in
                scans.items()}
    reoriented = {name: sources[name].axcodes for name in scans if oriented[name][1] is not sources[name]}

    world = None
    registration = None
    shift: tuple = ((0, 0), (0, 0))
    if standard.register:
        from uasbench.data import registration as reg

        brain_name = "brain_mask" if brain_mask is not None else ref
        result = reg.register_to_template(*oriented[ref], brain=oriented[brain_name][0] != 0,
                                          brain_grid=oriented[brain_name][1])
        target, world = reg.template_grid(), result.matrix
    else:
        target = _respaced(oriented[ref][1], standard.spacing_mm)
        centre = None
        if target.shape[:2] != standard.fov_voxels:  # the brain's centre is needed only to pad or crop
            mask_data, mask_grid = oriented["brain_mask" if brain_mask is not None else ref]
            box = _box(mask_data != 0)
            if box is not None:
                mid = np.append((box[0] + box[1]) / 2, 1.0)
                centre = (np.linalg.inv(target.affine) @ mask_grid.affine @ mid)[:3]
        target, shift = _fov_window(target, centre, standard)

    window, z_first = _axial_window(target, axial)
    out: dict[str, np.ndarray] = {}
    resampled = []
    for name, (_, nearest) in scans.items():
        data, grid = oriented[name]
        out[name], interpolated = to_grid(data, grid.affine, window.shape, window.affine, nearest=nearest,
                                          world=world)
        if interpolated:
            resampled.append(name)

    if standard.register:  # the quality figure is the whole brain's, whatever part of it was asked for
        brain = out[brain_name]
        if window is not target:
            data, grid = oriented[brain_name]
            brain = to_grid(data, grid.affine, target.shape, target.affine, nearest=scans[brain_name][1],
                            world=world)[0]
        registration = reg.quality(result, brain != 0, standard)
    record = SpatialRecord(standard, target, sources, reoriented, tuple(resampled), shift, registration)
    return Standardised({name: out[name] for name in images}, out.get("label"), out.get("brain_mask"),
                        target.affine, record, z_first)
