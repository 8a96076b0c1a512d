"""Cyclic UNet (Liang et al. 2023, the paper's own baseline): x -> f -> y_bar -> g -> x_bar, error |x - x_bar|^2.

Two deterministic UNets are trained separately on paired healthy slices: f: X -> Y and g: Y -> X (g on the
real Y, not on f's outputs), each with an MSE loss. A tumour is a tissue whose multi-modal signature the
networks never learned, so its cycle does not close. Only X is needed at test time.

Deviations / choices:
- Error map: the squared error (x - g(f(x)))^2 as the official code, not the paper's L2 norm (per pixel the
  two are monotone in each other, so rankings and AUCs agree). No global min-max normalisation: the
  benchmark tunes thresholds on validation, not on a normalised test set.
- The translators carry no time-embedding weights (the official g has 681,216 unused ones): same function.
- Weights are the raw (non-EMA) weights, as the official code evaluates.
- ``quick`` profile (``uasbench.nn.unet.QUICK_NET``, shared by the UNet methods): a 0.2 M-parameter UNet at 32x32
  (channels 8/16/32, one residual block per level, attention at 8x8; maps bilinearly resized to the input
  grid), 300 Adam steps of batch 32 at lr 1e-3.

Notes on the paper, the official code, every deviation, the profiles and the cost: docs/methods/cyclic_unet.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from uasbench.data.preprocess import resize
from uasbench.data.slices import SliceSet
from uasbench.method import AnomalyMethod, MethodConfig, NetworkCost
from uasbench.nn.training import predict_batched
from uasbench.nn.translation import train_translator, translator_cost
from uasbench.nn.unet import QUICK_NET, TINY_NET, NetOptions

class CyclicUNet(AnomalyMethod):
    name = "cyclic_unet"
    Config = NetOptions
    profiles = {"paper": {}, "quick": dict(QUICK_NET), "tiny": dict(TINY_NET)}
    train_modalities = ("input", "target")
    config: NetOptions

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost]:
        assert isinstance(config, NetOptions)
        return [translator_cost(config, "f"), translator_cost(config, "g")]

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None:
        del val  # nothing is tuned: the threshold is the benchmark's job
        assert train.y is not None  # checked by AnomalyMethod.fit
        self.f = train_translator(self.config, train.x, train.y, device=self.device, seed=self.seed,
                                  workdir=workdir, name="cyclic_f")
        self.g = train_translator(self.config, train.y, train.x, device=self.device, seed=self.seed + 1,
                                  workdir=workdir, name="cyclic_g")

    def _score(self, slices: SliceSet) -> np.ndarray:
        x = resize(slices.x, self.config.resolution)
        x_back = predict_batched(lambda t: self.g(self.f(t)), x, batch_size=self.config.infer_batch,
                                 device=self.device)
        return resize((x - x_back[:, 0]) ** 2, slices.x.shape[-2:], mode="bilinear")

    def get_state(self) -> dict[str, Any]:
        return {"f": self.f.state_dict(), "g": self.g.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.f, self.g = (self.config.restored_unet(state[k], self.device, timestep=False) for k in ("f", "g"))
