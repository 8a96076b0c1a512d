"""The faster preparation arithmetic gives the same bytes as the code it replaced (frozen in
benchmarks/_reference_preprocess.py): the same Python floats from ``normalisation_stats``, the same arrays
(dtype, shape, bytes) from ``brain_values``, ``apply_normalisation``, ``resize_mask`` and ``prepare_slices``,
on seeded random volumes of every kind the toolkit reads and on the real BraTS fixture."""
from __future__ import annotations

import importlib.util
import math
from types import ModuleType

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO_ROOT
from uasbench.data import preprocess as new
from uasbench.data.preprocess import Preparation


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_reference_preprocess",
                                                  REPO_ROOT / "benchmarks" / "_reference_preprocess.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _reference()
# Both versions meet empty inner ranges, NaN and overflowing float16 sums alike; numpy warns for each.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
PROTOCOLS = [Preparation(), Preparation(normalisation="official"),
             Preparation(paper_percentiles=(0.0, 100.0)), Preparation(paper_percentiles=(25, 75)),
             Preparation(paper_percentiles=(49.9, 50.1)),
             Preparation(official_upper_quantile=1.0, normalisation="official"),
             Preparation(official_upper_quantile=1, normalisation="official"),
             Preparation(official_upper_quantile=0.37, normalisation="official"),
             # numpy interpolates in float64 for a numpy float and takes the value for a numpy integer
             Preparation(official_upper_quantile=np.float64(0.37), normalisation="official"),
             Preparation(official_upper_quantile=np.int64(1), normalisation="official")]
MODALITIES = ("t1", "flair")  # FLAIR has its own percentiles (2, 90)


