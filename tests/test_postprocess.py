"""Shared post-processing: disk footprint, erosion, median filter, background floor."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from uasbench.errors import UasbenchError
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess, disk, evaluation_mask


def test_disk_matches_skimage_shape_rule() -> None:
    d = disk(2)
    assert d.shape == (5, 5)
    assert d.sum() == 13  # skimage.morphology.disk(2) has 13 pixels
    assert d[2].all() and not d[0, 0]


def test_erosion_shrinks_mask_by_radius() -> None:
    brain = np.zeros((1, 32, 32), bool)
    brain[0, 8:24, 8:24] = True
    mask = evaluation_mask(brain, PostProcess(erode_brain_px=3))
    assert mask[0, 11:21, 11:21].all()
    assert mask.sum() == 10 * 10
    assert np.array_equal(evaluation_mask(brain, PostProcess(brain_mask=False)), np.ones_like(brain))


def test_background_takes_lowest_in_mask_score() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, 16, 16)) + 5
    brain = np.zeros((2, 16, 16), bool)
    brain[:, 4:12, 4:12] = True
    out, mask = apply_postprocess(maps, brain, PostProcess())
    for i in range(2):
        assert np.all(out[i][~mask[i]] == maps[i][brain[i]].min())
        assert np.array_equal(out[i][mask[i]], maps[i][brain[i]])
    assert np.all(np.isfinite(out))


def test_median_filter_is_per_slice() -> None:
    maps = np.zeros((2, 9, 9))
    maps[0, 4, 4] = 10.0  # an isolated spike disappears
    maps[1] = 1.0  # a constant slice must not leak into slice 0
    brain = np.ones((2, 9, 9), bool)
    out, _ = apply_postprocess(maps, brain, PostProcess(median_size=3))
    assert np.array_equal(out[0], np.zeros((9, 9)))
    assert np.array_equal(out[1], np.ones((9, 9)))
    expected = ndimage.median_filter(maps[0], size=3, mode="nearest")
    assert np.array_equal(out[0], expected)


@pytest.mark.parametrize("kwargs", [{"erode_brain_px": -1}, {"median_size": 2.5},
                                    {"brain_mask": False, "erode_brain_px": 2}])
def test_bad_options_raise(kwargs: dict) -> None:
    with pytest.raises(UasbenchError):
        PostProcess(**kwargs)


def test_bad_maps_raise() -> None:
    brain = np.ones((1, 4, 4), bool)
    with pytest.raises(UasbenchError, match="shape"):
        apply_postprocess(np.zeros((1, 4, 5)), brain, PostProcess())
    with pytest.raises(UasbenchError, match="NaN"):
        apply_postprocess(np.full((1, 4, 4), np.nan), brain, PostProcess())


def test_round_trip() -> None:
    post = PostProcess(erode_brain_px=4, median_size=5)
    assert PostProcess.from_dict(post.to_dict()) == post


def test_erosion_edge_cases() -> None:
    brain = np.zeros((1, 9, 9), bool)
    brain[0, 2:7, 2:7] = True
    once = evaluation_mask(brain, PostProcess(erode_brain_px=1))
    assert once.sum() == 3 * 3 and once[0, 3:6, 3:6].all()  # one pixel off every side
    empty = evaluation_mask(np.zeros((0, 9, 9), bool), PostProcess(erode_brain_px=2))
    assert empty.shape == (0, 9, 9) and empty.dtype == bool
    assert evaluation_mask(brain.astype(np.uint8), PostProcess()).dtype == bool


def test_median_filter_edges_sizes_and_slices() -> None:
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 7, 7))
    brain = np.ones((3, 7, 7), bool)
    for size in (2, 3, 5):  # 5 reaches two pixels past the edge, where "nearest" and "reflect" differ
        out, _ = apply_postprocess(maps, brain, PostProcess(median_size=size))
        for i in range(3):  # each slice alone, borders replicated ("nearest"), as the official-style filter
            np.testing.assert_array_equal(out[i], ndimage.median_filter(maps[i], size=size, mode="nearest"))
    unfiltered, _ = apply_postprocess(maps.astype(np.float32), brain, PostProcess(median_size=1))
    assert unfiltered.dtype == np.float64 and np.array_equal(unfiltered, maps.astype(np.float32))


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(UasbenchError, match=r"^invalid option erode_brain_px=-1 for post-processing \(--erode-brain\): "
                                            r"expected an integer >= 0 and <= 64$"):
        PostProcess(erode_brain_px=-1)
    with pytest.raises(UasbenchError, match=r"^invalid option median_size=100000 for post-processing \(--median\)"):
        PostProcess(median_size=100000)
    with pytest.raises(UasbenchError, match=r"^post-processing option erode_brain_px needs brain_mask=True$"):
        PostProcess(brain_mask=False, erode_brain_px=2)
    with pytest.raises(UasbenchError, match=r"^score maps of shape \(1, 4, 5\) do not match brain masks of shape "
                                            r"\(1, 4, 4\)$"):
        apply_postprocess(np.zeros((1, 4, 5)), np.ones((1, 4, 4), bool), PostProcess())
    with pytest.raises(UasbenchError, match=r"^score maps contain NaN or infinite values$"):
        apply_postprocess(np.full((1, 4, 4), np.inf), np.ones((1, 4, 4), bool), PostProcess())


def test_volume_options_are_bounded_and_left_out_of_records_when_off() -> None:
    from dataclasses import fields

    assert PostProcess().to_dict() == {"brain_mask": True, "erode_brain_px": 0, "median_size": 0}
    post = PostProcess(median_3d=3, min_component_voxels=10)
    assert post.volume_only and PostProcess.from_dict(post.to_dict()) == post
    assert all("max" in f.metadata for f in fields(PostProcess) if f.name != "brain_mask")
    with pytest.raises(UasbenchError, match=r"^invalid option median_3d=16 for post-processing \(--median-3d\): "
                                            r"expected an integer >= 0 and <= 15$"):
        PostProcess(median_3d=16)
    with pytest.raises(UasbenchError, match=r"^invalid option min_component_voxels=-1 for post-processing \(--min-component\)"):
        PostProcess(min_component_voxels=-1)


def test_remove_small_components_and_runs_of_slices() -> None:
    from uasbench.evaluation.postprocess import remove_small_components, runs_of_slices

    seg = np.zeros((3, 6, 6), bool)
    seg[0, 0, 0] = True  # 1 voxel
    seg[1:3, 2:4, 2:4] = True  # 8 voxels
    seg[2, 5, 5] = True  # touches nothing: 1 voxel
    full = ndimage.generate_binary_structure(3, 3)
    expected = seg.copy()
    expected[0, 0, 0] = expected[2, 5, 5] = False
    assert np.array_equal(remove_small_components(seg, 2, full), expected)
    assert np.array_equal(remove_small_components(seg, 0, full), seg)
    assert [(r.start, r.stop) for r in runs_of_slices(np.array([2, 3, 4, 7, 9, 10]))] == [(0, 3), (3, 4), (4, 6)]
