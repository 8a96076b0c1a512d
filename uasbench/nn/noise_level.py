"""Picking a diffusion method's noise level on labelled validation slices (DDPM, AnoDDPM).

How far a slice is noised before it is denoised back decides what a reconstruction method can "heal"; the
papers tune it, so the level is chosen among the config's ``noise_levels`` by the threshold-free pixel AUPRC
inside the brain on the validation split (sklearn ``average_precision_score``), which does not compete with
the benchmark's own threshold tuning. With one candidate no validation data is needed.
"""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod


def require_validation(method: str, levels: tuple[int, ...], val: SliceSet | None) -> None:
    """Fail before training when several noise levels are to be compared but no labelled validation exists."""
    if len(levels) > 1 and (val is None or val.seg is None or len(val) == 0):
        raise UasbenchError(f"method {method!r} picks noise_levels={levels} on labelled validation "
                            "slices, but none were given; pass a validation split or a single noise level")


def pick_noise_level(levels: tuple[int, ...], val: SliceSet | None,
                     maps: Callable[[SliceSet, int], np.ndarray]) -> tuple[int, dict[int, float]]:
    """The level whose validation ``maps(val, level)`` rank tumour pixels best (threshold-free pixel AUPRC inside
    the brain), with the AUPRC of every level; a single level is returned as is, without validation."""
    if len(levels) == 1:
        return levels[0], {}
    assert val is not None and val.seg is not None
    auprc = {t: float(average_precision_score(val.seg[val.brain], maps(val, t)[val.brain])) for t in levels}
    return max(auprc, key=auprc.__getitem__), auprc


class PicksNoiseLevel(AnomalyMethod):
    """Base of the methods that pick their noise level among ``config.noise_levels`` on validation (DDPM,
    AnoDDPM): the choice is redone by ``retune`` whenever a test-time change reloads the checkpoint."""

    config: Any
    noise_level: int
    val_auprc: dict[int, float]

    def retune(self, val: SliceSet | None) -> None:
        """Pick the noise level of ``noise_levels`` with the best validation AUPRC."""
        require_validation(self.name, self.config.noise_levels, val)
        self.noise_level, self.val_auprc = pick_noise_level(self.config.noise_levels, val, self._maps)

    @abstractmethod
    def _maps(self, slices: SliceSet, noise_level: int) -> np.ndarray: ...

    def _score(self, slices: SliceSet) -> np.ndarray:
        return self._maps(slices, self.noise_level)
