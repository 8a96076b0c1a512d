"""IterMask2 (Liang, Guo, Noble, Kamnitsas, MICCAI-MMMI 2024): iterative spatial masks shrunk onto the anomaly.

Two deterministic UNets (no timestep) are trained on healthy slices: f0 maps the high-pass ("frequency
masked") image to the image, g maps the image with random clustered squares filled with N(0, 1) noise, plus
the high-pass image, back to the image. At test time f0 runs once and its 60 % largest-error brain pixels
form the first mask; then g reconstructs the masked area and the mask keeps only the pixels whose error
exceeds tau (the 80th percentile of g's error on masked pixels of HEALTHY validation slices), until the mask
shrinks by less than 1 % per iteration. A healthy pixel is reconstructed well from the visible context and
leaves the mask; a lesion is not and stays. Map: (x - x_hat)^2 inside the brain, x_hat the raw g output of
the last pass. Cost: 1 + K passes per slice, K data-dependent (capped by ``max_iters``).

Follows the official code (notes: docs/methods/itermask2.md):
- Networks: the ADM UNet of MMCCD (base 32, multipliers (1, 1, 2, 3, 4), attention at 32/16/8 px and in the
  middle, dropout 0.1) with BatchNorm, as theirs, and without the unused time-embedding weights.
- High-pass image: the centred 2-D spectrum's magnitude set to 1 (phase kept) inside a disk of radius 15
  frequency pixels at 128x128 (``hp_radius``, scaled with the grid in ``quick``).
- Training masks: their generator (uasbench_methods.itermask2.square_mask: an anisotropic Gaussian cluster of
  4/8/16-px squares on a 240-px grid), drawn directly on the working grid with sides and spreads scaled by
  resolution / 240 instead of drawn at 240 px and area-resized; per sample, from the training generator.
- Training: MSE over the whole image, Adam lr 1e-4 (their AdamW has weight decay 0), batch 32, raw weights;
  90,000 steps: the official test loads the 90k checkpoint of a 150k-step run with a constant learning rate,
  which is the same network.
- tau from ``val_healthy`` (the healthy validation slices: uasbench passes them to ``fit``); with none (a
  plain ``fit(train)``), from the training slices, with a warning (a lower, less conservative tau).
- Iterations: no cap officially; here at most ``max_iters`` g passes, with a warning naming the slices that
  hit it. Noise is keyed by (seed, slice), so a slice's result does not depend on its batch (officially it
  does). The mask only shrinks: the composite error is zero outside the mask.
- Maps are raw. The authors normalise by the test-set minimum and maximum and pick the threshold on the test
  set (an oracle); no median filter, erosion or connected components. ``score_map`` also offers the final
  mask itself (as in their figure) or the error inside it.
- ``quick`` profile: the small UNets of ``QUICK_NET`` (BatchNorm) at 32x32, ``hp_radius`` 4.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from uasbench.data.preprocess import resize, resize_mask
from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod, MethodConfig, NetworkCost
from uasbench.nn.diffusion import keyed_generator
from uasbench.nn.simplex import draw_noise
from uasbench.nn.training import autocast, seed_everything, train_network
from uasbench.nn.translation import translation_loss
from uasbench.nn.unet import QUICK_NET, TINY_NET, NetOptions, Norm, UNet

ScoreMap = Literal["recon_error", "final_mask", "masked_error"]
SCORE_MAPS: tuple[str, ...] = get_args(ScoreMap)


@dataclass
class IterMask2Config(NetOptions):
    norm: Norm = "batch"
    iterations: int = field(default=90_000, metadata={"min": 1})
    # radius (frequency pixels) of the disk whose magnitudes are set to 1
    hp_radius: float = field(default=15.0, metadata={"above": 0})
    # three training squares, pixels of the 240-px grid they are drawn for
    mask_sides: tuple[int, int, int] = field(default=(4, 8, 16), metadata={"min": 1})
    # tau = this quantile of g's squared error on masked healthy validation pixels
    tau_quantile: float = field(default=0.8, metadata={"above": 0, "below": 1})
    # first mask: top f0-error share
    init_fraction: float = field(default=0.6, metadata={"above": 0, "max": 1, "test_time": True})
    # stop when the mask shrinks less
    stop_ratio: float = field(default=0.01, metadata={"min": 0, "below": 1, "test_time": True})
    max_iters: int = field(default=100, metadata={"min": 1, "test_time": True})  # safety cap on g passes per slice
    score_map: ScoreMap = field(default="recon_error", metadata={"test_time": True})


def high_pass(x: torch.Tensor, radius: float) -> torch.Tensor:
    """The image with every centred-spectrum magnitude inside ``radius`` set to 1, phases kept (x_f)."""
    h, w = x.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    rows, cols = torch.meshgrid(torch.arange(h, device=x.device) - h // 2, torch.arange(w, device=x.device) - w // 2,
                                indexing="ij")
    inside = (rows**2 + cols**2).float().sqrt() < radius
    unit = torch.where(spectrum.abs() > 0, spectrum / spectrum.abs().clamp(min=1e-12), torch.ones_like(spectrum))
    spectrum = torch.where(inside, unit, spectrum)
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real.float()


def _cover(corners: np.ndarray, side: int) -> np.ndarray:
    """Pixels covered by side x side squares whose top-left corners are the True pixels of ``corners``."""
    c = np.pad(corners.astype(np.int32), ((side, 0), (side, 0))).cumsum(0).cumsum(1)
    return (c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]) > 0


def square_mask(brain: np.ndarray, rng: np.random.Generator, sides: tuple[int, ...] = (4, 8, 16),
                grid: int = 240) -> np.ndarray:
    """IterMask2's training mask inside ``brain`` (H, W): many small, fewer medium and large squares whose
    corners follow an anisotropic Gaussian around a random brain pixel (two spreads: clustered with 2/3
    probability, wide with 1/3); lengths are scaled from the ``grid``-pixel slices the official code uses."""
    rows, cols = np.nonzero(brain)
    if len(rows) == 0:
        return np.zeros(brain.shape, bool)
    scale = brain.shape[-1] / grid
    c11, c22 = rng.uniform(0.3, 10.0, 2)
    spread = np.sqrt(c11 * c22)
    c12 = rng.choice((-1.0, 1.0)) * rng.uniform(0.0, spread) * 0.999  # keeps the covariance positive definite
    clustered = rng.integers(0, 3) < 2
    unit = (10.0 if clustered else 2.5) * scale  # pixels per unit of the Gaussian
    lo, hi = (100 * spread, 200 * spread) if clustered else (5 * spread, 20 * spread)
    counts = (int(rng.integers(int(lo), max(int(hi), int(lo) + 1))), int(rng.integers(5, 10)), int(rng.integers(3, 10)))
    centre = rng.integers(len(rows))
    dy, dx = (rows - rows[centre]) / unit, (cols - cols[centre]) / unit
    q = (c22 * dy**2 - 2 * c12 * dx * dy + c11 * dx**2) / (c11 * c22 - c12**2)
    p = np.exp(-0.5 * (q - q.min()))
    p /= p.sum()
    total = sum(counts)
    corner_rows, corner_cols = rows[rng.choice(len(rows), total, p=p)], cols[rng.choice(len(rows), total, p=p)]
    mask = np.zeros(brain.shape, bool)
    start = 0
    for count, side in zip(counts, sides):
        corners = np.zeros(brain.shape, bool)
        corners[corner_rows[start:start + count], corner_cols[start:start + count]] = True
        mask |= _cover(corners, max(1, round(side * scale)))
        start += count
    return mask & brain


@dataclass
class MaskedLoss:
    """g's loss: MSE of g(image with random squares filled with N(0, 1), high-pass image) against the image."""

    sides: tuple[int, ...]

    def __call__(self, net: torch.nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x, x_f, brain = batch
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator, device=x.device)))
        masks = np.stack([square_mask(b[0] > 0.5, rng, self.sides) for b in brain.cpu().numpy()])
        m = torch.from_numpy(masks).to(x.device)[:, None].float()
        noised = (1 - m) * x + m * torch.randn(x.shape, generator=generator, device=x.device)
        return F.mse_loss(net(torch.cat([noised, x_f], dim=1)), x)


