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

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from uasbench.data.preprocess import resize
from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod, MethodConfig, NetworkCost
from uasbench.nn.diffusion import DiffusionOptions, map_keyed
from uasbench.nn.simplex import draw_noise
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


class DDPM(PicksNoiseLevel):
    name = "ddpm"
    Config = DDPMConfig
    profiles = {"paper": {}, "quick": {**QUICK_NET, "ddim_steps": 10, "noise_levels": (100, 300, 500)}}
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
