"""A deliberately simple method: how much a pixel's neighbourhood departs from its smooth surroundings.

It shows every part of the plugin contract: a typed config with ``paper``, ``quick`` and ``tiny`` profiles
(``tiny``: what the contract kit ``uasbench.testing`` fits with), ``_fit`` on healthy slices (declaring the
optional ``val_healthy`` keyword, so the engine also hands it the tumour-free validation slices), ``_score``
into per-pixel maps, and ``get_state``/``set_state`` for ``save``/``load``. The score is the local contrast
``|x - smooth(x)|``, smoothed again, as a z-score against the brain pixels of the healthy training slices (and
of the healthy validation slices when given: more healthy tissue, never test data). Smoothing is restricted
to the brain, so the brain's edge is no contrast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from uasbench import AnomalyMethod, MethodConfig
from uasbench.data.slices import SliceSet


@dataclass
class LocalContrastConfig(MethodConfig):
    smoothing_sigma: float = field(default=1.0, metadata={"above": 0})  # pixels; --set values are checked


class LocalContrast(AnomalyMethod):
    name = "local_contrast"
    Config = LocalContrastConfig
    profiles = {"paper": {}, "quick": {"smoothing_sigma": 1.0}, "tiny": {"smoothing_sigma": 1.0}}

    def _contrast(self, slices: SliceSet) -> np.ndarray:
        sigma = (0, self.config.smoothing_sigma, self.config.smoothing_sigma)
        brain = slices.brain.astype(np.float32)

        weight = np.maximum(ndimage.gaussian_filter(brain, sigma), 1e-6)

        def smooth(values: np.ndarray) -> np.ndarray:  # the mean of brain pixels around each pixel
            return ndimage.gaussian_filter(values * brain, sigma) / weight

        return smooth(np.abs(slices.x - smooth(slices.x.astype(np.float32)))) * brain

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None, *,
             val_healthy: SliceSet | None = None) -> None:
        healthy = [train] + ([val_healthy] if val_healthy is not None and len(val_healthy) else [])
        values = np.concatenate([self._contrast(s)[s.brain] for s in healthy])
        self.mean_, self.std_ = float(values.mean()), float(values.std() + 1e-6)

    def _score(self, slices: SliceSet) -> np.ndarray:
        return (self._contrast(slices) - self.mean_) / self.std_

    def get_state(self) -> dict[str, float]:
        return {"mean": self.mean_, "std": self.std_}

    def set_state(self, state: dict[str, float]) -> None:
        self.mean_, self.std_ = state["mean"], state["std"]
