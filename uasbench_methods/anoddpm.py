"""AnoDDPM (Wyatt et al., CVPRW 2022): partial diffusion with multi-octave simplex noise.

An epsilon-predicting DDPM (T = 1000, linear betas) is trained on healthy slices with simplex noise, which
is also its prediction target (t below 800). At test time a slice is noised to level lambda with simplex
noise and denoised back with lambda ancestral DDPM steps (posterior mean of the clamped x0 prediction plus
sqrt(beta_t) times a fresh simplex field); coarse simplex noise hides a whole lesion, which the model then
replaces by healthy tissue. Map: (x - x_hat)^2. Cost: lambda network passes per slice (200-250).

Follows the official code (notes: docs/methods/anoddpm.md) at the benchmark's 128x128 protocol:
- Network: the official UNet is built for 256x256 slices (multipliers (1, 1, 2, 2, 4, 4), 131.6 M
  parameters); at 128x128 its own code picks (1, 1, 2, 3, 4) (99.9 M), which we use: 128 channels, 2 residual
  blocks, attention at 32, 16 and 8 px and in the middle, GroupNorm 32, no dropout. Ours conditions on t by
  scale-shift (official: additive) and uses one attention head (official: 2 at training, 1 at detection).
- Simplex noise: 6 octaves, persistence 0.8, coarsest feature size 64 px at 256x256, i.e. 32 px at 128x128;
  std 0.5 as the official fields; computed in torch (uasbench.nn.simplex: 3-D simplex planes, statistically
  like the official OpenSimplex fields, not identical), one field per sample and step (official: one per
  call, batch 1), keyed by (seed, slice) at test so maps do not depend on batching.
- Training: AdamW with weight decay 0 (= Adam) lr 1e-4, batch 1, 300,000 steps, as the official run; without
  its gradient-norm clipping at 1 and its EMA weights (the shared loop has neither: raw weights are used,
  as for every method here).
- lambda: the official scripts use 200 (metrics) and 250 (ROC curves); we pick one of ``noise_levels`` on
  the labelled validation slices by pixel AUPRC, as the DDPM baseline (the official code has no validation).
- Intensities: mapped affinely to about [-1, 1] (uasbench.nn.diffusion.SignedScale; official: clipping to
  [mean - std, mean + 2 std] of the volume, / 3 std, 2v - 1), x0 clamped to [-1, 1] in every step as theirs.
- Maps are raw; the authors threshold the squared error at a fixed 0.5 without brain mask, filter or
  connected components; here thresholds and post-processing are the benchmark's.
- ``quick`` profile: the small UNet of ``QUICK_NET`` at 32x32 with feature size 8 px, lambda in {100, 200}.
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
from uasbench.method import MethodConfig, NetworkCost, redefault
from uasbench.nn.diffusion import ChainOptions, SignedScale, map_keyed
from uasbench.nn.noise_level import PicksNoiseLevel, require_validation
from uasbench.nn.simplex import NoiseOptions
from uasbench.nn.training import seed_everything, train_network
from uasbench.nn.unet import QUICK_NET, TINY_NET, UNet


@dataclass
class AnoDDPMConfig(ChainOptions, NoiseOptions):
    channels: int = redefault(ChainOptions, "channels", 128)
    dropout: float = redefault(ChainOptions, "dropout", 0.0)
    groups: int = redefault(ChainOptions, "groups", 32)
    iterations: int = redefault(ChainOptions, "iterations", 300_000)
    batch_size: int = redefault(ChainOptions, "batch_size", 1)
    t_train_max: int = field(default=800, metadata={"min": 1})  # training steps t are drawn in 0..t_train_max-1
    # lambda candidates
    noise_levels: tuple[int, ...] = field(default=(200, 250), metadata={"min": 1, "test_time": True})
    clamp_x0: bool = field(default=True, metadata={"test_time": True})

    def validate(self) -> None:
        super().validate()
        if self.t_train_max > self.train_timesteps:
            raise Invalid("t_train_max", f"must be in 1..{self.train_timesteps} (train_timesteps)")
        if not self.noise_levels or max(self.noise_levels) > self.train_timesteps:
            raise Invalid("noise_levels", f"must be non-empty, each in 1..{self.train_timesteps} (train_timesteps)")


class AnoDDPM(PicksNoiseLevel):
    name = "anoddpm"
    Config = AnoDDPMConfig
    profiles = {"paper": {},
                "quick": {**QUICK_NET, "batch_size": 32, "simplex_frequency": 8.0, "noise_levels": (100, 200)}}
    profiles["tiny"] = {**TINY_NET, "simplex_frequency": 4.0, "noise_levels": (100, 200)}
    config: AnoDDPMConfig

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost]:
        """Scoring is priced at the largest lambda (ancestral steps back from it; an upper bound: the chosen one is
        known only after fitting); choosing it costs one reconstruction per candidate per validation slice."""
        assert isinstance(config, AnoDDPMConfig)
        size, levels = config.resolution, config.noise_levels
        return [NetworkCost("anoddpm", lambda: config.unet(timestep=True), (1, size, size), timestep=True,
                            train_samples=config.iterations * config.batch_size, passes_per_slice=max(levels),
                            passes_per_val_slice_in_fit=sum(levels) if len(levels) > 1 else 0)]

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None:
        c = self.config
        require_validation(self.name, c.noise_levels, val)
        x = resize(train.x, c.resolution)
        self.scale = SignedScale.fit(x, resize(train.brain.astype(np.float32), c.resolution) > 0.5)
        seed_everything(self.seed)
        self.net = c.unet(timestep=True)
        schedule = c.schedule
        train_network(self.net, lambda net, batch, gen: schedule.eps_loss(
                          net, batch[0], gen, lambda shape: c.draw(shape, gen), c.t_train_max),
                      [self.scale(x)], c.train_settings(), device=self.device, seed=self.seed, workdir=workdir,
                      name="anoddpm")
        self.retune(val)

    def _maps(self, slices: SliceSet, noise_level: int) -> np.ndarray:
        """(x - x_hat)^2, x_hat = ``noise_level`` ancestral steps from x noised to step noise_level - 1."""
        c, schedule = self.config, self.config.schedule
        start, clamp = noise_level - 1, (-1.0, 1.0) if c.clamp_x0 else None

        def squared_error(x: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
            noise = lambda shape: c.draw(shape, generators)  # noqa: E731  (each call: the next field of each slice)
            y = schedule.q_sample(x, torch.full((len(x),), start, device=x.device), noise(tuple(x.shape)))
            return (x - schedule.ancestral_sample(self.net, y, start, noise, clamp=clamp)) ** 2

        self.net.eval()
        maps = map_keyed(squared_error, self.scale(resize(slices.x, c.resolution)), batch_size=c.infer_batch,
                         device=self.device, seed=self.seed)
        return resize(maps, slices.x.shape[-2:], mode="bilinear")

    def get_state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "scale": (self.scale.lo, self.scale.hi),
                "noise_level": self.noise_level, "val_auprc": self.val_auprc}

    def set_state(self, state: dict[str, Any]) -> None:
        self.net: UNet = self.config.restored_unet(state["net"], self.device, timestep=True)
        self.scale = SignedScale(*map(float, state["scale"]))
        self.noise_level, self.val_auprc = int(state["noise_level"]), dict(state["val_auprc"])
