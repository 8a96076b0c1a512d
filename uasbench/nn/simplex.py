"""Multi-octave simplex noise fields in torch, the structured noise of AnoDDPM and pDDPM.

Both official codes draw OpenSimplex fields with numpy/numba on the CPU, one field per call; a DDPM with
250 reverse steps then spends most of its time there. Here every field of a batch is computed at once, on
the device of the generators, with Gustavson's 3-D simplex noise (Perlin's simplex lattice with 12 edge
gradients; its patent expired in 2022): each field is the plane z = const of 3-D noise (AnoDDPM found
2-D octaves to leave directional artefacts) with its own random permutation table and offset, drawn from
the field's generator, so a field depends only on its generator and not on the batch it is computed in.

The fields are statistically like the official ones, not identical to them (different lattice and
kernel): each octave is divided by its measured standard deviation and the fractal sum rescaled so that
the field has the standard deviation ``std`` that the official fields have (AnoDDPM 0.50, pDDPM 0.60; see
docs/methods/anoddpm.md and pddpm.md), since their networks learn that scale of noise.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch

from uasbench.errors import UasbenchError

Noise = Literal["simplex", "gauss"]
NOISES: tuple[str, ...] = get_args(Noise)
_GRADIENTS = ((1, 1, 0), (-1, 1, 0), (1, -1, 0), (-1, -1, 0), (1, 0, 1), (-1, 0, 1), (1, 0, -1), (-1, 0, -1),
              (0, 1, 1), (0, -1, 1), (0, 1, -1), (0, -1, -1))
_OCTAVE_STD = 0.4255  # std of one octave of _simplex3 (200 fields of 128x128 at feature sizes 2, 8, 32, 64 px)


def _simplex3(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """3-D simplex noise at points (B, N) with one permutation table (B, 512) per field; values about [-1, 1]."""
    skew = (x + y + z) / 3.0
    cell = [torch.floor(c + skew) for c in (x, y, z)]
    unskew = (cell[0] + cell[1] + cell[2]) / 6.0
    d0 = [c - (k - unskew) for c, k in zip((x, y, z), cell)]
    # The simplex holding the point: step first along its largest in-cell coordinate, then the second largest.
    ge = lambda a, b: (a >= b).to(x.dtype)  # noqa: E731
    rank = [ge(d0[0], d0[1]) + ge(d0[0], d0[2]), 1 - ge(d0[0], d0[1]) + ge(d0[1], d0[2]),
            2 - ge(d0[0], d0[2]) - ge(d0[1], d0[2])]
    offsets = [[torch.zeros_like(x)] * 3, [(r == 2).to(x.dtype) for r in rank], [(r >= 1).to(x.dtype) for r in rank],
               [torch.ones_like(x)] * 3]
    grads = torch.tensor(_GRADIENTS, dtype=x.dtype, device=x.device)
    base = [c.long() & 255 for c in cell]
    total = torch.zeros_like(x)
    for corner, off in enumerate(offsets):
        d = [dc - o + corner / 6.0 for dc, o in zip(d0, off)]
        falloff = (0.6 - d[0] ** 2 - d[1] ** 2 - d[2] ** 2).clamp(min=0) ** 4
        index = base[2] + off[2].long()
        index = torch.gather(perm, 1, index) + base[1] + off[1].long()
        index = torch.gather(perm, 1, index) + base[0] + off[0].long()
        g = grads[torch.gather(perm, 1, index) % 12]
        total = total + falloff * (g[..., 0] * d[0] + g[..., 1] * d[1] + g[..., 2] * d[2])
    return 32.0 * total


@dataclass(frozen=True)
class SimplexNoise:
    """Fractal simplex noise: octave k has feature size ``frequency`` / 2**k pixels and weight persistence**k
    (the official 6 octaves, persistence 0.8, frequency 64 at 256x256 or 96x96 pixels)."""

    octaves: int = 6
    persistence: float = 0.8
    frequency: float = 64.0
    std: float = 0.5

    def __post_init__(self) -> None:
        if self.octaves < 1 or self.frequency <= 0 or self.persistence <= 0 or self.std <= 0:
            raise UasbenchError(f"simplex noise needs octaves >= 1 and positive persistence, frequency and std, "
                                f"got octaves={self.octaves}, persistence={self.persistence}, "
                                f"frequency={self.frequency}, std={self.std}")

    def fields(self, size: tuple[int, int], generators: Sequence[torch.Generator]) -> torch.Tensor:
        """One (H, W) field per generator, stacked to (B, H, W) on the generators' device."""
        device = generators[0].device
        perm = torch.stack([torch.randperm(256, generator=g, device=device) for g in generators]).repeat(1, 2)
        offset = torch.stack([torch.rand(3, generator=g, device=device) for g in generators]) * 256.0
        rows, cols = torch.meshgrid(torch.arange(size[0], device=device, dtype=torch.float32),
                                    torch.arange(size[1], device=device, dtype=torch.float32), indexing="ij")
        rows, cols = rows.reshape(1, -1), cols.reshape(1, -1)
        total = torch.zeros((len(generators), rows.shape[1]), device=device)
        for k in range(self.octaves):
            scale = self.frequency / 2**k
            x, y = cols / scale + offset[:, :1], rows / scale + offset[:, 1:2]
            z = offset[:, 2:3].expand_as(x)
            total += self.persistence**k * _simplex3(x, y, z, perm)
        weight = np.sqrt(sum(self.persistence ** (2 * k) for k in range(self.octaves)))
        return (total * (self.std / (_OCTAVE_STD * weight))).reshape(len(generators), *size)


def draw_noise(kind: str, shape: tuple[int, ...], generators: torch.Generator | Sequence[torch.Generator],
               simplex: SimplexNoise | None = None) -> torch.Tensor:
    """Noise of ``shape`` (B, C, H, W): Gaussian or simplex (``simplex`` needed then); with one generator per
    sample (a sequence), sample b depends only on generator b, so results do not depend on batching. A simplex
    field is shared by the C channels of its sample."""
    if kind not in NOISES:
        raise UasbenchError(f"invalid noise {kind!r} (valid: {', '.join(NOISES)})")
    gens = [generators] * shape[0] if isinstance(generators, torch.Generator) else list(generators)
    if kind == "gauss":
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device) for g in gens])
    if simplex is None:
        raise UasbenchError("simplex noise needs its SimplexNoise settings")
    return simplex.fields(tuple(shape[-2:]), gens)[:, None].expand(shape).contiguous()


@dataclass
class NoiseOptions:
    """Config fields of the structured noise shared by AnoDDPM and pDDPM (defaults: AnoDDPM at 128x128)."""

    noise: Noise = "simplex"
    simplex_octaves: int = field(default=6, metadata={"min": 1})
    simplex_persistence: float = field(default=0.8, metadata={"above": 0})
    # feature size of the coarsest octave, pixels of the working grid
    simplex_frequency: float = field(default=32.0, metadata={"above": 0})
    simplex_std: float = field(default=0.5, metadata={"above": 0})

    def simplex(self) -> SimplexNoise:
        return SimplexNoise(self.simplex_octaves, self.simplex_persistence, self.simplex_frequency, self.simplex_std)

    def draw(self, shape: tuple[int, ...], generators: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
        return draw_noise(self.noise, shape, generators, self.simplex())
