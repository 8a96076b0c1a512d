"""Auto-encoder baseline (Baur et al., MedIA 2021): a dense-bottleneck convolutional AE, map ``|x - f(x)|``.

The network and the shared reconstruction machinery live in ``uasbench.nn.reconstruction`` (VAE and DAE use
them too); this plugin names the method and its profiles.

Notes on the paper, the official code, every deviation, the profiles and the cost: docs/methods/ae.md.
"""
from __future__ import annotations

from uasbench.nn.reconstruction import AUTOENCODER_PROFILES, AEConfig, DenseAutoEncoderMethod


class AutoEncoder(DenseAutoEncoderMethod):
    """Dense-bottleneck convolutional AE with an L1 reconstruction loss (Baur et al. 2021, ref. 4).

    paper: Baur's architecture at 128x128 (8x8 bottleneck, latent 128, 5x5 kernels, dropout 0.1); Adam
    1e-4 at batch 32 as in the MMCCD paper. Baur trained with early stopping and gives no length for
    BraTS, so we chose 20,000 iterations (about 80 epochs of the ~8,000 healthy training slices).
    quick: 64x64 internal grid (bottleneck 4x4 keeps the paper's 16x reduction), half the filters (16, 32,
    64, 128), batch 16, Adam 1e-3, 1,000 iterations; maps are bilinearly upsampled to the input grid.
    """

    name = "ae"
    Config = AEConfig
    profiles = AUTOENCODER_PROFILES
    variational = False
