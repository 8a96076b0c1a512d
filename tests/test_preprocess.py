"""The preprocessing protocol: options, fingerprint, both normalisations against plain numpy, resize, slice roles."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from monai.transforms import Resize

from uasbench.data.layouts import open_dataset
from uasbench.data.layouts.base import read_case
from uasbench.data.preprocess import (
    Preparation, axial_stack, healthy_subset, largest_tumour_slice, normalise, resize, resize_mask, tumour_area,
)
from uasbench.errors import UasbenchError


@pytest.fixture(scope="module")
def real(real_brats_root):
    data = open_dataset(real_brats_root)
    return {c.id: read_case(data, c) for c in data.cases}


def test_protocol_defaults_follow_the_official_code():
    p = Preparation()
    assert list(p.z_values) == list(range(70, 90)) and p.size == 128 and p.normalisation == "paper"
    assert p.to_dict()["paper_flair_percentiles"] == [2.0, 90.0]


def test_fingerprint_is_stable_and_tracks_every_field():
    assert Preparation().fingerprint() == Preparation().fingerprint()
    changed = [Preparation(normalisation="official"), Preparation(z_stop=89), Preparation(size=64),
               Preparation(val_healthy_per_subject=2), Preparation(version=2), Preparation(paper_background=-1.0)]
    prints = {p.fingerprint() for p in changed} | {Preparation().fingerprint()}
    assert len(prints) == len(changed) + 1


@pytest.mark.parametrize("option", [
    {"normalisation": "minmax"}, {"z_start": 90, "z_stop": 70}, {"size": 0},
    {"val_healthy_per_subject": -1}, {"paper_percentiles": (98.0, 2.0)}, {"official_upper_quantile": 1.5},
])
def test_bad_protocol_option_names_it(option):
    with pytest.raises(UasbenchError, match=next(iter(option))):
        Preparation(**option)


@pytest.mark.parametrize("modality,hi", [("flair", 90), ("t1", 98), ("t2", 98)])
def test_paper_normalisation_matches_numpy(real, modality, hi):
    vol = real["TCGA-FG-6692"].images[modality]
    brain = vol > 0
    v = vol[brain].astype(np.float64)
    lo_v, hi_v = np.percentile(v, 2), np.percentile(v, hi)
    sel = v[(v >= lo_v) & (v <= hi_v)]
    expected = np.where(brain, (vol - sel.mean()) / sel.std(), 0.0)
    out = normalise(vol, modality, Preparation())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert abs(out[brain].mean()) < 0.5  # roughly centred on the brain


def test_official_normalisation_matches_numpy_and_the_authors_formula(real):
    vol = real["TCGA-FG-6692"].images["flair"]
    out = normalise(vol, "flair", Preparation(normalisation="official"))
    upper = np.quantile(vol[vol > 0].astype(np.float64), 0.9)
    np.testing.assert_allclose(out, vol * 6 / upper - 3, atol=1e-4)
    assert np.allclose(out[vol == 0], -3) and out.max() > 3  # background -3, no clipping
    # the authors' whole-volume percentile formulation gives nearly the same map
    n_brain, n = (vol > 0).sum(), vol.size
    up = np.percentile(vol, (1 - n_brain * 0.1 / n) * 100)
    low = np.percentile(vol, n_brain * 0.02 / n * 100)
    authors = (vol - (up - low) / 2) / (up - low) * 6
    assert np.abs(authors - out)[vol > 0].max() < 0.05


def test_resize_is_monai_area_and_masks_dilate_slightly():
    rng = np.random.default_rng(0)
    stack = rng.random((3, 240, 240)).astype(np.float32)
    np.testing.assert_allclose(resize(stack, 128), np.asarray(Resize((128, 128), mode="area")(stack)), atol=1e-6)
    mask = np.zeros((1, 240, 240), bool)
    mask[0, 60:180, 60:180] = True
    small = resize_mask(mask, 128)
    area_ratio = small.sum() / (mask.sum() * (128 / 240) ** 2)
    assert small.dtype == bool and 1.0 <= area_ratio < 1.05


def test_axial_stack_takes_the_third_axis():
    vol = np.zeros((4, 5, 100), np.float32)
    vol[:, :, 75] = 1
    stack = axial_stack(vol, Preparation())
    assert stack.shape == (20, 4, 5) and stack[5].all() and stack.sum() == 20


def test_slice_selection_on_real_cases(real):
    p = Preparation()
    area = tumour_area(real["TCGA-FG-6692"].seg, p)
    assert p.z_start + largest_tumour_slice(area) == 87
    assert largest_tumour_slice(tumour_area(real["TCGA-DU-7294"].seg, p)) is None


def test_ties_pick_lowest_z_and_healthy_subset_is_even():
    assert largest_tumour_slice(np.array([0, 5, 3, 5])) == 1
    assert healthy_subset(np.arange(20), 4).tolist() == [0, 6, 13, 19]
    assert healthy_subset(np.arange(3), 4).tolist() == [0, 1, 2]
    assert healthy_subset(np.arange(5), 0).tolist() == []


def test_protocol_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Preparation().size = 64  # type: ignore[misc]


def test_resize_area_down_bilinear_up_rectangular_and_same_size():
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    small = resize(img, 2)
    assert small.shape == (1, 2, 2) and small.dtype == np.float32
    assert small[0, 0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)  # area = block mean
    up = resize(small, (4, 4), mode="bilinear")
    assert up.shape == (1, 4, 4) and up.min() >= small.min() and up.max() <= small.max()
    assert resize(img, (2, 4)).shape == (1, 2, 4)
    np.testing.assert_array_equal(resize(img, 4), img)  # same grid: unchanged
