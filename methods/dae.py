"""Denoising auto-encoder baseline (Kascenas et al., MIDL 2022): a UNet that removes coarse noise.

Trained to undo smooth, low-frequency Gaussian noise added inside the brain, the UNet learns to map
anything unusual back to healthy-looking tissue; at test time it sees the clean slice and the residual
``|x - f(x)|`` marks what it "repaired" (the tumour).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from torch import nn

from uasbench_methods.ae import ReconstructionConfig, ReconstructionMethod


@dataclass
class DAEConfig(ReconstructionConfig):
    iterations: int = 67_200  # Kascenas: 2,100 epochs of 32 batches
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-5
    features: tuple[int, ...] = (64, 128, 256, 512, 512, 64)  # MONAI BasicUNet widths (5 levels + output)
    noise_std: float = 0.2  # Kascenas' magnitude, in units of the brain's 99th percentile (see below)
    noise_res: int = 16  # noise cells per image side before bilinear upsampling


class DenoisingAutoEncoder(ReconstructionMethod):
    """Kascenas' DAE on the input modality only (as in the MMCCD paper's Tables 1-2).

    Network: MONAI ``BasicUNet`` (two 3x3 conv + norm + leaky ReLU per level, max-pool down, transposed-conv
    up, skip concatenation), which is Kascenas' UNet block design; group norm (8 groups) as theirs. Their
    UNet has 4 levels of 64-512 filters; BasicUNet always has 5, so we use (64, 128, 256, 512, 512).
    Training as theirs: MSE inside the brain, Adam 1e-4, weight decay 1e-5, batch 16, 67,200 iterations;
    without their AMSGrad variant and cosine learning-rate restarts (the shared loop uses plain Adam).

    Noise: a ``noise_res`` x ``noise_res`` Gaussian grid, bilinearly upsampled, randomly rolled (a random
    phase, as theirs), added only inside the brain mask. Kascenas scaled each volume to [0, 1] by its 99th
    percentile, so their std 0.2 is 0.2 x (p99 - 0) in intensity units, 0 being the background. Our slices
    are z-scored, an affine map of theirs, so the same noise is 0.2 x (p99 of the training brain intensities
    - the background value), both read from the training slices at fit time (median outside the brain,
    or the minimum if there is none). This is exact when the background holds the normalised value of
    intensity 0 (as in the official normalisation); if a pipeline zeroes the background after z-scoring,
    the noise is weaker than theirs.

    quick: 64x64 internal grid, widths (16, 16, 32, 64, 64, 16), batch 16, Adam 1e-3, 600 iterations;
    the noise keeps 16 cells per side, i.e. the same size relative to the anatomy.
    """

    name = "dae"
    Config = DAEConfig
    profiles = {"paper": {}, "quick": {"image_size": 64, "features": (16, 16, 32, 64, 64, 16), "lr": 1e-3,
                                      "iterations": 600, "checkpoint_every": 200}}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.noise_scale = 0.0  # noise std in the slices' intensity units, set from the training data

    def _build_net(self, size: int) -> nn.Module:
        if size % 16:
            raise ValueError("the UNet halves the grid four times, so the size must be a multiple of 16")
        with contextlib.redirect_stdout(io.StringIO()):  # BasicUNet prints its widths
            return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(self.config.features),
                             norm=("group", {"num_groups": 8}))

    def _prepare(self, x: np.ndarray, brain: np.ndarray) -> None:
        inside = x[brain] if brain.any() else x.ravel()
        background = float(np.median(x[~brain])) if (~brain).any() else float(x.min())
        self.noise_scale = self.config.noise_std * (float(np.percentile(inside, 99)) - background)

    def _coarse_noise(self, brain: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = brain.shape
        res = self.config.noise_res
        grid = torch.randn((n, 1, res, res), generator=generator, device=brain.device) * self.noise_scale
        noise = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
        dy, dx = (int(torch.randint(size, (1,), generator=generator, device=brain.device)) for size in (h, w))
        return torch.roll(noise, shifts=(dy, dx), dims=(-2, -1)) * brain

    def _loss(self, net: nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x, brain = batch
        denoised = net(x + self._coarse_noise(brain, generator))
        return ((denoised - x).pow(2) * brain).mean()
