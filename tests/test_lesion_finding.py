"""Every learned method, present and future, finds a lesion that is a pattern and not a brightness.

The lesion (``synthetic.pattern_lesion_slices``) is a checkerboard whose intensities lie inside the healthy
range, so the intensity baseline and the identity map rank its pixels barely above chance; a method must
beat the intensity baseline's pixel AUROC by ``MARGIN`` on the test slices. The test is parametrised over
the registry, so a method registered later (an entry point or a decorator) is tested without an edit here.

How a method gets its tiny settings (see CONTRIBUTING.md, "The lesion-finding test"): an entry in ``TINY``
below (config overrides that keep fit + score to seconds on one CPU thread), or, without one, its ``quick``
profile with ``iterations`` capped at ``FALLBACK_ITERATIONS`` when its config has that field.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from uasbench.data.slices import SliceSet
from uasbench.method import AnomalyMethod
from uasbench.registry import get_method, list_methods

from synthetic import pattern_lesion_slices

pytestmark = pytest.mark.slow

MARGIN = 0.2
FALLBACK_ITERATIONS = 100
_AE = {"image_size": None, "bottleneck_res": 4, "latent": 32, "width": 8, "batch_size": 8, "lr": 3e-3,
       "iterations": 100, "checkpoint_every": 1000}
_UNET = {"resolution": 16, "channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_ds": (),
         "groups": 4, "batch_size": 8, "lr": 3e-3, "iterations": 100, "checkpoint_every": 1000}
TINY: dict[str, dict[str, Any]] = {
    "ae": _AE,
    "vae": {**_AE, "kl_weight": 0.1},
    "dae": {"image_size": None, "features": (8, 8, 16, 16, 16, 8), "batch_size": 8, "lr": 3e-3, "iterations": 100,
            "checkpoint_every": 1000},
    "ddpm": {**_UNET, "ddim_steps": 10, "noise_levels": (200, 400)},
    "cyclic_unet": _UNET,
    "mmccd": {**_UNET, "band_width": 2, "stride": 2},
}
LEARNED = [name for name in list_methods() if name != "intensity"]


def tiny_settings(cls: type[AnomalyMethod]) -> dict[str, Any]:
    if cls.name in TINY:
        return TINY[cls.name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    return {"iterations": FALLBACK_ITERATIONS} if "iterations" in fields else {}


def pixel_auroc(maps: np.ndarray, slices: SliceSet) -> float:
    """How well the maps rank lesion pixels above the rest of the brain, all test slices pooled."""
    assert slices.seg is not None
    return float(roc_auc_score(slices.seg[slices.brain], maps[slices.brain]))


def fit_and_score(name: str, data: dict[str, SliceSet], overrides: dict[str, Any]) -> np.ndarray:
    """As the runner does: the target only for paired methods, labelled validation without the target."""
    cls = get_method(name)
    train = data["train"] if "target" in cls.train_modalities else dataclasses.replace(data["train"], y=None)
    method = cls.from_profile("quick", overrides, seed=0)
    method.fit(train, dataclasses.replace(data["val"], y=None))
    return method.score(data["test"].unlabelled())


@pytest.fixture(scope="module")
def data() -> dict[str, SliceSet]:
    return {"train": pattern_lesion_slices(48, 0, lesion=False), "val": pattern_lesion_slices(4, 1, lesion=True),
            "test": pattern_lesion_slices(6, 2, lesion=True)}


@pytest.fixture(scope="module")
def intensity_auroc(data: dict[str, SliceSet]) -> float:
    auroc = pixel_auroc(fit_and_score("intensity", data, {}), data["test"])
    # the data are as designed: neither brightness nor the raw image finds the lesion
    assert auroc < 0.6 and pixel_auroc(data["test"].x, data["test"]) < 0.6
    return auroc


@pytest.mark.parametrize("name", LEARNED)
def test_learned_method_finds_a_lesion_the_intensity_baseline_misses(name: str, data: dict[str, SliceSet],
                                                                      intensity_auroc: float) -> None:
    maps = fit_and_score(name, data, tiny_settings(get_method(name)))
    auroc = pixel_auroc(maps, data["test"])
    assert auroc >= intensity_auroc + MARGIN, (
        f"{name}: lesion pixel AUROC {auroc:.3f}, intensity baseline {intensity_auroc:.3f}")
