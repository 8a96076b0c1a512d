"""The README's set-up lines, parsed from README.md so that CI checks exactly what a reader copies.

Usage:
    python scripts/readme_setup.py                 print the lines
    python scripts/readme_setup.py --run-in-clone  run each, as written, in a fresh clone of this repository's
                                                   HEAD, alone in a new temporary folder

The lines are the ```bash blocks under the "Set-up" heading; there must be exactly two (install and run
the main job; install and run the tests). Each runs with `bash -e` in the clone's root, with no virtual
environment active and no PYTHONPATH, so it creates its own `.venv` as a new user's would. The slice cache
goes to a fresh temporary folder (UASBENCH_CACHE_DIR) outside the clone; everything else in the
environment is passed on (CI sets UASBENCH_SHARED_DATA and UASBENCH_REQUIRE_SHARED_DATA there).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADING = re.compile(r"^(#{1,6}) Set-up\b")
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def setup_lines(readme: str) -> list[str]:
    """The contents of the ```bash blocks between the "Set-up" heading (any level) and the next heading of
    the same or a higher level."""
    lines = readme.splitlines(keepends=True)
    found = next(((i, m) for i, line in enumerate(lines) if (m := HEADING.match(line))), None)
    if found is None:
        raise ValueError("the README has no 'Set-up' heading")
    start, match = found
    level = len(match.group(1))
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        fenced ^= lines[i].startswith("```")  # a '#' line inside a code block is a comment, not a heading
        if not fenced and re.match(rf"^#{{1,{level}}} ", lines[i]):
            end = i
            break
    return [block.strip() for block in BLOCK.findall("".join(lines[start + 1:end]))]


def _clean_environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    venv = env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    if venv:
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                      if Path(p).resolve() != (Path(venv) / "bin").resolve())
    env["UASBENCH_CACHE_DIR"] = str(cache)
    return env


def run_in_clone(lines: list[str]) -> None:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="uasbench-readme-") as tmp, \
            tempfile.TemporaryDirectory(prefix="uasbench-readme-cache-") as cache:
        clone = Path(tmp) / "uasbench"
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", commit], cwd=clone, check=True)
        env = _clean_environment(Path(cache))
        for number, line in enumerate(lines, 1):
            print(f"README set-up line {number} in {clone}:\n$ {line}", flush=True)
            start = time.monotonic()
            subprocess.run(["bash", "-e", "-c", line], cwd=clone, env=env, check=True)
            print(f"README set-up line {number}: passed in {time.monotonic() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--run-in-clone", action="store_true", help="run the lines in a fresh clone of HEAD")
    args = parser.parse_args(argv)
    lines = setup_lines(args.readme.read_text(encoding="utf-8"))
    if len(lines) != 2:
        print(f"error: {args.readme} has {len(lines)} bash blocks under 'Set-up', expected 2", file=sys.stderr)
        return 1
    if not args.run_in_clone:
        print("\n".join(lines))
        return 0
    try:
        run_in_clone(lines)
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
