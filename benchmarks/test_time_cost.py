"""Test-time cost per slice of the diffusion-style methods: UNet passes and seconds, and their ratio to DDPM.

    python benchmarks/test_time_cost.py [--profile quick] [--runs RESULTS_DIR] [--methods ddpm mmccd ...]

Each method scores the embedded phantom's fl-t2 test slices once; a forward hook on every UNet counts
the slices each call processes, so "passes per slice" is (sum of batch sizes of all UNet calls) / slices
(MMCCD's (slice, mask) pairs count as passes of their slice). A method is loaded from its checkpoint in
``--runs`` when a run directory of it exists there (IterMask2's pass count depends on its trained networks);
otherwise it is fitted for ``--iterations`` steps only, since the cost of the other methods does not depend on
their weights. The data are fixed, so the noise level a method would pick on validation is taken as the
first of its grid unless it was loaded.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from uasbench.data.benchmark_data import load_benchmark_data
from uasbench.modalities import Pair
from uasbench.nn.unet import UNet
from uasbench.registry import create_method, get_method
from uasbench.results import CHECKPOINT


def count_passes(method: object) -> list[int]:
    """Attach a hook to every UNet held by ``method``; the returned list grows by the batch size of each call."""
    seen: list[int] = []
    for value in vars(method).values():
        if isinstance(value, UNet):
            value.register_forward_hook(lambda _m, args, _out: seen.append(len(args[0])))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--runs", type=Path, default=None, help="results folder with trained run directories")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["ddpm", "mmccd", "itermask2", "anoddpm", "pddpm"])
    args = parser.parse_args()
    data = load_benchmark_data(None, Pair.parse("fl-t2"), seed=0)
    rows = []
    for name in args.methods:
        found = sorted(args.runs.glob(f"{name}_fl-t2_{args.profile}_s0_*")) if args.runs else []
        if found:
            method, source = get_method(name).load(found[-1] / CHECKPOINT), f"trained ({found[-1].name})"
        else:
            method = create_method(name, args.profile, overrides={"iterations": args.iterations}, seed=0)
            train = data.train if "target" in method.train_modalities else data.train.unlabelled()
            method.fit(train, data.val, val_healthy=data.val_healthy)
            source = f"{args.iterations} training steps"
        seen = count_passes(method)
        start = time.perf_counter()
        method.score(data.test)
        seconds = (time.perf_counter() - start) / len(data.test)
        rows.append((name, sum(seen) / len(data.test), seconds, source))
    base = next((r for r in rows if r[0] == "ddpm"), rows[0])
    print(f"{len(data.test)} test slices, profile {args.profile}, torch threads {torch.get_num_threads()}")
    print(f"{'method':<10} {'passes/slice':>12} {'s/slice':>8} {'x ' + base[0] + ' s':>9}  weights")
    for name, passes, seconds, source in rows:
        print(f"{name:<10} {passes:>12.1f} {seconds:>8.3f} {seconds / base[2]:>9.2f}  {source}")


if __name__ == "__main__":
    main()
