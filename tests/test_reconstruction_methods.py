"""AE, VAE and DAE on tiny 32x32 phantoms: they learn, find a striped lesion, persist, reproduce and resume."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod
from uasbench.registry import get_method
from uasbench_methods.ae import AutoEncoder
from uasbench_methods.dae import DenoisingAutoEncoder
from uasbench_methods.vae import VariationalAutoEncoder

SIZE = 32
ITERATIONS = 150


def phantom(n: int, seed: int, lesion: bool = False) -> SliceSet:
    """Smooth elliptical "brains" with mild texture on a dark background; optionally a lesion that is a
    pattern, not a brightness: a disk of +-1.5 stripes whose mean is that of the tissue around it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE - 0.5
    images, brains, segs = [], [], []
    for _ in range(n):
        a, b = rng.uniform(0.35, 0.45, 2)
        brain = (yy / a) ** 2 + (xx / b) ** 2 < 1
        texture = gaussian_filter(rng.normal(size=(SIZE, SIZE)), 2) * 2
        image = np.where(brain, 0.5 + texture + np.cos(6 * xx) * np.cos(5 * yy), -2.0).astype(np.float32)
        seg = np.zeros_like(brain)
        if lesion:
            cy, cx = rng.uniform(-0.1, 0.1, 2)
            seg = (yy - cy) ** 2 + (xx - cx) ** 2 < 0.1**2
            stripes = np.broadcast_to(np.where((np.arange(SIZE) // 2) % 2 == 0, 1.5, -1.5), (SIZE, SIZE))[seg]
            texture = image[seg] - image[seg].mean()
            image[seg] = image[ring(seg, brain)].mean() + texture + stripes - stripes.mean()
        images.append(image)
        brains.append(brain)
        segs.append(seg)
    return SliceSet(x=np.stack(images), brain=np.stack(brains), subjects=tuple(f"s{i}" for i in range(n)),
                    z=np.arange(n), seg=np.stack(segs))


def ring(seg: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The brain tissue just around a lesion (up to about 5 pixels away)."""
    return (gaussian_filter(seg.astype(float), 3) > 0.02) & ~seg & brain


def make(name: str, seed: int = 0, **overrides: Any) -> AnomalyMethod:
    """The method's ``tiny`` profile (small networks on the input grid), checkpointing every 50 steps."""
    return get_method(name).from_profile("tiny", overrides={"checkpoint_every": 50, **overrides}, seed=seed)



@pytest.fixture(scope="module")
def train_set() -> SliceSet:
    return phantom(64, seed=0)


@pytest.fixture(scope="module")
def lesion_set() -> SliceSet:
    return phantom(6, seed=1, lesion=True)


@pytest.fixture(scope="module", params=["ae", "vae", "dae"])
def fitted(request: pytest.FixtureRequest, train_set: SliceSet,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[AnomalyMethod, Path]:
    workdir = tmp_path_factory.mktemp(request.param)
    return make(request.param, iterations=ITERATIONS).fit(train_set, workdir=workdir), workdir


def test_entry_points_resolve_to_the_classes() -> None:
    assert get_method("ae") is AutoEncoder
    assert get_method("vae") is VariationalAutoEncoder
    assert get_method("dae") is DenoisingAutoEncoder


def test_training_loss_falls(fitted: tuple[AnomalyMethod, Path]) -> None:
    method, workdir = fitted
    with (workdir / f"loss_{method.name}.csv").open() as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == ITERATIONS
    assert np.mean(losses[-30:]) < 0.6 * np.mean(losses[:10])
    assert (workdir / f"ckpt_{method.name}.pt").is_file()


def test_lesion_scores_above_surrounding_tissue(fitted: tuple[AnomalyMethod, Path], lesion_set: SliceSet) -> None:
    method, _ = fitted
    maps = method.score(lesion_set)
    assert maps.shape == lesion_set.x.shape and maps.dtype == np.float32
    for m, x, seg, brain in zip(maps, lesion_set.x, lesion_set.seg, lesion_set.brain):
        around = ring(seg, brain)
        assert m[seg].mean() > 1.5 * m[around].mean()
        assert x[seg].mean() == pytest.approx(x[around].mean(), abs=1e-5)  # not brighter: an identity map fails


def test_save_load_round_trip_gives_identical_scores(fitted: tuple[AnomalyMethod, Path], lesion_set: SliceSet,
                                                     tmp_path: Path) -> None:
    method, _ = fitted
    method.save(tmp_path / "model.pt")
    loaded = type(method).load(tmp_path / "model.pt")
    np.testing.assert_array_equal(loaded.score(lesion_set), method.score(lesion_set))


@pytest.mark.parametrize("name", ["ae", "vae", "dae"])
def test_same_seed_same_scores(name: str, train_set: SliceSet, lesion_set: SliceSet) -> None:
    a = make(name, iterations=10).fit(train_set).score(lesion_set)
    b = make(name, iterations=10).fit(train_set).score(lesion_set)
    c = make(name, seed=1, iterations=10).fit(train_set).score(lesion_set)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", ["vae", "dae"])  # the two that draw noise during training
def test_resume_continues_from_the_checkpoint(name: str, train_set: SliceSet, lesion_set: SliceSet,
                                              tmp_path: Path) -> None:
    whole = make(name, iterations=16, checkpoint_every=4).fit(train_set, workdir=tmp_path / "whole")
    make(name, iterations=8, checkpoint_every=4).fit(train_set, workdir=tmp_path / "part")  # interrupted at 8
    resumed = make(name, iterations=16, checkpoint_every=4).fit(train_set, workdir=tmp_path / "part")
    np.testing.assert_array_equal(resumed.score(lesion_set), whole.score(lesion_set))
    with (tmp_path / "part" / f"loss_{name}.csv").open() as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == list(range(1, 17))


@pytest.mark.parametrize(("name", "size"), [("ae", 24), ("dae", 40)])
def test_image_size_that_does_not_fit_the_network_is_a_user_error(name: str, size: int, train_set: SliceSet) -> None:
    with pytest.raises(UasbenchError, match="image_size"):
        make(name, image_size=size, iterations=1).fit(train_set)


def test_non_square_slices_need_an_image_size(train_set: SliceSet, lesion_set: SliceSet) -> None:
    wide = SliceSet(x=np.pad(train_set.x, ((0, 0), (0, 0), (0, 32)), constant_values=-2.0),
                    brain=np.pad(train_set.brain, ((0, 0), (0, 0), (0, 32))), subjects=train_set.subjects,
                    z=train_set.z)
    with pytest.raises(UasbenchError, match="image_size"):
        make("ae", iterations=1).fit(wide)
    method = make("ae", image_size=32, iterations=2).fit(wide)
    assert method.score(wide.subset([0, 1])).shape == (2, 32, 64)