@dataclass
class Refinement:
    """Result of the iterative masking of a batch: the last raw g output, the final mask (the mask of the
    last pass), the g passes per slice and the mask size before every pass (-1 after a slice stopped)."""

    reconstruction: torch.Tensor
    mask: torch.Tensor
    passes: np.ndarray
    mask_sizes: np.ndarray


class IterMask2(AnomalyMethod):
    name = "itermask2"
    Config = IterMask2Config
    profiles = {"paper": {}, "quick": {**QUICK_NET, "hp_radius": 4.0}, "tiny": {**TINY_NET, "hp_radius": 2.0}}
    config: IterMask2Config

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost]:
        """f0 once per slice; g priced at the ``max_iters`` cap (an upper bound: the number of g passes depends on
        the data, about 7 on the quick phantom). The threshold calibration on healthy validation slices is not
        counted (one f0 pass and a few g passes per healthy slice)."""
        assert isinstance(config, IterMask2Config)
        size, samples = config.resolution, config.iterations * config.batch_size
        return [NetworkCost("f0", lambda: config.unet(timestep=False), (1, size, size), train_samples=samples,
                            passes_per_slice=1),
                NetworkCost("g", lambda: config.unet(in_channels=2, timestep=False), (2, size, size),
                            train_samples=samples, passes_per_slice=config.max_iters)]

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None, *,
             val_healthy: SliceSet | None = None) -> None:
        del val  # the threshold is the benchmark's; tau is calibrated on healthy slices only
        c = self.config
        x, x_f, brain = self._inputs(train)
        seed_everything(self.seed)
        self.f0 = c.unet(timestep=False)
        train_network(self.f0, translation_loss, [x_f, x], c.train_settings(), device=self.device, seed=self.seed,
                      workdir=workdir, name="itermask2_f0")
        seed_everything(self.seed + 1)
        self.g = c.unet(in_channels=2, timestep=False)
        train_network(self.g, MaskedLoss(c.mask_sides), [x, x_f, brain], c.train_settings(), device=self.device,
                      seed=self.seed + 1, workdir=workdir, name="itermask2_g")
        if val_healthy is None or len(val_healthy) == 0:
            warnings.warn("itermask2: no healthy validation slices given; tau is calibrated on the training "
                          "slices", stacklevel=2)
            val_healthy = train
        self.tau = self._calibrate(val_healthy)

    def _inputs(self, slices: SliceSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image, high-pass image and brain mask at the working grid, (N, 1, S, S) float tensors."""
        c = self.config
        x = torch.from_numpy(resize(slices.x, c.resolution))[:, None]
        brain = torch.from_numpy(resize_mask(slices.brain, c.resolution))[:, None].float()
        return x, high_pass(x, c.hp_radius), brain

    @torch.inference_mode()
    def _calibrate(self, healthy: SliceSet) -> float:
        """tau: the ``tau_quantile`` of g's squared error over masked brain pixels of healthy slices (masks and
        noise keyed by (seed, slice))."""
        c = self.config
        x, x_f, brain = self._inputs(healthy)
        errors = []
        for i in range(len(x)):
            m = torch.from_numpy(square_mask(brain[i, 0].numpy() > 0.5, np.random.default_rng([self.seed, i]),
                                             c.mask_sides)).float()
            noise = torch.randn(x[i].shape, generator=keyed_generator(torch.device("cpu"), self.seed, i))
            noised = (1 - m) * x[i] + m * noise
            with autocast(self.device):
                out = self.g(torch.cat([noised, x_f[i]])[None].to(self.device)).float().cpu()[0]
            errors.append(((x[i] - out) ** 2)[m[None] > 0])
        pooled = torch.cat(errors)
        if len(pooled) == 0:
            raise UasbenchError("itermask2: the healthy calibration slices have no brain pixels to mask")
        return float(torch.quantile(pooled.double(), c.tau_quantile))

    @torch.inference_mode()
    def refine(self, x: torch.Tensor, x_f: torch.Tensor, brain: torch.Tensor,
               generators: list[torch.Generator]) -> Refinement:
        """The iterative mask shrinking on a batch (tensors on the device): f0 once, then g until every slice's
        mask shrinks by less than ``stop_ratio`` or ``max_iters`` passes are done."""
        c = self.config
        with autocast(x.device):
            error0 = (x - self.f0(x_f).float()) ** 2 * brain
        mask = torch.zeros_like(brain, dtype=torch.bool)
        for i in range(len(x)):
            inside = error0[i][brain[i] > 0]
            if len(inside):
                mask[i] = (error0[i] > torch.quantile(inside, 1 - c.init_fraction)) & (brain[i] > 0)
        reconstruction, final = torch.zeros_like(x), torch.zeros_like(mask)
        passes, sizes = np.zeros(len(x), int), np.full((len(x), c.max_iters), -1.0)
        active = torch.arange(len(x), device=x.device)
        for step in range(c.max_iters):
            m = mask[active].float()
            noise = draw_noise("gauss", (len(active), *x.shape[1:]), [generators[i] for i in active.tolist()])
            with autocast(x.device):
                out = self.g(torch.cat([(1 - m) * x[active] + m * noise, x_f[active]], dim=1)).float()
            error = (x[active] - (m * out + (1 - m) * x[active])) ** 2  # zero outside the mask
            shrunk = (error > self.tau) & (brain[active] > 0)
            size, new_size = m.sum(dim=(1, 2, 3)), shrunk.sum(dim=(1, 2, 3)).float()
            ratio = torch.where(size > 0, (size - new_size) / size.clamp(min=1), torch.full_like(size, -1.0))
            reconstruction[active], final[active] = out, mask[active]
            idx = active.cpu().numpy()
            passes[idx], sizes[idx, step] = step + 1, size.cpu().numpy()
            go_on = ratio >= c.stop_ratio
            mask[active[go_on]] = shrunk[go_on]
            active = active[go_on]
            if len(active) == 0:
                break
        if len(active):
            warnings.warn(f"itermask2: {len(active)} slice(s) still shrinking after max_iters={c.max_iters} "
                          "g passes; their last mask and reconstruction are used", stacklevel=3)
        return Refinement(reconstruction, final, passes, sizes)

    def _score(self, slices: SliceSet) -> np.ndarray:
        c = self.config
        x, x_f, brain = self._inputs(slices)
        maps = []
        self.f0.eval()
        self.g.eval()
        for ids in torch.arange(len(x)).split(c.infer_batch):
            batch = [t[ids].to(self.device) for t in (x, x_f, brain)]
            result = self.refine(*batch, [keyed_generator(self.device, self.seed, int(i)) for i in ids])
            error = (batch[0] - result.reconstruction) ** 2 * batch[2]
            chosen = {"recon_error": error, "final_mask": result.mask.float(), "masked_error": error * result.mask}
            maps.append(chosen[c.score_map][:, 0].cpu())
        return resize(torch.cat(maps).numpy(), slices.x.shape[-2:], mode="bilinear")

    def get_state(self) -> dict[str, Any]:
        return {"f0": self.f0.state_dict(), "g": self.g.state_dict(), "tau": self.tau}

    def set_state(self, state: dict[str, Any]) -> None:
        self.f0: UNet = self.config.restored_unet(state["f0"], self.device, timestep=False)
        self.g: UNet = self.config.restored_unet(state["g"], self.device, in_channels=2, timestep=False)
        self.tau = float(state["tau"])
