"""Check that a built wheel holds exactly the package files of the source tree.

Usage: python scripts/check_wheel.py DIST/uasbench-*.whl

Every file git tracks under uasbench/ and uasbench_methods/ (modules, the anatomy assets, the report page
template; dot-files excepted) must be in the wheel, and the wheel must hold nothing else besides its
.dist-info folder. Prints the wheel's size and a summary of its contents; exits 1 on a difference.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("uasbench", "uasbench_methods")


def expected_files() -> set[str]:
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    return {f for f in tracked if not PurePosixPath(f).name.startswith(".")}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].endswith(".whl"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    wheel = Path(argv[0])
    names = set(zipfile.ZipFile(wheel).namelist())
    files = {n for n in names if ".dist-info/" not in n}
    missing, extra = sorted(expected_files() - files), sorted(files - expected_files())
    packages = sorted({str(PurePosixPath(n).parent).replace("/", ".") for n in files if n.endswith("/__init__.py")})
    data = sorted(n for n in files if not n.endswith(".py"))
    print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, {len(files)} files, "
          f"{Counter(PurePosixPath(n).suffix for n in files)['.py']} modules in {len(packages)} packages")
    print("packages: " + ", ".join(packages))
    print("data files: " + ", ".join(data))
    for label, paths in (("missing from the wheel", missing), ("in the wheel but not in the tree", extra)):
        for path in paths:
            print(f"error: {label}: {path}", file=sys.stderr)
    return 1 if missing or extra else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
