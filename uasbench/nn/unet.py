"""The ADM UNet (Dhariwal & Nichol 2021) as configured by the MMCCD code, written compactly.

One class serves the diffusion models (with a timestep) and the deterministic translators (``timestep=False``:
no embedding path at all, like the official code's ``timesteps=None``, which never touches its embedding
weights). Differences from guided-diffusion's ``UNetModel``: attention uses torch's fused
``scaled_dot_product_attention`` (same maths as its single-head ``QKVAttentionLegacy``), there is no
class conditioning, fp16 conversion or gradient checkpointing, and a translator has no unused
time-embedding weights (so it has 681,216 parameters fewer than the official g).
MONAI's ``DiffusionModelUNet`` was not used: it always needs a timestep. ``norm="batch"`` swaps every
GroupNorm for BatchNorm, as IterMask2's networks have.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from uasbench.config_check import Invalid
from uasbench.method import MethodConfig
from uasbench.nn.training import TrainSettings


Norm = Literal["group", "batch"]
NORMS: tuple[str, ...] = get_args(Norm)


@dataclass(frozen=True)
class UNetConfig:
    """Architecture knobs; defaults are the official MMCCD network at 128x128."""

    in_channels: int = 1
    out_channels: int = 1
    channels: int = 32
    channel_mult: tuple[int, ...] = (1, 1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_ds: tuple[int, ...] = (4, 8, 16)  # downsampling factors with attention (32, 16, 8 px at 128)
    dropout: float = 0.1
    groups: int = 16
    timestep: bool = True
    norm: Norm = "group"  # "group" (ADM) or "batch" (IterMask2's networks)


def _norm(channels: int, groups: int, kind: str = "group") -> nn.Module:
    """GroupNorm (``groups`` groups, or fewer when they do not divide ``channels``) or BatchNorm."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise, so residual branches and the output start as identity / zero (as in ADM)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (cos first, then sin, as guided-diffusion)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, FiLM (scale-shift) from the time embedding, optional down/upsampling."""

    def __init__(self, cin: int, cout: int, emb_dim: int | None, groups: int, dropout: float,
                 resample: str | None = None, norm: str = "group") -> None:
        super().__init__()
        self.in_norm = nn.Sequential(_norm(cin, groups, norm), nn.SiLU())
        self.in_conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.resample = resample
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * cout)) if emb_dim else None
        self.out_norm = _norm(cout, groups, norm)
        self.out_rest = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), _zero(nn.Conv2d(cout, cout, 3, padding=1)))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def _resample(self, h: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(h, 2)
        if self.resample == "up":
            return F.interpolate(h, scale_factor=2, mode="nearest")
        return h

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.in_conv(self._resample(self.in_norm(x)))
        h = self.out_norm(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(self._resample(x)) + self.out_rest(h)


class Attention(nn.Module):
    """Single-head self-attention over all pixels, zero-initialised output projection."""

    def __init__(self, channels: int, groups: int, norm: str = "group") -> None:
        super().__init__()
        self.norm = _norm(channels, groups, norm)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x).reshape(b, c, h * w)).transpose(1, 2).chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(1, 2)).reshape(b, c, h, w)


