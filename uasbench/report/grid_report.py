"""The report of a benchmark grid (``uasbench benchmark``): every leaderboard and comparison figure of its runs,
written into its results folder. The grid calls it through the callback the command line gives it."""
from __future__ import annotations

from pathlib import Path

from uasbench.benchmark.config import BenchmarkConfig
from uasbench.errors import UasbenchError
from uasbench.files import make_folder, write_text_atomic, writing

EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}


def write_grid_report(config: BenchmarkConfig, out: Path, runs: list[Path], folder: Path) -> list[Path]:
    """Leaderboards in every format (Table 1 per pair; Table 2 when there are several pairs) for each of the
    benchmark's thresholds, and the comparison figure of each pair, into ``folder`` (inside ``out``)."""
    from uasbench.report.figures import figure_from_runs  # matplotlib: only when a report is written
    from uasbench.report.leaderboard import render
    from uasbench.report.runs import collect_runs

    if config.cross_dataset:
        return _write_levels_report(config, out, runs, folder)
    frame = collect_runs(out)
    frame = frame[frame["run"].isin({str(r) for r in runs})]
    if frame.empty:
        raise UasbenchError(f"no finished runs of {config.path} under {out} to report")
    folder = make_folder(folder, out)
    tables = ["metrics"] + (["pairs"] if frame["pair"].nunique() > 1 else [])
    written = []
    for threshold in config.thresholds:
        for table in tables:
            for fmt, ext in EXTENSIONS.items():
                path = folder / f"leaderboard_{table}_{threshold}.{ext}"
                write_text_atomic(path, render(frame, table=table, fmt=fmt, threshold=threshold))
                written.append(path)
    for pair in sorted(frame["pair"].unique()):
        path = folder / f"comparison_{pair}.png"
        with writing(path):  # a full disk: one line naming the figure
            written.append(figure_from_runs(out, pair, path))
    return written


def _write_levels_report(config: BenchmarkConfig, out: Path, runs: list[Path], folder: Path) -> list[Path]:
    """A cross-dataset grid's report: its blocks per test dataset and evaluation level in every format."""
    from uasbench.report.levels import collect_levels, render_levels

    frame = collect_levels(out)
    frame = frame[frame["run"].isin({str(r) for r in runs})]
    if frame.empty:
        raise UasbenchError(f"no finished runs of {config.path} under {out} to report")
    folder = make_folder(folder, out)
    written = []
    for fmt, ext in EXTENSIONS.items():
        path = folder / f"leaderboard_levels.{ext}"
        write_text_atomic(path, render_levels(frame, fmt))
        written.append(path)
    return written
