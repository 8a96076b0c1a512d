"""MMCCD's test-time engine: masked conditional DDIM translation X -> Y for every band mask, back-translation
Y -> X, and the per-pixel average of the cyclic error over the masks covering the pixel (the paper's Eq. 10).

This is where MMCCD's cost lives (R masks x S DDIM steps network passes per slice). ``score_sequential``
runs the masks one after another with the slices batched, as the official code; ``score_batched`` flattens
(slice, mask) pairs into large chunks (``max_batch``), shares the per-step timestep embedding, the initial
noise and the unmasked condition, and runs under bf16 autocast on CUDA. The random numbers are keyed by
(seed, slice, mask), not by the order of computation, so both give the same maps.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, get_args

import numpy as np
import torch
from rich.progress import track

from uasbench.nn.diffusion import Schedule, keyed_generator
from uasbench.nn.training import autocast
from uasbench.nn.unet import UNet

Direction = Literal["vertical", "horizontal"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)


def band_masks(size: int, width: int, stride: int, directions: tuple[str, ...] = DIRECTIONS) -> torch.Tensor:
    """(R, size, size) bool masks, True inside the band (the paper's m_r = 1), in the official order:
    vertical bands (columns) at offsets 0, stride, ... < size, then horizontal ones; bands are truncated at
    the far edge. 128 masks at size 128, width 16, stride 2."""
    unknown = set(directions) - set(DIRECTIONS)
    if unknown or not directions:
        raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}, got {directions}")
    if not (0 < width <= size and stride > 0):
        raise ValueError(f"need 0 < width <= size and stride > 0 (size {size}, width {width}, stride {stride})")
    masks = []
    for direction in directions:
        for start in range(0, size, stride):
            m = torch.zeros(size, size, dtype=torch.bool)
            if direction == "vertical":
                m[:, start:start + width] = True
            else:
                m[start:start + width, :] = True
            masks.append(m)
    return torch.stack(masks)


CPU_PIXELS_PER_CALL = 64 * 32 * 32  # measured on 2 cores: 64 pairs at 32x32 and 2-4 at 128x128 run fastest
GPU_PAIRS_PER_CALL = 256


def default_max_batch(device: torch.device, size: int) -> int:
    """(slice, mask) pairs per network call when the user sets none: large chunks keep a GPU busy, while on a
    CPU calls beyond about 64k pixels get slower per pair (caches), so there the chunk shrinks with the grid."""
    if device.type == "cuda":
        return GPU_PAIRS_PER_CALL
    return max(1, CPU_PIXELS_PER_CALL // (size * size))


def coverage(masks: torch.Tensor) -> torch.Tensor:
    """How many masks cover each pixel (2..16 at the paper's settings)."""
    return masks.sum(dim=0)


@dataclass(frozen=True)
class EngineOptions:
    """Optional speed-ups of the engine, used by default only where ``benchmarks/mmccd_inference.py`` measured
    them faster (``AUTO_ENGINE``); the maps equal the eager fp32 engine's within
    ``tests/test_masked_inference.py``'s tolerance."""

    channels_last: bool = False  # NHWC tensors for the convolutions
    compile: bool = False  # torch.compile of both UNets; its compile time is paid once per engine and shape


ENGINES = {"eager": EngineOptions(), "channels_last": EngineOptions(channels_last=True),
           "compile": EngineOptions(compile=True),
           "compile+channels_last": EngineOptions(channels_last=True, compile=True)}


# The engine ``auto`` picks: eager everywhere. On the shared 2-core CPU (``benchmarks/mmccd_inference.py``, 1
# thread, load swinging by 10x) channels_last ran 1.17x, 1.27x and 0.72x of eager at 32x32 and 0.58x at 128x128,
# and torch.compile 36x faster at 32x32 in its one run after 375 s of compiling: nothing was measured faster
# consistently, and no GPU was measured. Set ``engine`` to use one.
AUTO_ENGINE = "eager"


class FastNet(torch.nn.Module):
    """A UNet behind the engine options: NHWC inputs and weights and/or a compiled forward. ``embed`` (one
    tiny call per DDIM step) stays eager."""

    def __init__(self, net: UNet, options: EngineOptions) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last) if options.channels_last else net
        self.channels_last = options.channels_last
        self.run = torch.compile(self.net) if options.compile else self.net

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        return self.net.embed(t)

    def forward(self, x: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.run(x, **kwargs).contiguous()


@dataclass
class MaskedCycle:
    """f: conditional x0-predicting diffusion UNet on cat(y_t, masked x); g: deterministic UNet Y -> X.

    ``masks`` (R, H, W) bool at the networks' resolution; ``steps`` DDIM steps (eta 0) from pure noise.
    Error per mask: squared cyclic error (x - g(f(x, m_r)))^2, as the official code.
    """

    forward_net: UNet
    backward_net: UNet
    masks: torch.Tensor
    steps: int = 100
    schedule: Schedule = Schedule()
    seed: int = 0
    amp: bool = True
    options: EngineOptions = EngineOptions()

    @cached_property
    def _nets(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(f, g) as the engine runs them: the networks themselves, or behind the engine options."""
        if self.options == EngineOptions():
            return self.forward_net, self.backward_net
        return FastNet(self.forward_net, self.options), FastNet(self.backward_net, self.options)

    @property
    def device(self) -> torch.device:
        return next(self.forward_net.parameters()).device

    @property
    def timesteps(self) -> list[int]:
        return self.schedule.respaced(self.steps)

    def passes_per_slice(self) -> tuple[int, int]:
        """(forward-network passes, backward-network passes) per slice: the FLOP floor's multipliers."""
        return len(self.masks) * len(self.timesteps), len(self.masks)

    def _initial_noise(self, slice_ids: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """y_T per slice, drawn once and shared by all its masks (official)."""
        unique, inverse = slice_ids.unique(return_inverse=True)
        return torch.stack([torch.randn(1, *shape, generator=keyed_generator(self.device, self.seed, int(i)),
                                        device=self.device) for i in unique])[inverse]

    def _band_noise(self, slice_ids: torch.Tensor, mask_ids: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """(B, S, 1, H, W) fresh N(0, 1) fill of the band for every DDIM step of every (slice, mask) pair."""
        n_steps = len(self.timesteps)
        return torch.stack([
            torch.randn(n_steps, 1, *shape, generator=keyed_generator(self.device, self.seed, int(i), int(r) + 1),
                        device=self.device) for i, r in zip(slice_ids, mask_ids)])

    def _errors(self, x: torch.Tensor, slice_ids: torch.Tensor, mask_ids: torch.Tensor) -> torch.Tensor:
        """Squared cyclic errors (B, 1, H, W) of pairs (x[slice_ids[b]], masks[mask_ids[b]])."""
        shape = x.shape[-2:]
        xs = x[slice_ids]
        band = self.masks[mask_ids][:, None]
        noise = self._band_noise(slice_ids, mask_ids, shape)
        forward_net, backward_net = self._nets
        y = self.schedule.ddim_sample(forward_net, self._initial_noise(slice_ids, shape), self.timesteps,
                                      cond=lambda k: torch.where(band, noise[:, k], xs), amp=self.amp)
        with autocast(self.device, self.amp):
            x_back = backward_net(y).float()
        return (x_back - xs) ** 2

    def _run(self, x: np.ndarray | torch.Tensor, pairs: Iterator[tuple[torch.Tensor, torch.Tensor]],
             chunks: int) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        xt = xt[:, None] if xt.dim() == 3 else xt
        if tuple(xt.shape[-2:]) != tuple(self.masks.shape[-2:]):
            raise ValueError(f"slices {tuple(xt.shape[-2:])} and masks {tuple(self.masks.shape[-2:])} differ in size")
        self.masks = self.masks.to(self.device)
        self.forward_net.eval()
        self.backward_net.eval()
        with torch.inference_mode():
            sums = torch.zeros_like(xt)
            # The long phase of MMCCD (hours at the paper's settings): show how far it is.
            for slice_ids, mask_ids in track(pairs, total=chunks, description="masked cycles", transient=True):
                errors = self._errors(xt, slice_ids, mask_ids)
                sums.index_add_(0, slice_ids.to(self.device), errors * self.masks[mask_ids, None])
            # Eq. 10: mean over the masks covering each pixel; 0 where none does (the official NaN -> 0)
            return (sums[:, 0] / coverage(self.masks).clamp_min(1)).cpu().numpy()

    def score_sequential(self, x: np.ndarray | torch.Tensor, *, batch_size: int = 32) -> np.ndarray:
        """Official order: batches of slices, the masks one after another. Returns (N, H, W) float32 maps."""
        def pairs() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for start in range(0, len(x), batch_size):
                ids = torch.arange(start, min(start + batch_size, len(x)))
                for r in range(len(self.masks)):
                    yield ids, torch.full_like(ids, r)
        return self._run(x, pairs(), -(-len(x) // batch_size) * len(self.masks))

    def score_batched(self, x: np.ndarray | torch.Tensor, *, max_batch: int = 256) -> np.ndarray:
        """All (slice, mask) pairs in chunks of ``max_batch`` network inputs. Same maps as the sequential order."""
        n_masks = len(self.masks)

        def pairs() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            flat = torch.arange(len(x) * n_masks)
            for chunk in flat.split(max_batch):
                yield chunk // n_masks, chunk % n_masks
        return self._run(x, pairs(), -(-len(x) * n_masks // max_batch))
