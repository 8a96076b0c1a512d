"""Denoising auto-encoder baseline (Kascenas et al., MIDL 2022): a UNet that removes coarse noise.

Trained to undo smooth, low-frequency Gaussian noise added inside the brain, the UNet learns to map
anything unusual back to healthy-looking tissue; at test time it sees the clean slice and the residual
``|x - f(x)|`` marks what it "repaired" (the tumour).

Notes on the paper, the official code, every deviation, the profiles and the cost: docs/methods/dae.md.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from torch import nn

from uasbench.config_check import Invalid
from uasbench.method import MethodConfig
from uasbench.nn.reconstruction import ReconstructionConfig, ReconstructionMethod

# Brain 99th percentile over the healthy-brain standard deviation, in scanner units: median over the real
# BraTS cases of tests/fixtures/real-brats (2 cases x 4 modalities, slices 70-89); see DenoisingAutoEncoder.
P99_PER_STD = 5.4


@dataclass
class DAEConfig(ReconstructionConfig):
    iterations: int = field(default=67_200, metadata={"min": 1})  # Kascenas: 2,100 epochs of 32 batches
    batch_size: int = field(default=16, metadata={"min": 1})
    lr: float = field(default=1e-4, metadata={"above": 0})
    weight_decay: float = field(default=1e-5, metadata={"min": 0})
    # MONAI BasicUNet widths (5 levels + output); its group norm has 8 groups
    features: tuple[int, int, int, int, int, int] = field(default=(64, 128, 256, 512, 512, 64), metadata={"min": 1})
    # Kascenas' magnitude, as a fraction of the brain's 99th percentile (see below)
    noise_std: float = field(default=0.2, metadata={"min": 0})
    noise_res: int = field(default=16, metadata={"min": 1})  # noise cells per image side before bilinear upsampling

    def validate(self) -> None:
        super().validate()
        if any(width % 8 for width in self.features):
            raise Invalid("features", "every width must be a multiple of 8 (the UNet's group norm has 8 groups)")


class DenoisingAutoEncoder(ReconstructionMethod):
    """Kascenas' DAE on the input modality only (as in the MMCCD paper's Tables 1-2).

    Network: MONAI ``BasicUNet`` (two 3x3 conv + norm + leaky ReLU per level, max-pool down, transposed-conv
    up, skip concatenation), which is Kascenas' UNet block design; group norm as theirs (8 groups). Their
    UNet has 4 levels of 64-512 filters; BasicUNet always has 5, so we use (64, 128, 256, 512, 512).
    Training as theirs: MSE inside the brain, Adam 1e-4, weight decay 1e-5, batch 16, 67,200 iterations;
    without their AMSGrad variant and cosine learning-rate restarts (the shared loop uses plain Adam).

    Noise: a ``noise_res`` x ``noise_res`` Gaussian grid, bilinearly upsampled, randomly rolled (a random
    phase, as theirs), added only inside the brain mask. Kascenas divided each volume by its 99th
    percentile (of non-zero voxels), so their std 0.2 means 0.2 x p99 in scanner units. Our slices are
    z-scored (or, with the official protocol, linearly mapped), and neither keeps the scanner's zero, so p99
    cannot be read back from them; a ratio can: on the real BraTS cases shipped with the project,
    p99 / std(healthy brain, slices 70-89) ranges 4.1-8.2 over the 2 cases x 4 modalities, median 5.4
    (``P99_PER_STD``). The noise std is therefore ``noise_std x 5.4 x std(training brain intensities)``,
    computed at fit time, which is right under any linear normalisation (1.08 x the brain's std).

    quick: 64x64 internal grid, widths (16, 16, 32, 64, 64, 16), batch 16, Adam 1e-3, 600 iterations;
    the noise keeps 16 cells per side, i.e. the same size relative to the anatomy.
    """

    name = "dae"
    Config = DAEConfig
    profiles = {"paper": {}, "quick": {"image_size": 64, "features": (16, 16, 32, 64, 64, 16), "lr": 1e-3,
                                      "iterations": 600, "checkpoint_every": 200},
                "tiny": {"image_size": None, "features": (8, 8, 16, 16, 16, 8), "batch_size": 8, "lr": 3e-3,
                         "iterations": 100, "checkpoint_every": 1000}}

    def __init__(self, config: MethodConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.noise_scale = 0.0  # noise std in the slices' intensity units, set from the training data

    def _build_net(self, size: int) -> nn.Module:
        if size % 16:
            raise ValueError("the UNet halves the grid four times, so the size must be a multiple of 16")
        with contextlib.redirect_stdout(io.StringIO()):  # BasicUNet prints its widths
            return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(self.config.features),
                             norm=("group", {"num_groups": 8}))

    def _prepare(self, x: np.ndarray, brain: np.ndarray) -> None:
        inside = x[brain] if brain.any() else x.ravel()
        self.noise_scale = self.config.noise_std * P99_PER_STD * float(inside.std())

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
