"""MMCCD's accuracy-compute frontier: from one trained run, sweep the test-time settings on the validation split.

For every combination of DDIM steps x mask stride x band directions x test band width, the run's networks
(its checkpoint, no training) score the validation slices; the script prints per setting the Dice at the
Dice-optimal validation threshold (the benchmark's headline threshold, chosen and measured on validation, so
equally optimistic for every setting), the pooled pixel AUPRC, the network passes per slice (f + g) and the
seconds per slice, then the Pareto frontier (no other setting has fewer passes and a higher Dice), the
cheapest settings whose Dice is within 0.01, or within the reference's bootstrap 95% CI (over validation
subjects), of the reference (the run's own settings unless ``--reference`` names another), and those with
at least 20x fewer passes within 0.01.
Settings whose bands leave pixels uncovered (band width < stride) are skipped: those pixels would score 0.

    python benchmarks/mmccd_frontier.py RUN_DIR [--steps 10,5,3,2,1] [--strides 2,4,8] [--band-widths 0,8]
        [--directions both,vertical] [--slices N] [--threads T]
"""
from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from uasbench.benchmark.rescore import load_for_rescore, rescored_config
from uasbench.data.slices import SliceSet
from uasbench.evaluation.metrics import overlap, pooled_ranking_metrics, segment, subject_means, summarize
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess
from uasbench.evaluation.thresholds import dice_optimal
from uasbench.nn.masked_inference import DIRECTIONS
from uasbench_methods.mmccd import MMCCD

