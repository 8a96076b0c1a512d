"""Variational auto-encoder baseline (Baur et al., MedIA 2021): the AE with a Gaussian latent and a KL term.

Notes on the paper, the official code, every deviation, the profiles and the cost: docs/methods/vae.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from uasbench.nn.reconstruction import AUTOENCODER_PROFILES, AEConfig, DenseAutoEncoderMethod


@dataclass
class VAEConfig(AEConfig):
    # weight of the KL divergence against the per-image summed L1 error (plain ELBO: 1)
    kl_weight: float = field(default=1.0, metadata={"min": 0})


class VariationalAutoEncoder(DenseAutoEncoderMethod):
    """Baur's VAE: the AE architecture whose dense bottleneck outputs a mean and a log-variance.

    Loss per image: summed L1 reconstruction error + ``kl_weight`` x KL(q(z|x) || N(0, I)), divided by the
    pixel count so its scale matches the AE's mean L1 (Adam is insensitive to that scale; the ratio of the
    two terms is what matters and is Baur's). The anomaly map is the residual of the reconstruction from
    the posterior mean (deterministic, so scores are reproducible). paper and quick settings are the AE's.
    """

    name = "vae"
    Config = VAEConfig
    profiles = {**AUTOENCODER_PROFILES, "tiny": {**AUTOENCODER_PROFILES["tiny"], "kl_weight": 0.1}}
    variational = True

    def _loss(self, net: nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x = batch[0]
        x_hat, mu, logvar = net(x, generator)
        rec = (x_hat - x).abs().flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return (rec + self.config.kl_weight * kl).mean() / x[0].numel()
