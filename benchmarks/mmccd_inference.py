"""Seconds per slice of MMCCD's test-time inference: the official per-mask loop versus the batched engine.

Both run on the same machine, slices and (randomly initialised) networks, and must give the same maps.
Default: MMCCD's ``quick`` profile (a small UNet at 32x32, a minute or two on 2 CPU cores); ``--paper``:
its paper profile, the full 128x128 UNet, 128 masks, 100 DDIM steps (for a GPU); single fields can be
overridden (``--resolution 64 --band-width 8``). On CUDA it also prints the achieved TFLOP/s against
the FLOP floor (network passes x FLOP per pass, counted with torch's FlopCounterMode).

    python benchmarks/mmccd_inference.py [--paper] [--slices 4] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from uasbench.nn.masked_inference import MaskedCycle, band_masks, default_max_batch
from uasbench.nn.unet import UNet
from uasbench_methods.mmccd import MMCCD, MMCCDConfig

OVERRIDES = {"resolution": int, "channels": int, "num_res_blocks": int, "band_width": int, "stride": int,
             "ddim_steps": int}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper", action="store_true",
                   help="MMCCD's paper profile (128x128, 128 masks, 100 steps) instead of its quick profile")
    for name, kind in OVERRIDES.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help="override of the profile's value")
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32, help="slices per batch of the sequential loop (official 32)")
    p.add_argument("--max-batch", type=int, default=0,
                   help="(slice, mask) pairs per call of the batched engine (0: the method's default for the device)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args()


def flop_per_pass(net: UNet, channels: int, size: int, device: torch.device, timestep: bool) -> int:
    x = torch.zeros(1, channels, size, size, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x, torch.zeros(1, dtype=torch.long, device=device)) if timestep else net(x)
    return counter.get_total_flops()


def timed(fn: callable, device: torch.device) -> tuple[float, np.ndarray]:  # type: ignore[valid-type]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    c = MMCCD.config_for("paper" if args.paper else "quick", overrides)
    assert isinstance(c, MMCCDConfig)
    torch.manual_seed(0)
    f = c.unet(in_channels=2, timestep=True).to(device).eval()
    g = c.unet(timestep=False).to(device).eval()
    engine = MaskedCycle(f, g, band_masks(c.resolution, c.band_width, c.stride, c.directions), steps=c.ddim_steps)
    x = np.random.default_rng(0).normal(size=(args.slices, c.resolution, c.resolution)).astype(np.float32)
    max_batch = args.max_batch or default_max_batch(device, c.resolution)

    engine.score_batched(x[:1], max_batch=max_batch)  # warm-up (allocator, kernels)
    t_seq, seq = timed(lambda: engine.score_sequential(x, batch_size=args.batch_size), device)
    t_bat, bat = timed(lambda: engine.score_batched(x, max_batch=max_batch), device)

    f_passes, g_passes = engine.passes_per_slice()
    floor = (f_passes * flop_per_pass(f, 2, c.resolution, device, True)
             + g_passes * flop_per_pass(g, 1, c.resolution, device, False))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where}), "
          f"{args.slices} slices at {c.resolution}x{c.resolution}, {len(engine.masks)} masks, {c.ddim_steps} steps, "
          f"UNet {sum(p.numel() for p in f.parameters()) / 1e6:.2f} M parameters")
    print(f"network passes per slice: {f_passes} (f) + {g_passes} (g); FLOP floor {floor / 1e12:.4f} TFLOP per slice")
    print(f"sequential (per-mask loop, {args.batch_size} slices per batch): {t_seq / args.slices:.3f} s per slice")
    print(f"batched (max_batch {max_batch}): {t_bat / args.slices:.3f} s per slice")
    print(f"speed-up: {t_seq / t_bat:.2f}x; max |difference| of the maps: {np.abs(seq - bat).max():.2e}")
    for label, seconds in (("sequential", t_seq), ("batched", t_bat)):
        print(f"achieved {label}: {floor * args.slices / seconds / 1e12:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
