"""Histogram-equalised intensity baseline (Meissen et al., BrainLes 2021).

Meissen et al. showed that simply equalising the FLAIR histogram and thresholding the intensity rivals
deep unsupervised methods on BraTS, so it is the floor every learned method must beat. The anomaly
score of a pixel is its equalised intensity: the empirical CDF of the brain intensities of its own
slice, evaluated at the pixel's value (bright = anomalous). Nothing is learned, so ``fit`` only checks
its input; ``paper`` and ``quick`` are the same.

Choices: equalisation is per slice (the method sees one slice at a time in the paper protocol; Meissen
equalised per volume), with ``n_bins`` histogram bins like scikit-image's ``equalize_hist``. On inputs
where tumours are dark (T1) the score stays "bright = anomalous", exactly as the original baseline.

Notes on the paper, the official code, every deviation, the profiles and the cost: docs/methods/intensity.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uasbench.data.slices import SliceSet
from uasbench.method import AnomalyMethod, MethodConfig, NetworkCost


@dataclass
class IntensityConfig(MethodConfig):
    n_bins: int = field(default=256, metadata={"min": 1})


class IntensityBaseline(AnomalyMethod):
    name = "intensity"
    Config = IntensityConfig
    profiles = {"paper": {}, "quick": {}, "tiny": {}}

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost]:
        return []  # no network: a histogram per slice

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None:
        del train, val, workdir  # no parameters: the floor needs no training data

    def _score(self, slices: SliceSet) -> np.ndarray:
        return np.stack([self._equalise(img, brain) for img, brain in zip(slices.x, slices.brain)])

    def _equalise(self, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
        values = image[brain]
        if values.size == 0:
            return np.zeros_like(image, dtype=np.float32)
        counts, edges = np.histogram(values, bins=self.config.n_bins)
        cdf = np.cumsum(counts) / values.size
        centres = (edges[:-1] + edges[1:]) / 2
        return np.interp(image, centres, cdf).astype(np.float32) * brain
