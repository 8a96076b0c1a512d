#!/usr/bin/env bash
# Smoke test of a built wheel, installed NON-editable into a fresh virtual environment and used from a
# folder outside the source tree, as a user who ran `pip install uasbench` would:
#   1. the wheel holds exactly the package files of the tree (scripts/check_wheel.py);
#   2. `uasbench --version` is the wheel's version; every subcommand's --help works (the Typer app walked);
#   3. every module of uasbench and uasbench_methods imports on its own (one interpreter per module);
#   4. a tiny run: an 8-subject phantom written by `uasbench data phantom`, `uasbench run --method ae` for
#      2 iterations; `uasbench predict` of that run on the in-repository real BraTS fixture;
#      `uasbench leaderboard --format html --output`.
# Usage: scripts/smoke_test.sh DIST/uasbench-VERSION-py3-none-any.whl
# Needs python3 (>= 3.10) and network access to the package index (torch 2.13.0 and the dependencies).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 WHEEL" >&2
    exit 2
fi
wheel=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
brats="$repo/tests/fixtures/real-brats"
work=$(mktemp -d "${TMPDIR:-/tmp}/uasbench-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { echo "smoke: $*"; }

python3 "$repo/scripts/check_wheel.py" "$wheel"

step "fresh virtual environment in $work/venv"
unset PYTHONPATH VIRTUAL_ENV
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
uas="$work/venv/bin/uasbench"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q torch==2.13.0  # the CPU build first, as the README's set-up does
"$py" -m pip install -q "$wheel"

cd "$work"  # outside the source tree: nothing can be imported from it
export UASBENCH_CACHE_DIR="$work/cache"

step "installed from site-packages, version"
"$py" - "$repo" <<'PY'
import sys
from importlib.metadata import version
from pathlib import Path

import uasbench
import uasbench_methods

repo = Path(sys.argv[1]).resolve()
for package in (uasbench, uasbench_methods):
    location = Path(package.__file__).resolve()
    assert "site-packages" in location.parts and repo not in location.parents, location
assert uasbench.__version__ == version("uasbench"), (uasbench.__version__, version("uasbench"))
PY
test "$("$uas" --version)" = "uasbench $("$py" -c 'import uasbench; print(uasbench.__version__)')"

step "--help of every command"
"$py" - <<'PY' > commands.txt
import typer.main

from uasbench.cli import app


def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])


for path in walk(typer.main.get_command(app), []):
    print(" ".join(path))
PY
while read -r command; do
    # shellcheck disable=SC2086  # the command path is split into words on purpose
    "$uas" $command --help > help.txt || { echo "smoke: 'uasbench $command --help' failed" >&2; exit 1; }
    grep -q "Usage:" help.txt || { echo "smoke: 'uasbench $command --help' printed no usage" >&2; exit 1; }
done < commands.txt
step "$(wc -l < commands.txt) commands"

step "every module imports on its own"
"$py" - <<'PY' > modules.txt
import pkgutil

import uasbench
import uasbench_methods

for package in (uasbench, uasbench_methods):
    print(package.__name__)
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith(".__main__"):  # importing it runs the CLI: checked below instead
            print(module.name)
PY
xargs -P 4 -I{} "$py" -c "import {}" < modules.txt
"$py" -m uasbench --help > help.txt && grep -q "Usage:" help.txt
step "$(wc -l < modules.txt) modules, and python -m uasbench"

step "tiny run, predict on the real BraTS fixture, HTML leaderboard"
"$uas" data phantom --out phantom --subjects 8
"$uas" run --method ae --set iterations=2 --set checkpoint_every=2 --data phantom --out runs --device cpu
run=$(find runs -mindepth 1 -maxdepth 1 -type d -name 'ae_*')
test -f "$run/manifest.json"
"$uas" predict "$run" --data "$brats" --out predicted --threshold 0.5
for case in TCGA-DU-7294 TCGA-FG-6692; do
    test -s "predicted/${case}_anomaly.nii.gz" && test -s "predicted/${case}_anomaly_seg.nii.gz"
done
"$uas" leaderboard runs --format html --output page
grep -q "<html" page/index.html
step "passed"
