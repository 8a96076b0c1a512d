"""Seconds per slice of MMCCD's test-time inference: the official per-mask loop, the batched engine and its
speed-ups (channels_last, torch.compile, chunk sizes), measured side by side in one run.

All run on the same machine, slices and (randomly initialised) networks; the table gives each engine's
ratio to the sequential loop and to the eager batched engine, the largest map difference from the eager
engine, and the first call's time (where torch.compile compiles).
Default: MMCCD's ``quick`` profile (a small UNet at 32x32, a minute or two on 2 CPU cores); ``--paper``:
its paper profile, the full 128x128 UNet, 128 masks, 100 DDIM steps (for a GPU); single fields can be
overridden (``--resolution 64 --band-width 8``). On CUDA it also prints the achieved TFLOP/s against
the FLOP floor (network passes x FLOP per pass, counted with torch's FlopCounterMode).

    python benchmarks/mmccd_inference.py [--paper] [--slices 4] [--threads 1] [--device cpu] [--chunks 16,256]
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from uasbench.nn.masked_inference import EngineOptions, MaskedCycle, default_max_batch
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
    p.add_argument("--chunks", type=lambda t: [int(v) for v in t.split(",") if v], default=[],
                   help="also time the eager batched engine at these max_batch values, e.g. 16,64,256")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
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
    randomise_zero_layers(f, g)
    masks = c.test_masks()
    engine = MaskedCycle(f, g, masks, steps=c.ddim_steps)
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
          f"{args.slices} slices at {c.resolution}x{c.resolution}, {len(masks)} masks, {c.ddim_steps} steps, "
          f"UNet {sum(p.numel() for p in f.parameters()) / 1e6:.2f} M parameters")
    print(f"network passes per slice: {f_passes} (f) + {g_passes} (g); FLOP floor {floor / 1e12:.4f} TFLOP per slice")
    rows = [("sequential (per-mask loop, official order)", t_seq, seq, 0.0),
            (f"batched, eager (max_batch {max_batch})", t_bat, bat, 0.0)]
    for label, options in (("channels_last", EngineOptions(channels_last=True)),
                           ("torch.compile", EngineOptions(compile=True)),
                           ("torch.compile + channels_last", EngineOptions(channels_last=True, compile=True))):
        if options.compile and args.no_compile:
            continue
        fast = MaskedCycle(copy.deepcopy(f), copy.deepcopy(g), masks, steps=c.ddim_steps, options=options)
        t_warm, _ = timed(lambda: fast.score_batched(x[:1], max_batch=max_batch), device)  # compiles here
        t_new, new = timed(lambda: fast.score_batched(x, max_batch=max_batch), device)
        rows.append((f"batched, {label}", t_new, new, t_warm))
    for chunk in args.chunks:
        t_chunk, maps = timed(lambda: engine.score_batched(x, max_batch=chunk), device)
        rows.append((f"batched, eager, max_batch {chunk}", t_chunk, maps, 0.0))

    print("| engine | s/slice | vs sequential | vs batched eager | max abs diff vs eager | first call (compile) s |"
          + (" TFLOP/s |" if device.type == "cuda" else ""))
    print("|---|---|---|---|---|---|" + ("---|" if device.type == "cuda" else ""))
    for label, seconds, maps, warm in rows:
        tflops = f" {floor * args.slices / seconds / 1e12:.3f} |" if device.type == "cuda" else ""
        print(f"| {label} | {seconds / args.slices:.3f} | {t_seq / seconds:.2f}x | {t_bat / seconds:.2f}x | "
              f"{np.abs(maps - bat).max():.1e} | {warm:.1f} |{tflops}")


def randomise_zero_layers(*nets: UNet) -> None:
    """ADM zero-initialises its output and residual convolutions, so a fresh UNet is the identity; give them
    small random weights so that the timing and map comparison exercise a network that computes something."""
    with torch.no_grad():
        for net in nets:
            for p in net.parameters():
                if not p.any():
                    p.normal_(0, 0.02)


if __name__ == "__main__":
    main()
