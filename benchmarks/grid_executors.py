"""Wall time of one small grid run by the serial executor and by ``--executor local --jobs N``, in one run.

    python benchmarks/grid_executors.py [--methods ae dae] [--seeds 0 1] [--jobs 2] [--iterations 300]

Both grids are the same file (embedded phantom, quick profile, fl-t2, ``--iterations`` training steps so the
script takes minutes) run by ``uasbench benchmark`` in a subprocess, each into its own temporary results
folder, one after the other; the slice cache is prepared before either is timed. On a CPU the serial run
gives each job all torch threads, while ``local`` gives each of its N workers a share, so the ratio says how
much running jobs side by side gains over letting one job use every core. The two grids' Dice values differ
slightly: a different thread count reorders floating-point reductions in training (see the README).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def grid_file(folder: Path, methods: list[str], seeds: list[int], iterations: int) -> Path:
    lines = ['[benchmark]', 'data = "phantom"', 'profile = "quick"', f"seeds = {seeds}", 'device = "cpu"',
             'thresholds = ["val_dice"]', "", "[[grid]]", f"methods = {json.dumps(methods)}", 'pairs = ["fl-t2"]']
    for method in methods:
        lines += ["", f"[overrides.{method}]", f"iterations = {iterations}"]
    path = folder / "grid.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed_grid(config: Path, out: Path, extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "uasbench", "benchmark", str(config), "--out", str(out), *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def dice(out: Path) -> dict[str, float]:
    values = {}
    for manifest in sorted(out.glob("*/manifest.json")):
        run = json.loads(manifest.read_text())
        metrics = json.loads((manifest.parent / "metrics.json").read_text())
        values[f"{run['method']} s{run['seed']}"] = metrics["metrics"]["val_dice"]["dice"]["mean"]
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["ae", "dae"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="uasbench-grid-bench-") as tmp:
        folder = Path(tmp)
        config = grid_file(folder, args.methods, args.seeds, args.iterations)
        subprocess.run([sys.executable, "-m", "uasbench", "data", "prepare"], check=True, stdout=subprocess.DEVNULL)
        serial = timed_grid(config, folder / "serial", [])
        local = timed_grid(config, folder / "local", ["--executor", "local", "--jobs", str(args.jobs)])
        jobs = len(args.methods) * len(args.seeds)
        print(f"{jobs} jobs ({', '.join(args.methods)} x seeds {args.seeds}, {args.iterations} iterations), "
              f"{os.cpu_count()} CPU cores")
        print(f"  serial:           {serial:7.1f} s")
        print(f"  local --jobs {args.jobs}:  {local:7.1f} s")
        print(f"  ratio serial/local: {serial / local:.2f}")
        serial_dice, local_dice = dice(folder / "serial"), dice(folder / "local")
        for run in serial_dice:
            print(f"  dice {run:>10}: serial {serial_dice[run]:.4f}  local {local_dice.get(run, float('nan')):.4f}")


if __name__ == "__main__":
    main()
