"""The published page in a real browser: headless Chromium renders it to a PNG without console errors,
the numbers it shows are those of the runs, and it needs no network. Plus the page's bad-input paths.

Chromium is required in CI (``.ci/run`` installs Debian's ``chromium``); elsewhere the browser tests are
skipped, with the reason, when it is not installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

from fake_runs import write_run
from uasbench.cli import app

runner = CliRunner()
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("the browser test must run in CI, but chromium is not installed (.ci/run installs it)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI always runs this test")


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _console(stderr: str) -> list[str]:
    """Every console message the page produced (a page without scripts should produce none)."""
    return [m.group(1) for m in map(CONSOLE.search, stderr.splitlines()) if m]


class _Tables(HTMLParser):
    """Rows of every table, keyed by the text of the heading (h3/h4) before it."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = defaultdict(list)
        self.sources: list[str] = []
        self.links: list[str] = []
        self._heading: str | None = None
        self._title = ""
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("h3", "h4"):
            self._heading, self._title = "", ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")
        elif tag == "img":
            self.sources.append(attributes.get("src") or "")
        elif tag == "a":
            self.links.append(attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h3", "h4") and self._heading is not None:
            self._title, self._heading = self._heading.strip(), None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._title].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("site")
    results = root / "results"
    for seed in (0, 1):
        write_run(results, "dae", seed, 0.7)
        write_run(results, "mmccd", seed, 0.55)
    write_run(results, "intensity", 0, 0.35, losses=False)
    result = runner.invoke(app, ["leaderboard", str(results), "--format", "html", "--output", str(root / "site")])
    assert result.exit_code == 0, result.output
    return results, root / "site" / "index.html"


def _expected_means(results: Path, key: str, metric: str) -> dict[str, float]:
    """Independently of the report code: per method, subjects averaged over seeds, then over subjects."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for metrics_file in results.glob("*/metrics.json"):
        method = json.loads((metrics_file.parent / "manifest.json").read_text())["method"]
        stored = json.loads(metrics_file.read_text())
        for subject, value in zip(stored["subjects"], stored["per_subject"][key][metric]):
            values[method][subject].append(value)
    return {m: float(np.mean([np.mean(v) for v in subjects.values()])) for m, subjects in values.items()}


def test_page_renders_in_chromium_without_console_errors(site: tuple[Path, Path], tmp_path: Path) -> None:
    _, page = site
    broken = tmp_path / "broken.html"  # the harness must see a console error when there is one
    broken.write_text("<!DOCTYPE html><p>x</p><script>console.error('deliberately broken')</script>")
    seen = _console(_chromium([f"--screenshot={tmp_path / 'b.png'}", broken.as_uri()], tmp_path / "p1").stderr)
    assert any("deliberately broken" in m for m in seen), seen

    shot = tmp_path / "page.png"
    run = _chromium([f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()], tmp_path / "p2")
    assert _console(run.stderr) == []
    image = mpimg.imread(shot)
    assert image.shape[:2] == (2400, 1280) and image.std() > 0.05  # drawn, not blank


def test_page_numbers_are_those_of_the_runs(site: tuple[Path, Path], tmp_path: Path) -> None:
    results, page = site
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile").stdout
    parsed = _Tables()
    parsed.feed(dom)
    checks = [("Pair fl-t2 — threshold val_dice", "val_dice", "dice", 1),
              ("Pair fl-t2 — threshold val_dice", "threshold_free", "auroc", 2),
              ("Pair fl-t2 — threshold oracle (threshold tuned on test): upper bound", "oracle_test", "dice", 1),
              ("Dice per modality pair — threshold val_dice", "val_dice", "dice", 1)]
    for title, key, metric, column in checks:
        rows = {row[0].split(" (")[0]: row for row in parsed.tables[title][1:]}
        expected = _expected_means(results, key, metric)
        assert set(rows) == set(expected), (title, rows)
        for method, mean in expected.items():
            shown = rows[method][column]
            assert shown.split(" ")[0].rstrip("†") == f"{mean:.3f}", (title, method, shown)
            low, high = map(float, re.search(r"\[(\S+), (\S+)\]", shown).groups())
            assert low <= mean + 5e-4 and mean - 5e-4 <= high
    seeds = {row[0] for row in parsed.tables["Pair fl-t2 — threshold val_dice"][1:]}
    assert seeds == {"intensity (1 seed)", "dae (2 seeds)", "mmccd (2 seeds)"}
    official = parsed.tables["Pair fl-t2 — official MMCCD evaluation (ORACLE: threshold tuned on test)"]
    assert len(official) == 4 and all(cell != "n/a" for row in official[1:] for cell in row)
    # self-contained: every image embedded, every link a relative path to a file that exists
    assert len(parsed.sources) >= 3 and all(s.startswith("data:image/png;base64,") for s in parsed.sources)
    assert "<script" not in page.read_text() and "http://" not in page.read_text()
    targets = [page.parent / link for link in parsed.links]
    assert targets and all(t.exists() for t in targets)
    assert any(t.name == "loss_net.csv" for t in targets) and any(t.name == "scores.npz" for t in targets)


@pytest.mark.parametrize("args, code, needle", [
    (["--format", "html"], 2, "give --output"),
    (["--format", "html", "--output", "OUT", "--threshold", "oracle_test"], 2, "drop --threshold"),
    (["--format", "html", "--output", "OUT", "--protocol", "mmccd-official"], 2, "drop --protocol"),
    (["--protocol", "mmccd-official", "--threshold", "fpr_1"], 2, "--threshold does not apply"),
    (["--spread", "sem"], 2, "sem"),
    (["--table", "blobs"], 2, "blobs"),
    (["--format", "html", "--output", "FILE/x.html"], 1, "is not a folder"),
])
def test_leaderboard_bad_options(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    write_run(tmp_path / "results", "dae", 0, 0.7, losses=False)
    (tmp_path / "FILE").write_text("a file, not a folder")
    args = [a.replace("OUT", str(tmp_path / "out")).replace("FILE", str(tmp_path / "FILE")) for a in args]
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "results"), *args])
    assert result.exit_code == code, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_older_metrics_without_per_subject_values(tmp_path: Path) -> None:
    run = write_run(tmp_path, "dae", 0, 0.7, losses=False)
    stored = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({k: v for k, v in stored.items() if k != "per_subject"}))
    result = runner.invoke(app, ["leaderboard", str(tmp_path)])
    assert result.exit_code == 1 and "no per-subject values" in result.stderr and "uasbench evaluate" in result.stderr
    lines = result.stderr.strip().splitlines()  # the run is skipped with its reason, then nothing is left to rank
    assert len(lines) == 2 and lines[0].startswith(f"skipped run {run}: ") and lines[1].startswith("error: ")
