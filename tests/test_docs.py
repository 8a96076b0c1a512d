"""The generated documentation pages are up to date, regenerate from their sources, and the README's links
lead somewhere. (The site itself is built with `mkdocs build --strict` in CI, which checks every page's links
and anchors.)"""
from __future__ import annotations

import importlib.util
import os
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
    assert re.search(r"\| `--jobs` \| integer >= 1 and <= \d+ \| `1` \|", page)  # type with bounds and default
    assert "`serial` \\| `local` \\| `slurm`" in page  # an enum's choices


def test_cli_reference_does_not_depend_on_the_terminal(generator) -> None:
    """The page is read from click's parameters, not from rendered help: a narrow or a dumb terminal, or no
    colour, gives the same page."""
    script = (f"import importlib.util, sys; spec = importlib.util.spec_from_file_location('g', {str(SCRIPT)!r}); "
              "g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g); sys.stdout.write(g.cli_page())")
    env = {**os.environ, "COLUMNS": "30", "LINES": "5", "TERM": "dumb", "NO_COLOR": "1"}
    narrow = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert narrow.stdout == generator.cli_page()


def test_key_tables_come_from_the_dataclasses(generator) -> None:
    """Every field of the benchmark file's tables and of the dataset card is a row, with its bounds and default;
    a table edited by hand is stale."""
    import dataclasses

    from uasbench.benchmark.config import BenchmarkTable, GridTable, SlurmSettings
    from uasbench.data.card import describe_keys

    keys = generator.benchmark_keys()
    for table, cls in (("benchmark", BenchmarkTable), ("grid", GridTable), ("slurm", SlurmSettings)):
        for f in dataclasses.fields(cls):
            assert f"| `{table}.{f.name}` |" in keys, (table, f.name)
    assert "| `slurm.mem_gb` | an integer &gt;= 1 and &lt;= 65536 | `32` |" in keys
    assert "one of val_dice, fpr_1, fpr_5, oracle_test" in keys  # a Literal's choices
    assert "as `uasbench run --erode-brain`" in keys and "&lt;= 64" in keys  # the post-processing's bounds
    card = generator.card_keys()
    assert all(f"| `{key}` |" in card for key, *_ in describe_keys())
    page = generator.BENCHMARK_PAGE.read_text(encoding="utf-8")
    assert generator.fill_tables(page.replace("`slurm.mem_gb`", "`slurm.memory`")) == page


def test_error_page_lists_every_case_of_the_bad_input_matrix(generator) -> None:
    cases = generator.bad_input_cases()
    assert len(cases) > 50
    page = generator.error_cases()
    sections = re.findall(r"^### `uasbench ([\w ]+)`", page, re.M)
    assert {"run", "benchmark", "data inspect", "evaluate"} <= set(sections)
    for case in cases:
        assert " ".join(case["message"].split()).replace("`", "'").replace("|", "\\|") in page, case["id"]
        assert not any(a.startswith("/") for a in case["argv"])  # paths relative to the test's folder
    assert "`uasbench run --method intensity --erode-brain 100000 --out results` | 2 |" in page


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
