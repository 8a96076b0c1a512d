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

Notes on the paper, the official code, every deviation, the profiles and the cost: docs/methods/ddpm.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uasbench.data.preprocess import resize
from uasbench.data.slices import SliceSet
from uasbench.config_check import Invalid
from uasbench.method import MethodConfig, NetworkCost
from uasbench.nn.diffusion import DiffusionOptions, map_keyed
from uasbench.nn.noise_level import PicksNoiseLevel, require_validation
from uasbench.nn.simplex import draw_noise
from uasbench.nn.training import seed_everything, train_network
from uasbench.nn.unet import QUICK_NET, TINY_NET, UNet


@dataclass
class DDPMConfig(DiffusionOptions):
    noise_levels: tuple[int, ...] = field(default=(100, 200, 300, 400, 500), metadata={"min": 0, "test_time": True})

    def validate(self) -> None:
        super().validate()
        if not self.noise_levels or max(self.noise_levels) >= self.train_timesteps:
            raise Invalid("noise_levels", f"must be non-empty, each in 0..{self.train_timesteps - 1} "
                                          "(train_timesteps - 1)")


class DDPM(PicksNoiseLevel):
    name = "ddpm"
    Config = DDPMConfig
    profiles = {"paper": {}, "quick": {**QUICK_NET, "ddim_steps": 10, "noise_levels": (100, 300, 500)},
                "tiny": {**TINY_NET, "ddim_steps": 10, "noise_levels": (200, 400)}}
    config: DDPMConfig

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost]:
        """Scoring is priced at the largest noise level of the grid (an upper bound: the chosen t is known
        only after fitting); choosing it costs one denoising per grid value per validation slice."""
        assert isinstance(config, DDPMConfig)
        steps = {t: len(config.schedule.respaced(config.ddim_steps, start=t)) for t in config.noise_levels}
        return [NetworkCost("ddpm", lambda: config.unet(timestep=True), (1, config.resolution, config.resolution),
                            timestep=True, train_samples=config.iterations * config.batch_size,
                            passes_per_slice=max(steps.values()),
                            passes_per_val_slice_in_fit=sum(steps.values()) if len(steps) > 1 else 0)]

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None:
        c = self.config
        require_validation(self.name, c.noise_levels, val)
        seed_everything(self.seed)
        self.net = c.unet(timestep=True)
        schedule = c.schedule
        train_network(self.net, lambda net, batch, gen: schedule.x0_loss(net, batch[0], gen),
                      [resize(train.x, c.resolution)], c.train_settings(), device=self.device,
                      seed=self.seed, workdir=workdir, name="ddpm")
        self.retune(val)

    def _maps(self, slices: SliceSet, noise_level: int) -> np.ndarray:
        """|x - x_hat| with x_hat = DDIM(noised x at ``noise_level``), on the input grid."""
        c, schedule = self.config, self.config.schedule
        timesteps = schedule.respaced(c.ddim_steps, start=noise_level)

        def abs_error(x: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
            noise = draw_noise("gauss", tuple(x.shape), generators)
            y = schedule.q_sample(x, torch.full((len(x),), timesteps[0], device=x.device), noise)
            return (x - schedule.ddim_sample(self.net, y, timesteps)).abs()

        self.net.eval()
        maps = map_keyed(abs_error, resize(slices.x, c.resolution), batch_size=c.infer_batch, device=self.device,
                         seed=self.seed)
        return resize(maps, slices.x.shape[-2:], mode="bilinear")

    def get_state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "noise_level": self.noise_level, "val_auprc": self.val_auprc}

    def set_state(self, state: dict[str, Any]) -> None:
        self.net: UNet = self.config.restored_unet(state["net"], self.device, timestep=True)
        self.noise_level, self.val_auprc = int(state["noise_level"]), dict(state["val_auprc"])
