"""Packaging: one version source, `uasbench --version`, the entry points, the README's set-up lines."""
from __future__ import annotations

import runpy
import sys

import pytest
from typer.testing import CliRunner

import uasbench
from conftest import REPO_ROOT, load_script
from uasbench.cli import app

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_version_has_one_source_read_by_the_metadata_and_the_cli():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "uasbench.__version__"}
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"uasbench {uasbench.__version__}\n"


def test_the_readme_has_exactly_two_setup_lines_and_the_second_runs_the_tests():
    lines = load_script("readme_setup").setup_lines((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(lines) == 2
    assert all(line.startswith("python3 -m venv .venv && . .venv/bin/activate") for line in lines)
    assert lines[1].endswith("&& python -m pytest")


def test_setup_lines_stop_at_the_next_heading_and_read_through_comments():
    readme = ("# Tool\n## Set-up (fresh machine)\nInstall:\n```bash\npip install tool\n```\n### Details\n"
              "```bash\n# a comment, not a heading\ntool --check\n```\n## Usage\n```bash\ntool run\n```\n")
    expected = ["pip install tool", "# a comment, not a heading\ntool --check"]
    assert load_script("readme_setup").setup_lines(readme) == expected


def test_python_dash_m_uasbench_is_the_cli(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["uasbench", "--version"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("uasbench", run_name="__main__")
    assert stop.value.code == 0 and capsys.readouterr().out == f"uasbench {uasbench.__version__}\n"


def test_the_grid_worker_entry_point_needs_exactly_one_job(capsys):
    from uasbench.benchmark.worker import main

    assert main([]) == 2 and "usage: python -m uasbench.benchmark.worker JOB_JSON" in capsys.readouterr().err
