"""DDPM, Cyclic UNet and MMCCD as plugins: paired training, DDPM's noise level, refusals with clear messages (fit,
score and save/load of every method: tests/test_method_contract.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod
from uasbench_methods.cyclic_unet import CyclicUNet
from uasbench_methods.ddpm import DDPM
from uasbench_methods.mmccd import MMCCD

from synthetic import disk_slices, pattern_lesion_slices

EXTRA = {DDPM: {"ddim_steps": 5, "noise_levels": (200, 400)},
         MMCCD: {"ddim_steps": 3, "band_width": 4, "stride": 4, "max_batch": 64},
         CyclicUNet: {}}


def slices(n: int, *, paired: bool = True, tumour: bool = False, seed: int = 0) -> SliceSet:
    """32x32 disks, Y = -X; an optional bright square 'tumour' in X."""
    return disk_slices(n, 32, seed, lesion=(slice(10, 18), slice(12, 20)) if tumour else None, paired=paired)


def build(cls: type[AnomalyMethod]) -> AnomalyMethod:
    """The method's ``tiny`` profile, trained for 4 steps (what these tests look at needs no learning)."""
    return cls.from_profile("tiny", {"iterations": 4, **EXTRA[cls]}, seed=3)


@pytest.mark.parametrize("cls", [CyclicUNet, MMCCD])
def test_cyclic_methods_refuse_training_data_without_the_target(cls: type[AnomalyMethod]) -> None:
    with pytest.raises(UasbenchError, match="needs the target modality"):
        build(cls).fit(slices(8, paired=False))


def test_ddpm_picks_the_noise_level_on_validation_and_keeps_it(tmp_path: Path) -> None:
    method = build(DDPM)
    with pytest.raises(UasbenchError, match="validation"):
        method.fit(slices(8, paired=False))
    val = dataclasses.replace(pattern_lesion_slices(3, 1, lesion=True), y=None)  # a lesion the levels rank differently
    test = slices(2, tumour=True, seed=2)
    method.fit(slices(8, paired=False), val)
    assert set(method.val_auprc) == {200, 400}
    # Independent numbers: the same training with one noise level at a time, scored through the public API,
    # ranked by sklearn's AUPRC of the validation tumour pixels inside the brain.
    singles = {t: DDPM.from_profile("tiny", {"iterations": 4, **EXTRA[DDPM], "noise_levels": (t,)}, seed=3)
               .fit(slices(8, paired=False)) for t in (200, 400)}
    auprc = {t: average_precision_score(val.seg[val.brain], m.score(val)[val.brain]) for t, m in singles.items()}
    assert auprc[200] != auprc[400]
    assert method.noise_level == max(auprc, key=auprc.get)
    np.testing.assert_array_equal(method.score(test), singles[method.noise_level].score(test))
    method.save(tmp_path / "d.pt")
    assert DDPM.load(tmp_path / "d.pt").noise_level == method.noise_level
    single = DDPM.from_profile("tiny", {"iterations": 4, "ddim_steps": 5, "noise_levels": (300,)})
    assert single.fit(slices(8, paired=False)).noise_level == 300


def test_bad_options_name_the_option() -> None:
    with pytest.raises(UasbenchError, match="band_width"):
        MMCCD.from_profile("quick", {"band_width": 64})
    with pytest.raises(UasbenchError, match="directions"):
        MMCCD.from_profile("quick", {"directions": ("diagonal",)})
    with pytest.raises(UasbenchError, match="max_batch=-1"):
        MMCCD.from_profile("quick", {"max_batch": -1})
    with pytest.raises(UasbenchError, match="noise_levels"):
        DDPM.from_profile("quick", {"noise_levels": (1000,)})


def test_paper_profiles_are_the_official_settings() -> None:
    c = MMCCD.config_for("paper")
    assert (c.resolution, c.channels, c.channel_mult, c.iterations, c.batch_size, c.lr) == \
        (128, 32, (1, 1, 2, 3, 4), 100_000, 32, 1e-4)
    engine_masks = (c.resolution - 1) // c.stride + 1
    assert 2 * engine_masks == 128 and (c.ddim_steps, c.band_width) == (100, 16)
