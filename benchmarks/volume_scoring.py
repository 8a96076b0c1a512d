"""Scoring whole volumes vs today's slab batches: slices per second per method, measured side by side.

    python benchmarks/volume_scoring.py [--profile tiny] [--methods intensity ae dae ...] [--repeats 2]

The cross-dataset protocol scores every brain slice of a volume with ONE ``method.score`` call on the whole
stack (the method batches it as it likes); the within-dataset protocol scores 20-slice slabs. This script
writes two phantom subjects in the BraTS layout and one in the IXI layout into a temporary folder, fits each
method briefly (``--iterations``; speed does not depend on the weights, except IterMask2's mask search),
then times, for the same test volume's brain slices and in the same process, (a) one call on the whole
stack and (b) the sum of calls on consecutive 20-slice chunks (the protocol's slab size). It prints slices
per second of both and their time ratio (whole / chunks); the target is at most 1.2 for every method.
Each timing is the best of ``--repeats`` (the machine may be shared).
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from uasbench.data.benchmark_data import Source, load_cross_dataset
from uasbench.data.phantom_layouts import write_phantom_in_layout
from uasbench.data.preprocess import Preparation
from uasbench.modalities import Pair
from uasbench.registry import create_method, get_method, method_infos

SLAB = 20  # the within-dataset protocol's slices per subject (z 70..89)


def best_time(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=sorted(method_infos()))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_phantom_in_layout(root / "ixi", 1, layout="ixi", progress=False)
        write_phantom_in_layout(root / "brats", 3, seed=1, layout="brats2021", progress=False)
        data = load_cross_dataset([Source(root / "ixi")], [Source(root / "brats")], Pair.parse("t2-t1"),
                                  protocol=Preparation(slices="brain"), progress=False)
    test = data.tests[0].test
    subject = test.subjects[0]
    volume = test.subset(np.flatnonzero(np.asarray(test.subjects) == subject))
    chunks = [volume.subset(np.arange(i, min(i + SLAB, len(volume)))) for i in range(0, len(volume), SLAB)]
    val, healthy, _ = data.tests[0].slice_sets()
    print(f"one volume, {len(volume)} brain slices ({len(chunks)} chunks of <= {SLAB}), profile {args.profile}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"{'method':<12} {'whole slices/s':>14} {'chunks slices/s':>15} {'ratio':>6}")
    worst = 0.0
    for name in args.methods:
        fields = {f.name for f in dataclasses.fields(get_method(name).Config)}
        overrides = {"iterations": args.iterations} if "iterations" in fields else {}
        method = create_method(name, args.profile, overrides=overrides, seed=0)
        train = data.train if "target" in method.train_modalities else data.train.unlabelled()
        method.fit(train, val, val_healthy=healthy)
        method.score(chunks[0])  # warm-up (lazy allocations, first-call overheads)
        whole = best_time(lambda: method.score(volume), args.repeats)
        parts = best_time(lambda: [method.score(c) for c in chunks], args.repeats)
        worst = max(worst, whole / parts)
        print(f"{name:<12} {len(volume) / whole:>14.1f} {len(volume) / parts:>15.1f} {whole / parts:>6.2f}")
    print(f"worst ratio {worst:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