class _Stage(nn.ModuleList):
    """A sequence of blocks that all receive the time embedding."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            h = block(h, emb)
        return h


class UNet(nn.Module):
    """``forward(x, t)`` -> (B, out_channels, H, W); H and W must be divisible by 2**(levels-1)."""

    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.channels if c.timestep else None
        self.time_embed = (nn.Sequential(nn.Linear(c.channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
                           if emb_dim else None)

        def res(cin: int, cout: int, resample: str | None = None) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, c.groups, c.dropout, resample, c.norm)

        ch = c.channels * c.channel_mult[0]
        self.stem = nn.Conv2d(c.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ds = [ch], 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                stage = _Stage([res(ch, c.channels * mult)])
                ch = c.channels * mult
                if ds in c.attention_ds:
                    stage.append(Attention(ch, c.groups, c.norm))
                self.down.append(stage)
                skips.append(ch)
            if level < len(c.channel_mult) - 1:
                self.down.append(_Stage([res(ch, ch, "down")]))
                skips.append(ch)
                ds *= 2
        self.middle = _Stage([res(ch, ch), Attention(ch, c.groups, c.norm), res(ch, ch)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                stage = _Stage([res(ch + skips.pop(), c.channels * mult)])
                ch = c.channels * mult
                if ds in c.attention_ds:
                    stage.append(Attention(ch, c.groups, c.norm))
                if level and i == c.num_res_blocks:
                    stage.append(res(ch, ch, "up"))
                    ds //= 2
                self.up.append(stage)
        self.out = nn.Sequential(_norm(ch, c.groups, c.norm), nn.SiLU(),
                                 _zero(nn.Conv2d(ch, c.out_channels, 3, padding=1)))

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        """Time embedding of integer timesteps (B,): computed once per step and shared by a whole batch."""
        if self.time_embed is None:
            raise ValueError("this UNet was built without a timestep (UNetConfig.timestep=False)")
        return self.time_embed(timestep_embedding(t, self.config.channels))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, *,
                emb: torch.Tensor | None = None) -> torch.Tensor:
        if emb is None and t is not None:
            emb = self.embed(t)
        if self.time_embed is not None and emb is None:
            raise ValueError("this UNet needs a timestep")
        if emb is not None and emb.shape[0] == 1 and x.shape[0] != 1:
            emb = emb.expand(x.shape[0], -1)
        h = self.stem(x)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


#: The small network and short training every UNet method's ``quick`` profile shares (minutes on 2 CPU cores).
QUICK_NET: dict[str, Any] = {"resolution": 32, "channels": 8, "channel_mult": (1, 2, 4), "num_res_blocks": 1,
                             "attention_ds": (4,), "groups": 4, "iterations": 300, "lr": 1e-3,
                             "checkpoint_every": 100}
#: The network and training every UNet method's ``tiny`` profile shares: fit + score in seconds on one CPU
#: thread, yet long enough to learn the contract kit's checkerboard lesion (``uasbench.testing``).
TINY_NET: dict[str, Any] = {"resolution": 16, "channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1,
                            "attention_ds": (), "groups": 4, "batch_size": 8, "lr": 3e-3, "iterations": 100,
                            "checkpoint_every": 1000}


@dataclass
class NetOptions(MethodConfig):
    """Config fields shared by the UNet-based methods: the network, its working resolution, its training.

    Defaults are the paper/official settings (full UNet at 128x128, batch 32, 100k Adam steps, lr 1e-4).
    """

    resolution: int = field(default=128, metadata={"min": 1})  # slices are area-resized to this square grid
    channels: int = field(default=32, metadata={"min": 1})
    channel_mult: tuple[int, ...] = field(default=(1, 1, 2, 3, 4), metadata={"min": 1})
    num_res_blocks: int = field(default=2, metadata={"min": 1})
    attention_ds: tuple[int, ...] = field(default=(4, 8, 16), metadata={"min": 1})
    dropout: float = field(default=0.1, metadata={"min": 0, "max": 1})
    groups: int = field(default=16, metadata={"min": 1})
    norm: Norm = "group"  # normalisation layers of the UNet
    iterations: int = field(default=100_000, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})
    lr: float = field(default=1e-4, metadata={"above": 0})
    checkpoint_every: int = field(default=5000, metadata={"min": 1})
    infer_batch: int = field(default=64, metadata={"min": 1, "test_time": True})

    def validate(self) -> None:
        super().validate()
        if not self.channel_mult:
            raise Invalid("channel_mult", "must list at least one level")
        step = 2 ** (len(self.channel_mult) - 1)
        if self.resolution % step:
            raise Invalid("resolution", f"must be divisible by {step} (2 ** (len(channel_mult) - 1))")

    def unet(self, in_channels: int = 1, *, timestep: bool) -> UNet:
        return UNet(UNetConfig(in_channels=in_channels, channels=self.channels, channel_mult=self.channel_mult,
                               num_res_blocks=self.num_res_blocks, attention_ds=self.attention_ds,
                               dropout=self.dropout, groups=self.groups, timestep=timestep, norm=self.norm))

    def restored_unet(self, weights: dict, device: torch.device, in_channels: int = 1, *, timestep: bool) -> UNet:
        """``unet(...)`` with a checkpoint's trained ``weights``, on ``device``, in eval mode."""
        net = self.unet(in_channels, timestep=timestep)
        net.load_state_dict(weights)
        return net.to(device).eval()

    def train_settings(self) -> TrainSettings:
        return TrainSettings(iterations=self.iterations, batch_size=self.batch_size, lr=self.lr,
                             checkpoint_every=self.checkpoint_every)