def same_float(a: float, b: float) -> bool:
    return type(a) is type(b) is float and (a == b or (math.isnan(a) and math.isnan(b)))


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape, memory order (``np.save`` keeps it) and bytes."""
    return (a.dtype == b.dtype and a.shape == b.shape and a.flags.c_contiguous == b.flags.c_contiguous
            and a.flags.f_contiguous == b.flags.f_contiguous and a.tobytes(order="A") == b.tobytes(order="A"))


def assert_same_stats(vol: np.ndarray, modality: str, protocol: Preparation) -> tuple[float, float]:
    got, expected = new.normalisation_stats(vol, modality, protocol), ref.normalisation_stats(vol, modality, protocol)
    assert all(same_float(a, b) for a, b in zip(got, expected)), (vol.dtype, modality, protocol, got, expected)
    return got


def assert_same_slices(vol: np.ndarray, modality: str, protocol: Preparation, z: range) -> None:
    expected = ref.prepare_slices(vol, modality, protocol, z)
    assert all(same_array(a, b) for a, b in zip(new.prepare_slices(vol, modality, protocol, z), expected, strict=True))


def random_volume(rng: np.random.Generator, dtype: str, high: float) -> np.ndarray:
    """A blob of positive values somewhere in a background of zeros and negatives, in C or Fortran order."""
    shape = tuple(int(n) for n in rng.integers(3, 30, size=3))
    vol = np.zeros(shape, np.float64)
    grid = np.indices(shape).astype(float)
    centre = [rng.uniform(0, n) for n in shape]
    radius = [rng.uniform(0.5, n) for n in shape]
    blob = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius)) < 1
    kind = np.dtype(dtype).kind
    values = rng.uniform(1, high, size=shape) if kind == "f" else rng.integers(1, int(high), size=shape, endpoint=True)
    vol[blob] = values[blob]
    if kind != "u":
        vol[rng.random(shape) < 0.1] = -rng.uniform(1, 50)  # negatives inside and outside the brain
    if kind == "f":
        vol[rng.random(shape) < 0.02] = np.nan  # never brain (nan > 0 is false)
        if rng.random() < 0.1:
            vol[blob & (rng.random(shape) < 0.01)] = np.inf
    if rng.random() < 0.3:  # few distinct values: many ties
        vol[vol > 0] = np.ceil(vol[vol > 0] / max(high / 4, 1))
    out = vol.astype(dtype)
    return np.asfortranarray(out) if rng.random() < 0.6 else out


KINDS = [("int16", 32767), ("int16", 900), ("uint8", 255), ("uint16", 65535), ("int32", 2_000_000_000),
         ("int32", 5000), ("int64", 1 << 40), ("int64", 3000), ("uint64", 3000), ("uint64", 1 << 62), ("int8", 127),
         ("float32", 1e4), ("float64", 1.0), ("float16", 100), ("longdouble", 10.0)]


@pytest.mark.parametrize(("dtype", "high"), KINDS)
def test_random_volumes_give_the_same_statistics_and_slices(dtype, high):
    rng = np.random.default_rng(KINDS.index((dtype, high)))
    for _ in range(25):
        vol = random_volume(rng, dtype, high)
        if not (vol > 0).any():
            continue
        assert same_array(new.brain_values(vol), ref.brain_values(vol))
        for protocol in PROTOCOLS:
            for modality in MODALITIES:
                stats = assert_same_stats(vol, modality, protocol)
            normalised = new.apply_normalisation(vol, stats, protocol)
            assert same_array(normalised, ref.apply_normalisation(vol, stats, protocol))
        protocol = Preparation(size=int(rng.integers(1, 40)), normalisation=str(rng.choice(["paper", "official"])))
        z0 = int(rng.integers(0, vol.shape[2]))
        z = range(z0, int(rng.integers(z0 + 1, vol.shape[2] + 1)))
        assert_same_slices(vol, "t1", protocol, z)


@pytest.mark.parametrize(("dtype", "high"), [("int16", 32767), ("uint8", 255), ("int32", (1 << 20) - 1),
                                           ("uint64", 70000), ("int64", 1 << 62), ("float32", 3000.0),
                                           ("float64", 1e6), ("float16", 60000.0)])
def test_official_quantile_of_integers_is_numpys_to_the_last_bit(dtype, high):
    """The official scale is the brain quantile itself, so every rounding of numpy's interpolation shows (its two
    formulas, below and from the middle, differ in the last bit for about one case in a hundred)."""
    rng = np.random.default_rng(11)
    for _ in range(1000):
        n = int(rng.integers(1, 60))
        if np.dtype(dtype).kind == "f":
            vol = np.maximum(rng.uniform(0, high, size=(n, 1, 1)).astype(dtype), np.finfo(dtype).tiny)
        else:
            vol = rng.integers(1, high, size=(n, 1, 1), endpoint=True).astype(dtype)
        q = float(rng.choice([rng.random(), round(rng.random(), 2), 0.5, 0.9, 1.0]))
        protocol = Preparation(normalisation="official", official_upper_quantile=max(q, 1e-9))
        assert_same_stats(vol, "t1", protocol)


@pytest.mark.parametrize("dtype", ["int16", "uint8", "float32"])
def test_edge_brains(dtype):
    """A single voxel, all-equal values (std 0 -> scale 1), a tiny brain in a corner, a brain filling the volume."""
    shape = (9, 7, 5)
    cases = []
    one = np.zeros(shape, dtype)
    one[4, 3, 2] = 17
    cases.append(one)
    flat = np.zeros(shape, dtype)
    flat[2:6, 1:5, 1:4] = 3
    cases.append(flat)
    for corner in ((0, 0, 0), (8, 6, 4), (0, 6, 4), (8, 0, 0)):
        tiny = np.full(shape, -1 if dtype != "uint8" else 0, dtype)
        tiny[corner] = 5
        tiny[tuple(max(c - 1, 0) for c in corner)] = 9
        cases.extend([tiny, np.asfortranarray(tiny)])
    cases.append(np.arange(1, 9 * 7 * 5 + 1).reshape(shape).astype(dtype))
    for vol in cases:
        for protocol in PROTOCOLS:
            for modality in MODALITIES:
                assert_same_stats(vol, modality, protocol)
            assert_same_slices(vol, "flair", protocol, range(1, 4))


@pytest.mark.parametrize("vol", [np.zeros((6, 6, 4), np.int16), np.full((6, 6, 4), -3.0), np.full((5, 5, 3), np.nan),
                                 np.zeros((0, 4, 4), np.uint8)])
def test_empty_brain_raises_as_before(vol):
    for fn in (new.normalisation_stats, ref.normalisation_stats):
        with pytest.raises(ValueError, match="empty brain"):
            fn(vol, "t1", Preparation())
    assert same_array(new.brain_values(vol), ref.brain_values(vol))


def test_brain_values_of_any_number_of_dimensions():
    rng = np.random.default_rng(3)
    for shape in ((7,), (5, 8), (4, 5, 6, 3), (1, 1, 1), (6, 1, 4)):
        vol = rng.integers(-3, 4, size=shape).astype(np.int16)
        for view in (vol, np.asfortranarray(vol), vol[::-1], vol.T):
            assert same_array(new.brain_values(view), ref.brain_values(view))


def test_boolean_mask_resize_is_the_area_resize():
    """Shrinking (240 -> 128 as the protocol does), enlarging, equal sizes, odd ratios; non-boolean stacks too."""
    rng = np.random.default_rng(7)
    shapes = [((20, 240, 240), 128), ((3, 17, 5), 4), ((2, 5, 9), 12), ((4, 10, 10), 10), ((1, 1, 1), 3),
              ((2, 255, 3), 128), ((0, 8, 8), 4), ((3, 64, 64), 1)]
    for shape, size in shapes:
        for density in (0.0, 0.01, 0.3, 1.0):
            stack = rng.random(shape) < density
            assert same_array(new.resize_mask(stack, size), ref.resize_mask(stack, size))
            assert same_array(new.resize_mask(np.asfortranarray(stack), size), ref.resize_mask(stack, size))
    with pytest.raises(RuntimeError):  # an empty slice has nothing to average, as before
        ref.resize_mask(np.zeros((2, 0, 5), bool), 3)
    with pytest.raises(RuntimeError):
        new.resize_mask(np.zeros((2, 0, 5), bool), 3)
    other = rng.integers(-2, 3, size=(3, 12, 12))
    assert same_array(new.resize_mask(other, 5), ref.resize_mask(other, 5))
    assert same_array(new.resize_mask(other.astype(np.uint8), 5), ref.resize_mask(other.astype(np.uint8), 5))


def test_real_brats_fixture_is_prepared_identically(real_brats_root):
    for path in sorted(real_brats_root.glob("*/*.nii.gz")):
        if path.name.endswith("_seg.nii.gz"):
            continue
        vol = np.asanyarray(nib.load(path).dataobj)
        modality = path.name.rsplit("_", 1)[1].split(".")[0]
        for protocol in (Preparation(), Preparation(normalisation="official")):
            assert_same_stats(vol, modality, protocol)
            assert_same_slices(vol, modality, protocol, protocol.z_values)
