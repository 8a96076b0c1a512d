"""Seconds to generate one phantom subject (in memory, one thread): the current generator against the one of an
earlier revision, interleaved in one run so that the machine's load affects both alike. Target: >= 4x.

    python benchmarks/phantom_generation.py                    # against phantom v2 (commit c392993)
    python benchmarks/phantom_generation.py --old-rev HEAD~3 --subjects 0,1,2,3 --repeat 2

The old generator is not kept in the package: its ``phantom.py`` is read from git (``git show REV:...``) into a
temporary module. It imports the rest of the current package (anatomy asset, errors), which did not change.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
OLD_REV = "c392993"  # the last revision with phantom version 2


def module_at(rev: str, folder: Path) -> ModuleType:
    """``uasbench/data/phantom.py`` as it was at ``rev``, imported under another name."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:uasbench/data/phantom.py"], check=True,
                            capture_output=True, text=True).stdout
    path = folder / "phantom_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("phantom_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def timed(generate, index: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; on a shared machine the CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    generate(index, 0)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-rev", default=OLD_REV, help="git revision of the generator to compare with")
    parser.add_argument("--subjects", default="0,1,2,3,4,5", help="subject indices (kinds follow the index)")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repetitions; the best of each counts")
    args = parser.parse_args()
    import torch

    from uasbench.data import phantom

    torch.set_num_threads(1)
    indices = [int(i) for i in args.subjects.split(",")]
    with tempfile.TemporaryDirectory(prefix="uasbench-phantom-bench-") as tmp:
        old = module_at(args.old_rev, Path(tmp))
        print(f"old: phantom v{old.PHANTOM_VERSION} at {args.old_rev}; new: phantom v{phantom.PHANTOM_VERSION}; "
              "one torch thread, seed 0")
        old.generate_subject(0, 0), phantom.generate_subject(0, 0)  # warm-up: imports, anatomy asset
        best: dict[str, dict[int, tuple[float, float]]] = {"old": {}, "new": {}}
        for _ in range(args.repeat):
            for i in indices:
                for name, gen in (("old", old.generate_subject), ("new", phantom.generate_subject)):
                    t = timed(gen, i)
                    best[name][i] = tuple(min(a, b) for a, b in zip(best[name].get(i, t), t))
        kinds = {i: (old.subject_kind(i), phantom.subject_kind(i)) for i in indices}
    print(f"{'subject':>7} {'kind old / new':>37} {'old wall':>9} {'new wall':>9} {'ratio':>6} "
          f"{'old cpu':>8} {'new cpu':>8} {'ratio':>6}")
    for i in indices:
        (ow, oc), (nw, nc) = best["old"][i], best["new"][i]
        print(f"{i:>7} {' / '.join(kinds[i]):>37} {ow:9.2f} {nw:9.2f} {ow / nw:6.2f} {oc:8.2f} {nc:8.2f} {oc / nc:6.2f}")
    mean = {k: [sum(v[j] for v in best[k].values()) / len(indices) for j in (0, 1)] for k in best}
    (ow, oc), (nw, nc) = mean["old"], mean["new"]
    print(f"{'mean':>7} {'':>37} {ow:9.2f} {nw:9.2f} {ow / nw:6.2f} {oc:8.2f} {nc:8.2f} {oc / nc:6.2f}"
          "   (target >= 4)")


if __name__ == "__main__":
    main()
