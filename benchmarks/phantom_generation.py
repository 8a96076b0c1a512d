"""Seconds to generate one phantom subject (in memory, one thread): the current generator against the one of an
earlier revision, interleaved in one run so that the machine's load affects both alike. Target: >= 4x.

    python benchmarks/phantom_generation.py                    # against phantom v2 (commit c392993)
    python benchmarks/phantom_generation.py --old-rev HEAD~3 --subjects 0,1,2,3 --repeat 2
    python benchmarks/phantom_generation.py --first-use      # whole first use of the default data, old vs new

``--first-use`` times what a fresh machine does before its first run can train: ``load_benchmark_data(None,
fl-t2)`` with an empty cache folder, once with the package as it was at ``--old-rev`` (``git archive`` into a
temporary folder) and once as it is, each in its own process on all cores; it prints wall and CPU seconds
(the CPU time of the workers included) and the bytes the cache folder holds afterwards.

The old generator is not kept in the package: its ``phantom.py`` is read from git (``git show REV:...``) into a
temporary module. It imports the rest of the current package (anatomy asset, errors), which did not change.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
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


def first_use(package_parent: Path, cache: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, bytes on disk) of preparing the default data with the package found in ``package_parent``."""
    code = ("from uasbench.data.benchmark_data import load_benchmark_data; from uasbench.modalities import Pair; "
            "load_benchmark_data(None, Pair.parse('fl-t2'), progress=False)")
    env = {**os.environ, "UASBENCH_CACHE_DIR": str(cache), "PYTHONPATH": str(package_parent)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=package_parent)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    return wall, cpu, size


def compare_first_use(rev: str) -> None:
    with tempfile.TemporaryDirectory(prefix="uasbench-first-use-") as tmp:
        old_src = Path(tmp) / "old"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        rows = {name: first_use(src, Path(tmp) / f"cache-{name}") for name, src in (("old", old_src), ("new", REPO))}
    print(f"first use of the default data (generation + slice cache), {os.cpu_count()} cores:")
    for name, (wall, cpu, size) in rows.items():
        print(f"  {name}: {wall:7.1f} s wall {cpu:7.1f} s CPU {size / 1e6:8.1f} MB on disk")
    (ow, oc, osz), (nw, nc, nsz) = rows["old"], rows["new"]
    print(f"  ratio old/new: {ow / nw:.2f} wall, {oc / nc:.2f} CPU, {osz / nsz:.2f} bytes")


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
    parser.add_argument("--first-use", action="store_true", help="time the whole first use of the default data")
    args = parser.parse_args()
    if args.first_use:
        compare_first_use(args.old_rev)
        return
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
        print(f"{i:>7} {' / '.join(kinds[i]):>37} {ow:9.2f} {nw:9.2f} {ow / nw:6.2f} "
              f"{oc:8.2f} {nc:8.2f} {oc / nc:6.2f}")
    mean = {k: [sum(v[j] for v in best[k].values()) / len(indices) for j in (0, 1)] for k in best}
    (ow, oc), (nw, nc) = mean["old"], mean["new"]
    print(f"{'mean':>7} {'':>37} {ow:9.2f} {nw:9.2f} {ow / nw:6.2f} {oc:8.2f} {nc:8.2f} {oc / nc:6.2f}"
          "   (target >= 4)")


if __name__ == "__main__":
    main()
