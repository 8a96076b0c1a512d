"""Diffusion maths: schedules (linear, cosine), forward noising, x0- and epsilon-prediction losses, DDIM steps
for x0-predicting models and ancestral (DDPM posterior) steps for epsilon-predicting ones.

Own code rather than MONAI's schedulers: the official codes' respacing (t = 990, 980, ..., 0), "last step
returns the predicted x0", x0 clamping and non-Gaussian (simplex) noise in every step are explicit here, and
there is no scheduler state to reset.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from uasbench.config_check import Invalid
from uasbench.nn.training import autocast
from uasbench.nn.unet import NetOptions


BetaSchedule = Literal["linear", "cosine"]
BETA_SCHEDULES: tuple[str, ...] = get_args(BetaSchedule)
NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]  # shape -> a noise tensor (Gaussian, simplex, ...)


@dataclass(frozen=True)
class Schedule:
    """A beta schedule: ``linear`` (Ho et al.: beta_start..beta_end) or ``cosine`` (Nichol & Dhariwal 2021:
    s = 0.008, betas clipped at 0.999, as pDDPM); ``alpha_bar[t]`` is the cumulative product at integer step t."""

    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    kind: str = "linear"

    @cached_property
    def betas(self) -> np.ndarray:
        if self.kind == "cosine":
            f = np.cos((np.arange(self.timesteps + 1, dtype=np.float64) / self.timesteps + 0.008) / 1.008
                       * np.pi / 2) ** 2
            return np.minimum(1.0 - f[1:] / f[:-1], 0.999)
        if self.kind == "linear":
            return np.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=np.float64)
        raise ValueError(f"unknown beta schedule {self.kind!r} (valid: {', '.join(BETA_SCHEDULES)})")

    @cached_property
    def alpha_bar(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    def sample_t(self, n: int, generator: torch.Generator, device: torch.device, high: int | None = None
                 ) -> torch.Tensor:
        """Uniform training timesteps in 0..high-1 (default: the whole chain), drawn with the training loop's
        generator (reproducible runs)."""
        return torch.randint(high or self.timesteps, (n,), generator=generator, device=device)

    def q_sample(self, y0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """y_t = sqrt(abar_t) y0 + sqrt(1 - abar_t) noise (Eq. 3; the paper's Alg. 1 drops the sqrt)."""
        ab = torch.as_tensor(self.alpha_bar, device=y0.device)[t].float().view(-1, *([1] * (y0.dim() - 1)))
        return ab.sqrt() * y0 + (1 - ab).sqrt() * noise

    def respaced(self, steps: int, start: int | None = None) -> list[int]:
        """Exactly ``steps`` timesteps in descending order, optionally keeping only those <= ``start`` (partial
        denoising from an intermediate noise level).

        guided-diffusion's ``space_timesteps`` rule (used by the official MMCCD code): ``range(0, T, stride)``
        for the smallest integer stride giving exactly ``steps`` values (990, ..., 0 for 100 of 1000; stride
        34 for 30); when no integer stride does (64 or 300 of 1000), the fractional stride T / steps,
        rounded down: ``floor(k * T / steps)`` for k < steps, which equals the integer rule whenever
        ``steps`` divides T.
        """
        T = self.timesteps
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in 1..{T}, got {steps}")
        stride = next((s for s in range(1, T + 1) if -(-T // s) == steps), None)
        ts = list(range(0, T, stride)) if stride else [k * T // steps for k in range(steps)]
        return [t for t in ts[::-1] if start is None or t <= start]

    def ddim_step(self, y_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """One deterministic DDIM step (eta = 0) from t to t_prev given the predicted x0; t_prev < 0 returns
        x0 itself, as guided-diffusion's last step does. The noise is re-derived from x0 as in ``ddim_sample``."""
        if t_prev < 0:
            return x0
        ab, ab_prev = self.alpha_bar[t], self.alpha_bar[t_prev]
        eps = (y_t - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
        return np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev) * eps

    def x0_loss(self, net: torch.nn.Module, y0: torch.Tensor, generator: torch.Generator,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss of an x0-predicting model (the paper's Eq. 6/9): MSE between f(y_t [, cond], t) and y0
        at a uniform t, over the whole image (as the official code, background included)."""
        t = self.sample_t(len(y0), generator, y0.device)
        y_t = self.q_sample(y0, t, torch.randn(y0.shape, generator=generator, device=y0.device))
        return F.mse_loss(net(y_t if cond is None else torch.cat([y_t, cond], dim=1), t), y0)

    def eps_loss(self, net: torch.nn.Module, x0: torch.Tensor, generator: torch.Generator, noise: NoiseFn,
                 t_max: int | None = None) -> torch.Tensor:
        """Training loss of an epsilon-predicting model (Ho et al.): MSE between net(x_t, t) and the noise that
        made x_t, t uniform in 0..t_max-1 (AnoDDPM trains below t = 800); ``noise`` may be non-Gaussian."""
        t = self.sample_t(len(x0), generator, x0.device, t_max)
        eps = noise(tuple(x0.shape))
        return F.mse_loss(net(self.q_sample(x0, t, eps), t), eps)

    def x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """Invert q_sample for x0 given the predicted noise at step t."""
        ab = self.alpha_bar[t]
        return (x_t - np.sqrt(1 - ab) * eps) / np.sqrt(ab)

    def ancestral_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """One DDPM step t -> t-1: the mean of the posterior q(x_{t-1} | x_t, x0) plus sqrt(beta_t) ``noise``
        (the "fixed large" variance of Ho et al. and AnoDDPM); no noise at t = 0, whose mean is x0 itself."""
        ab, ab_prev, beta = self.alpha_bar[t], (self.alpha_bar[t - 1] if t else 1.0), self.betas[t]
        mean = (beta * np.sqrt(ab_prev) * x0 + (1 - ab_prev) * np.sqrt(1 - beta) * x_t) / (1 - ab)
        return mean + np.sqrt(beta) * noise if t else mean

    def ancestral_sample(self, net: torch.nn.Module, x_t: torch.Tensor, start: int, noise: NoiseFn, *,
                         clamp: tuple[float, float] | None = None, amp: bool = True) -> torch.Tensor:
        """Denoise ``x_t`` (at step ``start``) with start + 1 epsilon-model passes down to x0; the predicted x0 of
        each step is clamped to ``clamp`` (AnoDDPM's [-1, 1]) and every step draws fresh ``noise``."""
        for t in range(start, -1, -1):
            with autocast(x_t.device, amp):
                eps = net(x_t, emb=net.embed(torch.tensor([t], device=x_t.device))).float()
            x0 = self.x0_from_eps(x_t, eps, t)
            if clamp is not None:
                x0 = x0.clamp(*clamp)
            x_t = self.ancestral_step(x_t, x0, t, noise(tuple(x_t.shape)) if t else torch.zeros(()))
        return x_t

    def ddim_sample(self, net: torch.nn.Module, y: torch.Tensor, timesteps: list[int], *,
                    cond: Callable[[int], torch.Tensor] | None = None, amp: bool = True) -> torch.Tensor:
        """Deterministic DDIM through the descending ``timesteps`` starting from ``y`` at ``timesteps[0]``; returns
        the last predicted x0. ``cond(k)`` is the condition channel at step k (concatenated to y). The time
        embedding of a step is computed once and shared by the whole batch."""
        for k, t in enumerate(timesteps):
            with autocast(y.device, amp):
                emb = net.embed(torch.tensor([t], device=y.device))
                inp = y if cond is None else torch.cat([y, cond(k)], dim=1)
                x0 = net(inp, emb=emb).float()
            y = self.ddim_step(y, x0, t, timesteps[k + 1] if k + 1 < len(timesteps) else -1)
        return y


def keyed_generator(device: torch.device, *key: int) -> torch.Generator:
    """A generator seeded from a key such as (seed, slice, mask), so that a draw depends on what it is
    for and not on the order or batching of the computation."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(seed)


@torch.inference_mode()
def map_keyed(fn: Callable[[torch.Tensor, list[torch.Generator]], torch.Tensor], x: np.ndarray, *, batch_size: int,
              device: torch.device, seed: int) -> np.ndarray:
    """``fn(chunk, generators)`` over (N, S, S) slices in chunks of ``batch_size`` on ``device``, with one generator
    per slice keyed by (seed, slice index), so a slice's result does not depend on the chunking; (N, S, S) out."""
    inputs, outputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1), []
    for ids in torch.arange(len(inputs)).split(batch_size):
        generators = [keyed_generator(device, seed, int(i)) for i in ids]
        outputs.append(fn(inputs[ids].to(device), generators)[:, 0].float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros(x.shape, np.float32)


@dataclass
class ChainOptions(NetOptions):
    """Config fields shared by every diffusion method: the length and beta schedule of the chain."""

    train_timesteps: int = field(default=1000, metadata={"min": 1})
    beta_schedule: BetaSchedule = "linear"

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.train_timesteps, kind=self.beta_schedule)


@dataclass
class DiffusionOptions(ChainOptions):
    """Config fields shared by the DDIM methods (DDPM, MMCCD): the chain and its DDIM respacing."""

    ddim_steps: int = field(default=100, metadata={"min": 1, "test_time": True})  # respacing: t = 990, 980, ..., 0

    def validate(self) -> None:
        super().validate()
        if self.ddim_steps > self.train_timesteps:
            raise Invalid("ddim_steps", f"must be in 1..{self.train_timesteps} (train_timesteps)")


@dataclass(frozen=True)
class SignedScale:
    """Affine map of slice intensities to about [-1, 1], the range AnoDDPM and pDDPM networks work in (and
    AnoDDPM clamps its x0 predictions to): the training minimum (background) goes to -1 and the 99th
    percentile of training brain intensities to +1. Nothing is clipped, so a hyper-intense lesion stays
    above 1 where the clamped reconstruction cannot follow it."""

    lo: float
    hi: float

    @classmethod
    def fit(cls, x: np.ndarray, brain: np.ndarray, upper: float = 99.0) -> "SignedScale":
        inside = x[brain] if brain.any() else x.ravel()
        lo, hi = float(x.min()), float(np.percentile(inside, upper))
        return cls(lo, hi if hi > lo else lo + 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0).astype(np.float32)