DIRECTION_SETS = {"both": DIRECTIONS, "vertical": ("vertical",), "horizontal": ("horizontal",)}


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a finished MMCCD run directory (its checkpoint is reused)")
    p.add_argument("--steps", type=ints, default=ints("100,50,20,10,5,3,2,1"), help="DDIM steps (<= T)")
    p.add_argument("--strides", type=ints, default=ints("2,4,8,16,32"), help="test mask strides (< resolution)")
    p.add_argument("--band-widths", type=ints, default=ints("0"),
                   help="test band widths (0: the trained band width)")
    p.add_argument("--directions", default="both,vertical", help=f"comma list of {', '.join(DIRECTION_SETS)}")
    p.add_argument("--max-passes", type=int, default=0, help="skip settings costing more passes per slice (0: none)")
    p.add_argument("--reference", default="", help="reference setting as steps:stride:width:directions "
                                                    "(default: the run's own settings)")
    p.add_argument("--slices", type=int, default=0, help="score only the first N validation slices (0: all)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args()


@dataclass(frozen=True)
class Setting:
    steps: int
    stride: int
    band_width: int
    directions: str

    def changes(self) -> dict[str, object]:
        return {"ddim_steps": self.steps, "stride": self.stride, "test_band_width": self.band_width,
                "directions": list(DIRECTION_SETS[self.directions])}

    def label(self) -> str:
        return f"{self.steps}:{self.stride}:{self.band_width}:{self.directions}"


@dataclass(frozen=True)
class Row:
    setting: Setting
    passes: int
    seconds: float
    dice: float
    ci: tuple[float, float]
    auprc: float


def measure(method: MMCCD, setting: Setting, val: SliceSet, post: PostProcess, seed: int) -> Row:
    """Score ``val`` with the method's current config (``setting``) and evaluate it as the benchmark's
    headline threshold does."""
    f_passes, g_passes = method.engine().passes_per_slice()
    start = time.perf_counter()
    maps = method.score(val)
    seconds = (time.perf_counter() - start) / len(val)
    maps, mask = apply_postprocess(maps, val.brain, post)
    assert val.seg is not None
    threshold = dice_optimal(maps, val.seg, mask, name="val_dice", source="val")
    assert threshold.value is not None, threshold.reason
    values, _ = overlap(segment(maps, mask, threshold.value), val.seg & mask)
    _, per_subject = subject_means(values["dice"], val.subjects)
    summary = summarize(per_subject, 1000, seed)
    return Row(setting, f_passes + g_passes, seconds, summary.mean, (summary.ci_low, summary.ci_high),
               pooled_ranking_metrics(maps, val.seg, mask)["auprc_pooled"])


def pareto(rows: list[Row]) -> list[Row]:
    """Settings that no other setting beats on both cost (fewer passes) and Dice (not lower)."""
    best, frontier = -np.inf, []
    for row in sorted(rows, key=lambda r: (r.passes, -r.dice)):
        if row.dice > best:
            frontier.append(row)
            best = row.dice
    return frontier


def table(title: str, rows: list[Row], full: Row) -> str:
    lines = [f"\n{title}", "| steps | stride | band width | directions | passes/slice | passes vs reference "
             "| s/slice | val Dice [95% CI] | val AUPRC |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r.setting
        lines.append(f"| {s.steps} | {s.stride} | {s.band_width} | {s.directions} | {r.passes} | "
                     f"1/{full.passes / r.passes:.1f} | {r.seconds:.3f} | {r.dice:.3f} "
                     f"[{r.ci[0]:.3f}, {r.ci[1]:.3f}] | {r.auprc:.3f} |")
    return "\n".join(lines)


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    manifest, method, parent = load_for_rescore(args.run_dir, {}, args.device)
    if not isinstance(method, MMCCD):
        raise SystemExit(f"error: {args.run_dir} is a {manifest['method']} run; this sweep is for mmccd")
    c = method.config
    val = parent.val if not args.slices else parent.val.subset(np.arange(min(args.slices, len(parent.val))))
    own = Setting(c.ddim_steps, c.stride, c.test_band_width or c.band_width,
                  next(k for k, v in DIRECTION_SETS.items() if v == tuple(c.directions)))
    if args.reference:
        steps, stride, width, directions = args.reference.split(":")
        own = Setting(int(steps), int(stride), int(width) or c.band_width, directions)
    widths = sorted({w or c.band_width for w in args.band_widths})
    grid = {Setting(n, s, w, d) for n, s, w, d in itertools.product(
        [n for n in args.steps if n <= c.train_timesteps], [s for s in args.strides if s < c.resolution],
        widths, args.directions.split(",")) if w >= s} | {own}
    post = PostProcess.from_dict(manifest["postprocess"])
    print(f"run {args.run_dir.name}: {c.resolution}x{c.resolution}, trained band width {c.band_width}, "
          f"{len(val)} validation slices ({len(parent.val)} in the split), device {method.device} "
          f"({torch.get_num_threads()} threads)")
    rows = []
    for setting in sorted(grid, key=lambda s: (s.steps, -s.stride, s.band_width, s.directions)):
        method.config = rescored_config(manifest, setting.changes())
        if args.max_passes and setting != own and sum(method.engine().passes_per_slice()) > args.max_passes:
            continue
        rows.append(measure(method, setting, val, post, manifest["seed"]))
        r = rows[-1]
        print(f"  {setting.label():>22}: {r.passes:6d} passes, {r.seconds:7.3f} s/slice, Dice {r.dice:.3f}, "
              f"AUPRC {r.auprc:.3f}", flush=True)
    full = next(r for r in rows if r.setting == own)
    print(table(f"All settings (reference {own.label()}: steps:stride:band width:directions)",
                sorted(rows, key=lambda r: -r.passes), full))
    print(table("Pareto frontier (fewer passes, higher validation Dice)", pareto(rows)[::-1], full))
    for criterion, keep in (("within 0.01 of", lambda r: r.dice >= full.dice - 0.01),
                            ("within the bootstrap 95% CI of", lambda r: r.dice >= full.ci[0])):
        r = min((r for r in rows if keep(r)), key=lambda r: (r.passes, -r.dice))
        print(f"cheapest setting {criterion} the reference Dice {full.dice:.3f}: {r.setting.label()} (Dice "
              f"{r.dice:.3f}, {r.passes} passes per slice, {full.passes / r.passes:.1f}x fewer than {full.passes})")
    strict = [r for r in rows if r.dice >= full.dice - 0.01 and full.passes >= 20 * r.passes]
    print(">= 20x fewer passes and Dice within 0.01, best Dice first: "
          + (", ".join(f"{r.setting.label()} ({r.dice:.3f})" for r in sorted(strict, key=lambda r: -r.dice))
             or "none"))

if __name__ == "__main__":
    main()
