"""A deliberately simple method: how far a pixel lies above the healthy intensity distribution.

It shows every part of the plugin contract: a typed config with ``paper`` and ``quick`` profiles,
``_fit`` on healthy slices (declaring the optional ``val_healthy`` keyword, so the engine also hands it the
tumour-free validation slices), ``_score`` into per-pixel maps, and ``get_state``/``set_state`` for
``save``/``load``. The score is the z-score of the pixel's locally smoothed intensity against the mean
and standard deviation of the brain intensities of the healthy training slices, and of the healthy
validation slices when given (more healthy tissue; never test data).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from uasbench import AnomalyMethod, MethodConfig
from uasbench.data.slices import SliceSet


@dataclass
class LocalContrastConfig(MethodConfig):
    smoothing_sigma: float = 1.0


class LocalContrast(AnomalyMethod):
    name = "local_contrast"
    Config = LocalContrastConfig
    profiles = {"paper": {}, "quick": {"smoothing_sigma": 0.5}}

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None, *,
             val_healthy: SliceSet | None = None) -> None:
        healthy = [train] + ([val_healthy] if val_healthy is not None else [])
        brain_values = np.concatenate([s.x[s.brain] for s in healthy])
        self.mean_, self.std_ = float(brain_values.mean()), float(brain_values.std() + 1e-6)

    def _score(self, slices: SliceSet) -> np.ndarray:
        sigma = (0, self.config.smoothing_sigma, self.config.smoothing_sigma)
        smooth = ndimage.gaussian_filter(slices.x.astype(np.float32), sigma=sigma)
        return (smooth - self.mean_) / self.std_

    def get_state(self) -> dict[str, float]:
        return {"mean": self.mean_, "std": self.std_}

    def set_state(self, state: dict[str, float]) -> None:
        self.mean_, self.std_ = state["mean"], state["std"]
