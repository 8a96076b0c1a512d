"""Gaussian diffusion maths for x0-predicting models: schedule, forward noising, respacing, DDIM steps.

Own ~50 lines rather than MONAI's ``DDIMScheduler``: the official code's respacing (t = 990, 980, ..., 0)
and its "last step returns the predicted x0" are explicit here, and there is no scheduler state to reset.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from uasbench.errors import UasbenchError
from uasbench.nn.training import autocast
from uasbench.nn.unet import NetOptions


@dataclass(frozen=True)
class Schedule:
    """Linear beta schedule (Ho et al.); ``alpha_bar[t]`` is the cumulative product at integer step t."""

    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    @cached_property
    def alpha_bar(self) -> np.ndarray:
        betas = np.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=np.float64)
        return np.cumprod(1.0 - betas)

    def sample_t(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Uniform training timesteps, drawn with the training loop's generator (reproducible runs)."""
        return torch.randint(self.timesteps, (n,), generator=generator, device=device)

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


@dataclass
class DiffusionOptions(NetOptions):
    """Config fields shared by the diffusion methods (DDPM, MMCCD): the chain and its DDIM respacing."""

    train_timesteps: int = 1000
    ddim_steps: int = field(default=100, metadata={"test_time": True})  # respacing: t = 990, 980, ..., 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.ddim_steps <= self.train_timesteps:
            raise UasbenchError(f"option ddim_steps={self.ddim_steps} must be in 1..{self.train_timesteps}")

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.train_timesteps)
