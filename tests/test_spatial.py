"""The spatial standard (uasbench.data.spatial): orientation, spacing, grid matching, field of view and
registration to the MNI152 template, on tiny synthetic volumes and, when present, the real shared cases."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from scipy import ndimage as ndi

from uasbench.data import registration
from uasbench.data.phantom import BRATS_AFFINE
from uasbench.data.preprocess import Preparation
from uasbench.data.spatial import SpatialStandard, plan, standardise, to_grid
from uasbench.errors import UasbenchError

SMALL = SpatialStandard(fov_mm=(32.0, 32.0))


def affine(spacing=(1.0, 1.0, 1.0), codes="LPS", origin=(10.0, -20.0, 5.0)) -> np.ndarray:
    """A voxel-to-world affine with the given axis codes (axes in x, y, z order) and voxel sizes."""
    out = np.eye(4)
    for axis, code in enumerate(codes):
        world = "LRPAIS".index(code) // 2
        out[world, world] = 0.0
        out[world, axis] = spacing[axis] * (1 if code in "RAS" else -1)
    out[:3, 3] = origin
    return out


def blob_volume(shape=(20, 24, 14), seed=0) -> np.ndarray:
    """A lumpy, asymmetric 'brain' of int16 intensities with a zero background."""
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.normal(size=shape), 2)
    grid = np.indices(shape).astype(float)
    centre = np.array(shape)[:, None, None, None] * np.array([0.45, 0.55, 0.5])[:, None, None, None]
    inside = (((grid - centre) / (np.array(shape)[:, None, None, None] * 0.35)) ** 2).sum(0) < 1
    return np.where(inside, 500 + 2000 * noise, 0).astype(np.int16)


def stored_as(img: nib.Nifti1Image, codes: str) -> nib.Nifti1Image:
    """The same image in world space, its array stored in ``codes`` axis order (flips and permutations)."""
    ornt = ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(codes)))
    return img.as_reoriented(ornt)


# ------------------------------------------------------------------------------------------------ orientation


@pytest.mark.parametrize("codes", ["RAS", "LAS", "LPI", "RPI", "PLS", "SLA"])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.2, 0.9, 2.0)])
def test_flipped_affine_twin_gives_identical_arrays(codes, spacing):
    image = nib.Nifti1Image(blob_volume(), affine(spacing))
    label = nib.Nifti1Image((blob_volume(seed=1) > 900).astype(np.uint8) * 2, affine(spacing))
    original = standardise({"t2": image}, label, None, SMALL)
    twin = standardise({"t2": stored_as(image, codes)}, stored_as(label, codes), None, SMALL)
    assert np.asarray(stored_as(image, codes).dataobj).shape != () and nib.aff2axcodes(
        stored_as(image, codes).affine) == tuple(codes)
    np.testing.assert_array_equal(twin.images["t2"], original.images["t2"])
    np.testing.assert_array_equal(twin.label, original.label)
    np.testing.assert_allclose(twin.affine, original.affine, atol=1e-9)
    assert nib.aff2axcodes(twin.affine) == ("L", "P", "S")
    assert twin.record.reoriented == {"t2": codes, "label": codes}
    assert "reorient t2 " + codes + " -> LPS" in twin.record.lines()


def test_lps_1mm_brats_grid_is_returned_untouched():
    rng = np.random.default_rng(3)
    vols = {m: rng.integers(-5, 3000, (240, 240, 155), dtype=np.int16) for m in ("flair", "t2")}
    seg = rng.choice(np.array([0, 1, 2, 4], np.uint8), (240, 240, 155))
    images = {m: nib.Nifti1Image(v, BRATS_AFFINE) for m, v in vols.items()}
    result = standardise(images, nib.Nifti1Image(seg, BRATS_AFFINE), None, SpatialStandard())
    for m, v in vols.items():
        assert result.images[m] is v  # not even copied
    assert result.label is seg
    assert result.record.untouched and result.record.lines() == ["none (already on the standard grid)"]
    np.testing.assert_array_equal(result.affine, BRATS_AFFINE)
    assert plan(images, SpatialStandard()) == ["none (already on the standard grid)"]
    # stored the other way round: reoriented, never "resampled" (its voxels already measure 1 mm)
    twin = {m: stored_as(img, "RAS") for m, img in images.items()}
    assert plan(twin, SpatialStandard()) == ["reorient flair RAS -> LPS", "reorient t2 RAS -> LPS"]


def test_real_brats_case_is_byte_identical(real_brats_root):
    folder = real_brats_root
    case = sorted(p for p in folder.iterdir() if p.is_dir())[0]
    files = {m: nib.load(next(case.glob(f"*_{m}.nii*"))) for m in ("flair", "t1", "t1ce", "t2")}
    seg = nib.load(next(case.glob("*_seg.nii*")))
    result = standardise(files, seg, None, Preparation().spatial)
    assert result.record.untouched
    for m, img in files.items():
        stored = np.asanyarray(img.dataobj)
        assert result.images[m].dtype == stored.dtype and result.images[m].tobytes() == stored.tobytes()
    assert result.label.tobytes() == np.asanyarray(seg.dataobj).tobytes()


def test_protocol_records_the_standard_and_old_records_read_as_the_default():
    p = Preparation()
    assert p.to_dict()["spatial"] == SpatialStandard().to_dict()
    assert Preparation.from_dict(p.to_dict()) == p
    old = {k: v for k, v in p.to_dict().items() if k != "spatial"}
    assert Preparation.from_dict(old) == p
    registered = Preparation(spatial=SpatialStandard(register="mni152"))
    assert registered.fingerprint() != p.fingerprint()
    assert Preparation.from_dict(registered.to_dict()).spatial.register == "mni152"


@pytest.mark.parametrize("kwargs, key", [({"orientation": "LLS"}, "orientation"), ({"orientation": "XYZ"}, "orientation"),
                                         ({"spacing_mm": 0.0}, "spacing_mm"), ({"fov_mm": (240.0,)}, "fov_mm"),
                                         ({"register": "sri24"}, "register"),
                                         ({"register": "mni152", "spacing_mm": 2.0}, "register"),
                                         ({"registration_floor": 1.5}, "registration_floor")])
def test_bad_standard_options_are_one_line(kwargs, key):
    with pytest.raises(UasbenchError, match=f"spatial option {key}=") as err:
        SpatialStandard(**kwargs)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------ resampling


def test_resampling_keeps_label_values_and_world_positions():
    shape = (12, 14, 10)
    aff = affine((2.0, 2.0, 2.5), "RAS", origin=(-11.0, 7.0, -3.0))
    image = np.zeros(shape, np.float32)
    image[5:8, 6:9, 4:7] = 100.0  # a 3-voxel marker centred on voxel (6, 7, 5)
    label = np.zeros(shape, np.uint8)
    label[2:5, 2:6, 2:4], label[7:10, 8:12, 5:8], label[6:8, 2:4, 1:3] = 1, 2, 4
    out = standardise({"t1": nib.Nifti1Image(image, aff)}, nib.Nifti1Image(label, aff), None, SMALL)
    assert out.record.resampled == ("t1", "label")
    assert set(np.unique(out.label)) == {0, 1, 2, 4} and out.label.dtype == np.uint8
    np.testing.assert_allclose(np.linalg.norm(out.affine[:3, :3], axis=0), 1.0)
    marker_world = aff @ np.array([6, 7, 5, 1.0])
    centroid = np.append(ndi.center_of_mass(out.images["t1"]), 1.0)
    np.testing.assert_allclose(out.affine @ centroid, marker_world, atol=0.5)
    for value in (1, 2, 4):  # each label region keeps its place and (to a voxel's rim) its volume
        src_centre = aff @ np.append(ndi.center_of_mass(label == value), 1.0)
        dst_centre = out.affine @ np.append(ndi.center_of_mass(out.label == value), 1.0)
        np.testing.assert_allclose(dst_centre, src_centre, atol=1.0)
        assert abs((out.label == value).sum() - 10 * (label == value).sum()) <= 0.35 * 10 * (label == value).sum()


def sphere(shape, aff, centre_world, radius) -> np.ndarray:
    """A sphere defined in world mm, sampled on the grid (shape, aff): the same object on any grid."""
    vox = np.indices(shape).reshape(3, -1)
    world = aff[:3, :3] @ vox + aff[:3, 3:4]
    dist = np.linalg.norm(world - np.asarray(centre_world)[:, None], axis=0)
    return np.where(dist < radius, 200.0 + dist * 10, 0).reshape(shape).astype(np.float32)


def test_modalities_on_different_grids_land_on_the_reference_grid():
    centre = (3.0, -4.0, 12.0)
    ref_aff = affine((1.0, 1.0, 1.0), "LPS", origin=(16.0, 12.0, -2.0))
    other_aff = affine((0.5, 0.5, 3.0), "RAS", origin=(-14.0, -18.0, 1.0))  # ISLES-like: fine in-plane, thick
    ref = sphere((32, 32, 28), ref_aff, centre, 8)
    other = sphere((64, 64, 10), other_aff, centre, 8)
    out = standardise({"dwi": nib.Nifti1Image(ref, ref_aff), "flair": nib.Nifti1Image(other, other_aff)},
                      standard=SMALL)
    assert out.images["dwi"] is ref and out.record.resampled == ("flair",)
    assert out.images["flair"].shape == ref.shape and out.images["flair"].dtype == np.float32
    shift = np.abs(np.subtract(ndi.center_of_mass(out.images["flair"] > 0), ndi.center_of_mass(ref > 0)))
    assert (shift <= [0.6, 0.6, 1.5]).all(), shift  # 3 mm slices: up to half a slice in z
    dice = registration.dice(out.images["flair"] > 0, ref > 0)
    assert dice > 0.85, dice
    # the reference can be named: then the DWI is resampled onto FLAIR's (respaced) grid instead
    named = standardise({"dwi": nib.Nifti1Image(ref, ref_aff), "flair": nib.Nifti1Image(other, other_aff)},
                        standard=SpatialStandard(fov_mm=(32.0, 32.0), reference="flair"))
    assert "dwi" in named.record.resampled and "flair" in named.record.resampled


def test_field_of_view_is_padded_or_cropped_around_the_brain():
    vol = np.zeros((50, 20, 9), np.int16)
    vol[4:14, 3:11, 2:7] = 7  # a brain off-centre in x and y: box centre (8.5, 6.5)
    out = standardise({"t1": nib.Nifti1Image(vol, affine())}, standard=SpatialStandard(fov_mm=(16.0, 12.0)))
    assert out.images["t1"].shape == (16, 12, 9)
    lo = np.argwhere(out.images["t1"]).min(0)
    hi = np.argwhere(out.images["t1"]).max(0)
    np.testing.assert_allclose((lo + hi)[:2] / 2, [(16 - 1) / 2, (12 - 1) / 2], atol=0.5)
    assert (out.images["t1"] == 7).sum() == (vol == 7).sum()  # nothing of the brain is lost, nothing is blurred
    assert out.record.fov_shift == ((-1, -33), (-1, -7)) and not out.record.resampled
    # the world position of every voxel is kept: the brain's first voxel is where it was
    np.testing.assert_allclose(out.affine @ np.append(lo, 1), affine() @ np.array([4, 3, 2, 1]), atol=1e-9)
    # an axis that already has the field of view's size is left alone even if the brain is off-centre
    same = standardise({"t1": nib.Nifti1Image(vol, affine())}, standard=SpatialStandard(fov_mm=(50.0, 12.0)))
    assert same.images["t1"].shape == (50, 12, 9) and same.record.fov_shift[0] == (0, 0)


def test_to_grid_maps_back_exactly_after_a_pure_reorientation():
    vol = blob_volume()
    img = nib.Nifti1Image(vol, affine())
    twin = stored_as(img, "RAI")
    out = standardise({"t1": twin}, standard=SMALL)
    back, interpolated = to_grid(out.images["t1"], out.affine, twin.shape, twin.affine, nearest=True)
    assert not interpolated
    np.testing.assert_array_equal(back, np.asanyarray(twin.dataobj))


@pytest.mark.parametrize("codes", ["LPS", "RAS", "SLA"])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.2, 0.9, 2.0)])
@pytest.mark.parametrize("axial", [range(3, 9), range(-2, 4), range(20, 40), range(0, 0)])
def test_an_axial_window_holds_those_slices_of_the_whole_grid(codes, spacing, axial):
    """What the slice cache asks for: only some axial positions, the same values as the whole grid's there
    (interpolated ones to float32 rounding: SimpleITK computes the window's positions from another origin)."""
    image = stored_as(nib.Nifti1Image(blob_volume(), affine(spacing)), codes)
    label = stored_as(nib.Nifti1Image((blob_volume(seed=1) > 900).astype(np.uint8) * 2, affine(spacing)), codes)
    whole = standardise({"t2": image}, label, None, SMALL)
    part = standardise({"t2": image}, label, None, SMALL, axial=axial)
    depth = whole.images["t2"].shape[2]
    first, stop = min(max(axial.start, 0), depth), min(max(axial.stop, 0), depth)
    assert part.z_first == first and part.images["t2"].shape == (*whole.images["t2"].shape[:2], max(stop - first, 0))
    assert part.record.to_dict() == whole.record.to_dict()
    np.testing.assert_allclose(part.images["t2"], whole.images["t2"][:, :, first:stop], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(part.label, whole.label[:, :, first:stop])
    if spacing == (1.0, 1.0, 1.0):  # copied, not interpolated: the very values
        np.testing.assert_array_equal(part.images["t2"], whole.images["t2"][:, :, first:stop])


# ------------------------------------------------------------------------------------------------ registration


def test_registration_recovers_a_known_affine_of_the_template():
    image, brain, fixed_affine = registration._template()
    angle = np.deg2rad(8.0)
    known = np.eye(4)
    known[:3, :3] = 1.06 * np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    known[:3, 3] = (6.0, -5.0, 4.0)
    scan = nib.Nifti1Image((image * 1000).astype(np.int16), known @ fixed_affine)  # template content moved by `known`
    mask = nib.Nifti1Image(brain.astype(np.uint8), known @ fixed_affine)
    out = standardise({"t1": scan}, None, mask, standard=SpatialStandard(register="mni152"))
    reg = out.record.registration
    np.testing.assert_allclose(np.array(reg["matrix"])[:3, :3], known[:3, :3], atol=0.03)
    np.testing.assert_allclose(np.array(reg["matrix"])[:3, 3], known[:3, 3], atol=2.0)
    assert reg["dice"] > 0.93 and not reg["below_floor"], reg["dice"]
    assert out.images["t1"].shape == out.brain_mask.shape == (240, 240, 155)


def _ixi_registered(folder: Path, axial: range | None = None):
    t1, t2 = next(folder.glob("*-T1.nii*")), next(folder.glob("*-T2.nii*"))
    return standardise({"t1": nib.load(t1), "t2": nib.load(t2)}, None, None, SpatialStandard(register="mni152"),
                       axial)


@pytest.mark.slow
def test_real_ixi_subject_registers_to_the_template(real_ixi_root):
    """The IXI fixture (every second voxel of IXI002: T1 sagittal 2.4 x 1.9 x 1.9 mm, T2 axial 1.9 x 1.9 x
    2.5 mm, different grids) registers with a brain-mask Dice of 0.911, measured (floor 0.8)."""
    out = _ixi_registered(real_ixi_root)
    reg = out.record.registration
    assert reg["dice"] > 0.8 and not out.record.below_floor, reg
    assert out.images["t1"].shape == out.images["t2"].shape == (240, 240, 155)
    # T2, resampled through the same transform, covers the same brain as T1
    assert registration.dice(out.images["t1"] > 0, out.images["t2"] > 0) > 0.85
    # the slice cache's 20-slice slab: the same registration, its quality figure still the whole brain's
    slab = _ixi_registered(real_ixi_root, axial=range(70, 90))
    assert slab.record.registration["dice"] == reg["dice"] and slab.z_first == 70
    np.testing.assert_allclose(slab.images["t2"], out.images["t2"][:, :, 70:90], rtol=1e-4, atol=1e-2)


@pytest.mark.slow
def test_whole_real_ixi_subject_registers_to_the_template(whole_real_data):
    """The whole IXI002 files (T1 150 x 256 x 256 at 1.2 x 0.94 x 0.94 mm, T2 256 x 256 x 130 at 0.94 x 0.94 x
    1.25 mm): brain-mask Dice 0.932 with the template, measured; asserted above the floor 0.8."""
    out = _ixi_registered(whole_real_data("ixi"))
    assert out.record.registration["dice"] > 0.8 and not out.record.below_floor, out.record.registration


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two slices over the voxels where both are brain."""
    both = (a > 0) & (b > 0)
    return float(np.corrcoef(a[both], b[both])[0, 1])


@pytest.mark.slow
def test_ixi_and_mslub_slices_agree_once_in_template_space(real_ixi_root, real_mslub_root):
    """MSLUB is stored (L, A, S), IXI in scanner space: in template space slice z of both shows the brain the
    same way round (front at low y, as in BraTS and the phantom)."""
    ixi, mslub = real_ixi_root, real_mslub_root
    a = standardise({"t2": nib.load(next(ixi.glob("*-T2.nii*")))}, standard=SpatialStandard(register="mni152"))
    b = standardise({"t2": nib.load(next(mslub.rglob("*_T2.nii*")))}, standard=SpatialStandard(register="mni152"))
    template = registration.template_brain()
    z = 80
    sa, sb, st = (m[:, :, z] for m in (a.images["t2"] > 0, b.images["t2"] > 0, template))
    ya, yb, yt = (ndi.center_of_mass(s)[1] for s in (sa, sb, st))
    assert abs(ya - yb) < 6 and abs(ya - yt) < 6 and abs(yb - yt) < 6, (ya, yb, yt)
    assert registration.dice(sa, sb) > 0.85
    # the anatomy inside agrees the same way round (T2: the bright ventricles, the darker white matter) and
    # not front-to-back mirrored, which is how the two files' arrays stand before the standard
    ia, ib = a.images["t2"][:, :, z], b.images["t2"][:, :, z]
    same, mirrored = _correlation(ia, ib), _correlation(ia, ib[:, ::-1])
    assert same > 0.3 and same > mirrored + 0.2, (same, mirrored)  # fixtures, measured: 0.49 vs 0.02 at z = 80
    # the front is on the same side: each slice matches the template better than its front-back mirror
    for s in (sa, sb):
        assert registration.dice(s, st) > registration.dice(s[:, ::-1], st)


def test_to_scan_undoes_the_registration():
    """A map computed on the template grid goes back onto the scan's own grid where the scan's brain is."""
    image, brain, fixed_affine = registration._template()
    moved = np.eye(4)
    moved[:3, 3] = (12.0, -10.0, 8.0)
    scan = nib.Nifti1Image((image * 1000).astype(np.int16), moved @ fixed_affine)
    out = standardise({"t1": scan}, standard=SpatialStandard(register="mni152"))
    back = out.record.to_scan((out.images["t1"] > 0).astype(np.uint8), scan, nearest=True)
    assert back.shape == scan.shape
    truth = np.asanyarray(scan.dataobj) > 0
    naive = to_grid((out.images["t1"] > 0).astype(np.uint8), out.affine, scan.shape, scan.affine, nearest=True)[0]
    assert registration.dice(back > 0, truth) > 0.9  # 2 mm scan grid: its rim is coarse
    centre = lambda m: scan.affine @ np.append(ndi.center_of_mass(m), 1.0)  # noqa: E731
    assert np.linalg.norm(centre(back) - centre(truth)) < 1.5
    assert np.linalg.norm(centre(naive) - centre(truth)) > 10  # what ignoring the registration would give


@pytest.mark.slow
def test_data_prepare_register_puts_every_case_in_template_space(tmp_path, monkeypatch):
    """`uasbench data prepare --register mni152` through the command line: every case of a phantom stored RAS
    is registered (the phantom's anatomy is the template's, so the quality figure is high), the protocol's
    slab is cut from the template grid, and the cache records each case's registration."""
    from typer.testing import CliRunner

    from uasbench.cli import app
    from uasbench.data.benchmark_data import open_dataset_cache
    from uasbench.data.phantom_layouts import write_phantom_in_layout

    monkeypatch.setenv("UASBENCH_CACHE_DIR", str(tmp_path / "cache"))
    root, _ = write_phantom_in_layout(tmp_path / "ixi", 2, 0, layout="ixi", orientation="RAS", progress=False,
                                      workers=1)
    result = CliRunner().invoke(app, ["data", "prepare", str(root), "--register", "mni152"])
    assert result.exit_code == 0, result.output
    assert "2 cases ready" in result.output and "below the floor" not in result.output
    protocol = Preparation(spatial=SpatialStandard(register="mni152"))
    cache = open_dataset_cache(root, protocol, progress=False)[1]
    assert set(cache.spatial) == set(cache.subjects) and len(cache.subjects) == 2
    for record in cache.spatial.values():
        assert record["registration"]["dice"] > 0.9 and record["grid"]["shape"] == [240, 240, 155]
    assert cache.image(cache.subjects[0], "t2").shape == (20, 128, 128)  # the protocol's slab of the template grid
