"""Deterministic UNet translators between modalities (source -> target), shared by the cyclic methods.

Cyclic UNet trains two of them (f: X -> Y and g: Y -> X), MMCCD trains g, IterMask2 trains its frequency
translator with the same loss. Each is trained alone with an MSE loss over the whole image (the MMCCD paper's
Eq. 7) through ``uasbench.nn.training``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from uasbench.data.preprocess import resize
from uasbench.method import NetworkCost
from uasbench.nn.training import seed_everything, train_network
from uasbench.nn.unet import NetOptions, UNet


def translator_cost(options: NetOptions, name: str) -> NetworkCost:
    """A translator (Cyclic UNet's f and g, MMCCD's g): trained alone, one pass per scored slice."""
    return NetworkCost(name, lambda: options.unet(timestep=False), (1, options.resolution, options.resolution),
                       train_samples=options.iterations * options.batch_size, passes_per_slice=1)


def translation_loss(net: torch.nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """MSE of a deterministic translation source -> target (the paper's Eq. 7), over the whole image."""
    del generator
    source, target = batch
    return F.mse_loss(net(source), target)


def train_translator(options: NetOptions, source: np.ndarray, target: np.ndarray, *, device: torch.device,
                     seed: int, workdir: Path | None, name: str) -> UNet:
    """A deterministic UNet source -> target at ``options.resolution`` (used by Cyclic UNet and MMCCD's g)."""
    seed_everything(seed)
    net = options.unet(timestep=False)
    arrays = [resize(a, options.resolution) for a in (source, target)]
    train_network(net, translation_loss, arrays, options.train_settings(), device=device, seed=seed,
                  workdir=workdir, name=name)
    return net
