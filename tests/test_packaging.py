"""Packaging: one version source, `uasbench --version`."""
from __future__ import annotations

import sys

from typer.testing import CliRunner

import uasbench
from conftest import REPO_ROOT
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
