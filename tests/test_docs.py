"""The generated documentation pages are up to date, regenerate from their sources, and the README's links
lead somewhere. (The site itself is built with `mkdocs build --strict` in CI, which checks every page's links
and anchors.)"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fake_runs import write_run
from uasbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "generate_docs.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_generated_pages_are_current() -> None:
    """The command the docs' own instructions give: exits 0 only when no generated page differs."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_fails_on_a_stale_page_and_writing_fixes_it(generator, tmp_path, monkeypatch) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(generator.cli_page().replace("--gpu-tflops", "--gpu-flops"), encoding="utf-8")
    monkeypatch.setattr(generator, "CLI_PAGE", stale)
    monkeypatch.setattr(generator, "ROOT", tmp_path.parent)
    monkeypatch.setattr(generator, "results_pages", lambda results: {})
    assert generator.main(["--check"]) == 1
    assert "--gpu-flops" in stale.read_text(encoding="utf-8")  # --check writes nothing
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_cli_reference_covers_every_command_and_option(generator) -> None:
    page = generator.cli_page()

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    commands = list(walk(typer.main.get_command(app), ["uasbench"]))
    assert len(commands) > 10  # the data subcommands are reached too
    for path, command in commands[1:]:
        assert f"`{' '.join(path)}`" in page
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert f"`{opt}`" in page, (path, opt)
    assert "| `--jobs` | integer >= 1 and <= 1024 | `1` |" in page  # type with bounds and default
    assert "`serial` \\| `local` \\| `slurm`" in page  # an enum's choices


@pytest.mark.slow
def test_results_blocks_regenerate_from_a_results_folder(generator, tmp_path) -> None:
    """With --results, each recorded block is the named block of that command's real output on the folder;
    the README's headline block is the same text as the results page's."""
    for method, quality in (("ae", 0.5), ("dae", 1.0)):
        for seed in (0, 1):
            write_run(tmp_path, method, seed, quality, n_test=6)
        write_run(tmp_path, method, 0, quality, pair="fl-t1", n_test=6)
    pages = generator.results_pages(tmp_path)
    page, readme = pages[generator.RESULTS_PAGE], pages[generator.README]
    blocks = generator.recorded_blocks(page)
    assert len(blocks) >= 5
    headline = ("uasbench leaderboard results/phantom-quick --table metrics --threshold val_dice",
                "Pair fl-t2 — threshold val_dice")
    assert generator.recorded_blocks(readme) == {headline: blocks[headline]}
    assert "ae (2 seeds)" in blocks[headline] and "Pair fl-t1" not in blocks[headline]
    for (command, title), text in blocks.items():
        shown = CliRunner().invoke(app, ["leaderboard", str(tmp_path), *command.split()[3:]]).stdout
        assert text.startswith(f"**{title}**\n") and text.strip() in shown, command


def test_without_a_results_folder_the_recorded_tables_are_kept(generator) -> None:
    pages = generator.results_pages(None)
    assert pages[generator.RESULTS_PAGE] == generator.RESULTS_PAGE.read_text(encoding="utf-8")


def test_readme_links_lead_to_files_or_pages_of_the_site() -> None:
    """Relative links of the README point at a file of the repository or at a page listed in mkdocs.yml's
    nav (pages that other branches add; `mkdocs build --strict` fails when one of those is missing)."""
    nav = set(re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t]
    assert len(targets) > 20
    for target in targets:
        in_site = target.startswith("docs/") and target.removeprefix("docs/") in nav
        assert (ROOT / target).exists() or in_site, target
