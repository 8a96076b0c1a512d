"""DDPM reconstruction baseline (Pinaya et al. 2022, in image space as the MMCCD paper compares it).

A diffusion model (the same ADM UNet, T = 1000, linear betas) is trained on healthy input-modality slices.
At test time each slice is noised to an intermediate level t and denoised back with DDIM; a tumour is not
in the learned distribution, so it is "healed" and the map |x - x_hat| lights it up.

Deviations / choices (the paper gives no details of its DDPM baseline):
- The network predicts x0 (like MMCCD's f, so both diffusion models share the loss and sampler); DDIM with
  eta 0 on the respaced grid of ``ddim_steps`` (``Schedule.respaced``) below t, the last step returning x0.
- ``noise_levels`` and ``ddim_steps`` are test-time fields: changing them reuses the trained network, and the
  noise level is picked again on validation (``retune``).
- The noise level t is chosen from the grid ``noise_levels`` on the validation split: the t maximising the
  pixel AUPRC (sklearn ``average_precision_score``) inside the brain; threshold-free, so it does not
  compete with the benchmark's threshold tuning. With one grid value no validation data is needed.
- The noise is keyed by (seed, slice), so a slice's map does not depend on batching.
- ``quick`` profile: the small UNet of ``QUICK_NET`` at 32x32, 10-step respacing, t in {100, 300, 500}.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from uasbench.data.preprocess import resize
from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod
from uasbench.nn.diffusion import DiffusionOptions, keyed_generator
from uasbench.nn.training import seed_everything, train_network
from uasbench.nn.unet import UNet
from uasbench_methods.cyclic_unet import QUICK_NET


@dataclass
class DDPMConfig(DiffusionOptions):
    noise_levels: tuple[int, ...] = field(default=(100, 200, 300, 400, 500), metadata={"test_time": True})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.noise_levels = tuple(self.noise_levels)
        if not self.noise_levels or not all(0 <= t < self.train_timesteps for t in self.noise_levels):
            raise UasbenchError(f"option noise_levels={self.noise_levels} must be non-empty, each in "
                                f"0..{self.train_timesteps - 1}")


class DDPM(AnomalyMethod):
    name = "ddpm"
    Config = DDPMConfig
    profiles = {"paper": {}, "quick": {**QUICK_NET, "ddim_steps": 10, "noise_levels": (100, 300, 500)}}
    config: DDPMConfig

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None:
        c = self.config
        self._check_validation(val)  # before training, not after hours of it
        seed_everything(self.seed)
        self.net = c.unet(timestep=True)
        schedule = c.schedule
        train_network(self.net, lambda net, batch, gen: schedule.x0_loss(net, batch[0], gen),
                      [resize(train.x, c.resolution)], c.train_settings(), device=self.device,
                      seed=self.seed, workdir=workdir, name="ddpm")
        self.retune(val)

    def _check_validation(self, val: SliceSet | None) -> None:
        levels = self.config.noise_levels
        if len(levels) > 1 and (val is None or val.seg is None or len(val) == 0):
            raise UasbenchError(f"method 'ddpm' picks noise_levels={levels} on labelled validation "
                                "slices, but none were given; pass a validation split or a single noise level")

    def retune(self, val: SliceSet | None) -> None:
        """Pick the noise level of ``noise_levels`` with the best validation AUPRC (the only one: no data needed)."""
        c = self.config
        self._check_validation(val)
        self.noise_level, self.val_auprc = c.noise_levels[0], {}
        if len(c.noise_levels) > 1:
            assert val is not None and val.seg is not None
            self.val_auprc = {t: self._auprc(val, t) for t in c.noise_levels}
            self.noise_level = max(self.val_auprc, key=self.val_auprc.__getitem__)

    def _auprc(self, val: SliceSet, noise_level: int) -> float:
        """Threshold-free pixel AUPRC inside the brain: how well the maps at this t rank tumour pixels."""
        assert val.seg is not None
        maps = self._maps(val, noise_level)
        return float(average_precision_score(val.seg[val.brain], maps[val.brain]))

    def _maps(self, slices: SliceSet, noise_level: int) -> np.ndarray:
        """|x - x_hat| with x_hat = DDIM(noised x at ``noise_level``), on the input grid."""
        c, schedule = self.config, self.config.schedule
        timesteps = schedule.respaced(c.ddim_steps, start=noise_level)
        x = torch.from_numpy(resize(slices.x, c.resolution)).unsqueeze(1)
        errors = []
        self.net.eval()
        with torch.inference_mode():
            for ids in torch.arange(len(x)).split(c.infer_batch):
                xs = x[ids].to(self.device)
                noise = torch.stack([torch.randn(xs.shape[1:], device=self.device,
                                                 generator=keyed_generator(self.device, self.seed, int(i)))
                                     for i in ids])
                y = schedule.q_sample(xs, torch.full((len(xs),), timesteps[0], device=self.device), noise)
                errors.append((xs - schedule.ddim_sample(self.net, y, timesteps)).abs()[:, 0].cpu())
        return resize(torch.cat(errors).numpy(), slices.x.shape[-2:], mode="bilinear")

    def _score(self, slices: SliceSet) -> np.ndarray:
        return self._maps(slices, self.noise_level)

    def get_state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "noise_level": self.noise_level, "val_auprc": self.val_auprc}

    def set_state(self, state: dict[str, Any]) -> None:
        self.net: UNet = self.config.unet(timestep=True)
        self.net.load_state_dict(state["net"])
        self.net.to(self.device).eval()
        self.noise_level, self.val_auprc = int(state["noise_level"]), dict(state["val_auprc"])
