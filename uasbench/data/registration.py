"""Affine registration of a scan to the MNI152 template that the phantom's anatomy comes from (SimpleITK).

The template is built from the shipped tissue maps (``anatomy``): a T1-like image ``wm + 0.75 gm + 0.3 csf``
and its brain mask (``gm + wm > 0.5`` with the ventricles filled in: what skull stripping keeps, without the
template's wide rim of outer CSF) on the asset's cropped 2 mm grid. Mattes mutual information
does not care which contrast the scan has (T1, T2, FLAIR, PD), so one template serves every modality.

Where the template sits: ``build_anatomy`` flips the 1 mm ICBM152 2009 maps (RAS, origin (-98, -134, -72)
mm) in x and y, keeps z 0..154 and pads x by (21, 22) and y by (3, 4) voxels, which places them on the
BraTS 240 x 240 x 155 array. BraTS voxel (i, j, k) is therefore MNI point (119 - i, 101 - j, k - 72), and
that is the grid (``template_grid``) every registered scan is resampled onto: slice z of a registered scan
shows what slice z of the phantom shows. Its affine is this MNI placement, not the BraTS/SRI24 one that the
phantom's files carry.

Registration: the scan is resampled to 2 mm, its centre of mass (of the brain mask) is put on the template's,
then a 12-parameter affine transform is optimised by regular-step gradient descent on three levels (8, 4, 2
mm), on a regular 20 % sample of the template's brain voxels, single-threaded so that the result does not
depend on the machine's core count.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from uasbench.data.anatomy import BRATS_SHAPE, embed, load_anatomy, upsample2_above

TEMPLATE = "mni152"
# BraTS/phantom voxel (i, j, k) -> MNI world (119 - i, 101 - j, k - 72) mm (see the module docstring).
TEMPLATE_AFFINE = np.array([[-1.0, 0, 0, 119], [0, -1.0, 0, 101], [0, 0, 1.0, -72], [0, 0, 0, 1]])
REGISTRATION_SPACING_MM = 2.0
_SEED = 20260101
_LEVER_MM = 80.0


@dataclass(frozen=True)
class Registration:
    """A scan registered to the template: ``matrix`` maps a template world point to a scan world point."""

    matrix: np.ndarray
    seconds: float
    metric: float


def template_grid():  # -> spatial.Grid (imported lazily: spatial imports this module lazily too)
    """The BraTS/phantom 240 x 240 x 155 1 mm grid placed in MNI space."""
    from uasbench.data.spatial import Grid

    return Grid(BRATS_SHAPE, TEMPLATE_AFFINE.copy())


@lru_cache(maxsize=1)
def _template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1-like image, brain mask) on the asset's 2 mm crop, and that crop's affine."""
    anat = load_anatomy()
    image = (anat.wm + 0.75 * anat.gm + 0.3 * anat.csf).astype(np.float32)
    brain = ndi.binary_fill_holes(anat.gm + anat.wm > 0.5)
    scale = np.diag([2.0, 2.0, 2.0, 1.0])
    scale[:3, 3] = 2 * np.array(anat.offset) + 0.5  # 2 mm voxel a covers 1 mm voxels 2(a + offset) + {0, 1}
    return image, brain, TEMPLATE_AFFINE @ scale


@lru_cache(maxsize=1)
def template_brain() -> np.ndarray:
    """The template's brain mask on ``template_grid`` (what a registered case's brain mask is scored against)."""
    anat = load_anatomy()
    return ndi.binary_fill_holes(embed(upsample2_above(anat.gm + anat.wm, 0.5), anat.offset))


def _sitk_image(data: np.ndarray, affine: np.ndarray):
    """A SimpleITK image of ``data`` with the grid of ``affine`` (world = nibabel's RAS mm; used consistently)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(data))  # sitk index (x, y, z) = numpy (k, j, i)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    u, _, vt = np.linalg.svd(affine[:3, :3] / zooms)  # nearest rotation (drops any shear)
    image.SetDirection([float(v) for v in (u @ vt)[:, ::-1].ravel()])
    image.SetSpacing([float(v) for v in zooms[::-1]])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    return image


def _as_matrix(transform) -> np.ndarray:
    """Any SimpleITK affine-like transform as a 4x4 matrix (from the images of four points)."""
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    matrix = np.eye(4)
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        matrix[:3, axis] = np.array(transform.TransformPoint(tuple(unit))) - origin
    matrix[:3, 3] = origin
    return matrix


def register_to_template(data: np.ndarray, grid: Any, *, brain: np.ndarray, brain_grid: Any) -> Registration:
    """Affine registration of one scan (``data`` on ``grid``, brain mask ``brain`` on ``brain_grid``), with
    SimpleITK on one thread: its multi-threaded metric sums in an order that changes the result."""
    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        return _register(data, grid, brain=brain, brain_grid=brain_grid)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _register(data: np.ndarray, grid: Any, *, brain: np.ndarray, brain_grid: Any) -> Registration:
    import SimpleITK as sitk

    from uasbench.data.spatial import _respaced, to_grid

    start = time.perf_counter()
    coarse = _respaced(grid, REGISTRATION_SPACING_MM)
    moving_data = to_grid(data, grid.affine, coarse.shape, coarse.affine, nearest=False)[0].astype(np.float32)
    moving_mask = to_grid(brain.astype(np.uint8), brain_grid.affine, coarse.shape, coarse.affine, nearest=True)[0]
    if not moving_mask.any():
        raise ValueError("empty brain mask: nothing to register")
    inside = moving_data[moving_mask > 0]
    moving_data = moving_data / np.float32(np.percentile(inside, 99) or 1.0)  # intensity scale of no matter to MI
    fixed_data, fixed_mask, fixed_affine = _template()

    fixed = _sitk_image(fixed_data, fixed_affine)
    moving = _sitk_image(moving_data * (moving_mask > 0), coarse.affine)
    initial = sitk.CenteredTransformInitializer(
        _sitk_image(fixed_mask.astype(np.float32), fixed_affine),
        _sitk_image(moving_mask.astype(np.float32), coarse.affine),
        sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(1)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(0.2, _SEED)
    method.SetMetricFixedMask(_sitk_image(fixed_mask.astype(np.uint8), fixed_affine))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=50,
                                                    relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    # fixed scales (a matrix entry moves a point 80 mm from the centre 80 times as far as a translation of
    # the same size), not SimpleITK's estimate from random samples, which made results differ call to call
    method.SetOptimizerScales([_LEVER_MM ** 2] * 9 + [1.0] * 3)
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    transform = method.Execute(fixed, moving)
    return Registration(_as_matrix(transform), time.perf_counter() - start, float(method.GetMetricValue()))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def quality(result: Registration, brain: np.ndarray, standard: Any) -> dict[str, Any]:
    """The record of one registration: its brain-mask Dice with the template's, and whether it passed."""
    score = dice(brain, template_brain())
    return {"template": TEMPLATE, "dice": round(score, 4), "floor": standard.registration_floor,
            "below_floor": score < standard.registration_floor, "seconds": round(result.seconds, 3),
            "matrix": result.matrix.round(6).tolist()}
