"""The plugin author's tutorial (docs/tutorials/plugin.md) works as written: its files are written into an
empty folder and its shell commands run in order, and each step does what the page says it does.

Files are the code blocks titled with their path (```` ```python title="PATH" ````, which the site shows
above the block); commands are the lines of the untitled ```bash blocks. Three words are read as this test's environment rather than the reader's: ``uasbench`` and
``python`` are this interpreter (``python -m uasbench``), and ``pip install`` installs without dependencies
into a private folder put on ``PYTHONPATH`` (uasbench is already there), so the shared environment is never
changed.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from uasbench.testing import method_checks

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "plugin.md"
BLOCK = re.compile(r'```(?P<lang>\w*)(?: title="(?P<path>[^"]+)")?\n(?P<body>.*?)```', re.DOTALL)


def tutorial_steps(text: str) -> tuple[dict[str, str], list[list[str]]]:
    """The files (path -> content) and the commands (argument lists, in order) of a tutorial page."""
    files, commands = {}, []
    for block in BLOCK.finditer(text):
        if block["path"]:
            files[block["path"]] = block["body"]
        elif block["lang"] == "bash":
            commands += [shlex.split(line, comments=True) for line in block["body"].splitlines()
                         if shlex.split(line, comments=True)]
    return files, commands


def test_the_tutorial_has_files_and_commands() -> None:
    """Quick: the page parses into the steps the slow test runs (a renamed marker would make it run nothing)."""
    files, commands = tutorial_steps(TUTORIAL.read_text(encoding="utf-8"))
    assert {"my-uas-method/pyproject.toml", "my-uas-method/tests/test_contract.py"} <= set(files)
    assert [c[:2] for c in commands] == [["pip", "install"], ["uasbench", "methods"], ["python", "-m"],
                                         ["uasbench", "data"], ["uasbench", "run"], ["uasbench", "run"],
                                         ["uasbench", "leaderboard"]]


def _as_run_here(argv: list[str], site: Path) -> list[str]:
    if argv[:2] == ["pip", "install"]:
        return [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                "--target", str(site), *argv[2:]]
    if argv[0] == "uasbench":
        return [sys.executable, "-m", "uasbench", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    raise AssertionError(f"the tutorial runs {argv[0]!r}, which this test does not know how to run")


@pytest.mark.slow
def test_the_plugin_tutorial_runs_as_written(tmp_path: Path) -> None:
    files, commands = tutorial_steps(TUTORIAL.read_text(encoding="utf-8"))
    folder, site = tmp_path / "tutorial", tmp_path / "site"
    for path, content in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(content, encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200", "UASBENCH_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    outputs = {}
    for argv in commands:
        done = subprocess.run(_as_run_here(argv, site), cwd=folder, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-3000:])
        outputs[" ".join(argv[:2])] = done.stdout

    listed = next(line for line in outputs["uasbench methods"].splitlines() if "local_variance" in line)
    assert "my-uas-method" in listed  # registered through the entry point, from its own distribution
    checks = len(list(method_checks(type("AnyLearnedMethod", (), {"name": "any"}))))  # every contract check
    assert re.search(rf"\b{checks} passed\b", outputs["python -m"]), outputs["python -m"]
    runs = sorted(p.name.split("_fl-t2_")[0] for p in (folder / "results").iterdir() if p.is_dir()
                  and not p.name.startswith("."))
    assert runs == ["intensity", "local_variance"]
    board = outputs["uasbench leaderboard"]
    rows = {m: next((line for line in board.splitlines() if line.startswith(f"| {m}")), None)
            for m in ("local_variance", "intensity")}
    assert all(rows.values()), board  # both methods ranked in one table
    assert "Dice" in board and "AUROC" in board
