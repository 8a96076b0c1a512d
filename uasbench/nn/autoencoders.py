"""Convolutional auto-encoders with a dense bottleneck, after Baur et al. (MedIA 2021), for the AE and VAE.

Baur's "unified" architecture: stride-2 5x5 convolutions (32, 64, 128, 128, ... filters, batch norm, leaky
ReLU) down to a small grid (8x8 for 128x128 inputs), a 1x1 convolution to 1/8 of the channels, a dense layer
to the latent code (two for the VAE: mean and log-variance), and the mirror image back up with transposed
convolutions and a final 1x1 convolution. One module serves both so the AE and VAE differ only in the
bottleneck sampling and the loss.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _down(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1), nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2)]


class ConvAutoEncoder(nn.Module):
    """Image (B, 1, S, S) -> reconstruction (B, 1, S, S) through a ``latent``-dimensional dense code.

    ``forward`` returns ``(x_hat, mu, logvar)``; ``logvar`` is None for the plain AE. The VAE samples
    ``z = mu + sigma * eps`` in training mode (``eps`` from the given generator, for reproducibility) and
    decodes the mean at test time.
    """

    def __init__(self, size: int = 128, bottleneck_res: int = 8, latent: int = 128, width: int = 32,
                 max_width: int = 128, dropout: float = 0.1, variational: bool = False) -> None:
        super().__init__()
        n_levels = math.log2(size / bottleneck_res) if size >= bottleneck_res else -1.0
        if n_levels < 1 or not n_levels.is_integer():
            raise ValueError(f"image size {size} must be bottleneck_res ({bottleneck_res}) times a power of two")
        enc_widths = [min(max_width, width * 2**i) for i in range(int(n_levels))]
        dec_widths = [max(width, max_width // 2**i) for i in range(int(n_levels))]
        self.variational = variational
        self.encoder = nn.Sequential(*[m for c_in, c_out in zip([1, *enc_widths], enc_widths)
                                       for m in _down(c_in, c_out)])
        squeezed = enc_widths[-1] // 8
        self.squeeze = nn.Conv2d(enc_widths[-1], squeezed, 1)
        flat = squeezed * bottleneck_res**2
        self.to_code = nn.Linear(flat, latent * (2 if variational else 1))
        self.from_code = nn.Linear(latent, flat)
        self.unsqueeze = nn.Sequential(nn.Unflatten(1, (squeezed, bottleneck_res, bottleneck_res)),
                                       nn.Conv2d(squeezed, enc_widths[-1], 1))
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Sequential(
            nn.BatchNorm2d(enc_widths[-1]), nn.ReLU(),
            *[m for c_in, c_out in zip([enc_widths[-1], *dec_widths], dec_widths) for m in _up(c_in, c_out)],
            nn.Conv2d(dec_widths[-1], 1, 1),
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        code = self.dropout(self.to_code(torch.flatten(self.squeeze(self.encoder(x)), 1)))
        mu, logvar = code.chunk(2, dim=1) if self.variational else (code, None)
        z = mu
        if logvar is not None and self.training:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(self.unsqueeze(self.dropout(self.from_code(z)))), mu, logvar
