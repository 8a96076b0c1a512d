"""Toy diffusion networks with known answers and a hand-written DDIM loop: references for the samplers."""
from __future__ import annotations

import numpy as np
import torch

# The linear schedule computed here, not by Schedule: the reference the sampler is checked against.
ALPHA_BAR = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))


def toy_x0(y: np.ndarray | torch.Tensor, t: float, cond: np.ndarray | torch.Tensor | None):
    """A prediction that depends on y_t, on t and on the condition, so every step of the loop shows in the result."""
    lib = torch if isinstance(y, torch.Tensor) else np
    out = (0.6 - 0.4 * t / 1000) * y + 0.1 * lib.sin(3 * y)
    return out if cond is None else out + 0.3 * cond


class ToyX0(torch.nn.Module):
    """``toy_x0`` behind the UNet's calling convention (``embed`` once per step, then ``forward(x, emb=...)``
    or ``forward(x, t)``); records the timesteps it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []  # (network input, timestep of each row)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # engines read their device from a parameter

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        self.seen.extend(int(v) for v in t.reshape(-1))
        return t.float().reshape(-1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, *,
                emb: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(t) if emb is None else emb
        steps = emb.reshape(-1, 1, 1, 1).expand(len(x), 1, 1, 1)
        self.calls.append((x.detach().clone(), steps.reshape(-1).clone()))
        return toy_x0(x[:, :1], steps, x[:, 1:] if x.shape[1] == 2 else None)


def hand_ddim(y: np.ndarray, timesteps: list[int], cond=None, path: list | None = None) -> np.ndarray:
    """Deterministic DDIM (eta 0) written out: predict x0, re-derive the noise, step to the NEXT timestep;
    the last step returns the prediction (guided-diffusion). ``path`` collects the y_t of every step."""
    y = y.astype(np.float64)
    for k, t in enumerate(timesteps):
        if path is not None:
            path.append(y)
        x0 = toy_x0(y, t, None if cond is None else cond(k))
        if k + 1 == len(timesteps):
            return x0
        ab, ab_next = ALPHA_BAR[t], ALPHA_BAR[timesteps[k + 1]]
        eps = (y - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
        y = np.sqrt(ab_next) * x0 + np.sqrt(1 - ab_next) * eps
    raise AssertionError("no timesteps")


class ToyBack(torch.nn.Module):
    """A deterministic Y -> X "network" with a known formula (MMCCD's g)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    @staticmethod
    def formula(y):
        lib = torch if isinstance(y, torch.Tensor) else np
        return -0.8 * y + 0.1 * lib.tanh(y)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.formula(y)
