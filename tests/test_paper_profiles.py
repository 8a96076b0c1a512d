"""The ``paper`` profiles build the paper-size networks at 128x128 and run fit -> score end to end.

Only the run-length knobs are shortened (iterations, batch, DDIM steps, mask stride, lambda, IterMask2's
iteration cap, pDDPM's patch count): the architectures, resolution and schedules are the paper's, so a
configuration error there is caught without a GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

from uasbench.data.slices import SliceSet
from uasbench.registry import create_method

from synthetic import disk_slices

SHORT = {"intensity": {}, "ae": {"iterations": 2, "batch_size": 2}, "vae": {"iterations": 2, "batch_size": 2},
         "dae": {"iterations": 2, "batch_size": 2}, "cyclic_unet": {"iterations": 2, "batch_size": 2},
         "ddpm": {"iterations": 2, "batch_size": 2, "ddim_steps": 2},
         "mmccd": {"iterations": 2, "batch_size": 2, "ddim_steps": 2, "stride": 64},
         "itermask2": {"iterations": 2, "batch_size": 2, "max_iters": 2},
         "anoddpm": {"iterations": 1, "batch_size": 1, "noise_levels": (1,)},  # 99.9 M parameters
         "pddpm": {"iterations": 1, "batch_size": 1, "patch_size": 128}}  # 266 GFLOP per pass: one patch


def disks(n: int, seed: int, tumour: bool = False) -> SliceSet:
    """128x128 paired slices (Y = -X) of a noisy disk 'brain', optionally with a bright square lesion."""
    return disk_slices(n, 128, seed, lesion=(slice(40, 60), slice(50, 70)) if tumour else None)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHORT))
def test_paper_profile_runs_at_full_size(name: str) -> None:
    method = create_method(name, "paper", overrides=SHORT[name], seed=0)
    assert getattr(method.config, "resolution", 128) == 128
    assert getattr(method.config, "image_size", None) in (None, 128)  # the input grid: 128 in the protocol
    maps = method.fit(disks(4, 0), disks(2, 1, tumour=True), val_healthy=disks(2, 3)).score(disks(1, 2, tumour=True))
    assert maps.shape == (1, 128, 128) and maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.std() > 0
