"""Introduce, one at a time, five plausible bugs that once passed the whole suite, and check a test fails for each.

Local check (not part of CI): each bug is a one-line textual change to the source, applied to the working tree,
tested with the test files that should catch it, and reverted (also on Ctrl-C). Prints one line per bug and
exits non-zero if a bug survives or no longer applies (then update its text here).

    nice -n 10 .venv/bin/python scripts/check_known_bugs.py
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    original: str
    broken: str
    tests: tuple[str, ...]


BUGS = (
    Bug("DDIM loop steps to t instead of the next timestep", "uasbench/nn/diffusion.py",
        "timesteps[k + 1] if k + 1 < len(timesteps) else -1", "t if k + 1 < len(timesteps) else -1",
        ("tests/test_diffusion.py", "tests/test_masked_inference.py")),
    Bug("threshold search scores an empty-prediction, empty-truth slice 0", "uasbench/evaluation/thresholds.py",
        "np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 1.0)",
        "np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)",
        ("tests/test_thresholds.py", "tests/test_empty_slices.py")),
    Bug("runner writes its run folder in place instead of staging it", "uasbench/benchmark/run.py",
        "with atomic_directory(final) as staging:",
        "with __import__('contextlib').nullcontext(final.mkdir(parents=True) or final) as staging:",
        ("tests/test_runner.py",)),
    Bug("runner tunes the reportable thresholds on the test slices", "uasbench/benchmark/run.py",
        "evaluate(val_maps=scored.val_maps, val=scored.val,", "evaluate(val_maps=scored.test_maps, val=scored.test,",
        ("tests/test_runner.py",)),
    Bug("single-modality methods receive the target modality", "uasbench/benchmark/run.py",
        'if "target" in method.train_modalities:', "if True:",
        ("tests/test_runner.py",)),
)


def check(bug: Bug) -> str:
    path = ROOT / bug.path
    text = path.read_text()
    if text.count(bug.original) != 1:
        return "DOES NOT APPLY (the source changed: update this script)"
    try:
        path.write_text(text.replace(bug.original, bug.broken))
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *bug.tests],
                             cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(text)
    if run.returncode == 0:
        return "SURVIVES: every selected test passes"
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in run.stdout.splitlines() if line.startswith("FAILED")]
    return f"caught by {', '.join(failed) or 'a test error (see pytest output)'}"


def main() -> int:
    ok = True
    for bug in BUGS:
        verdict = check(bug)
        ok &= verdict.startswith("caught")
        print(f"{bug.name}: {verdict}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
