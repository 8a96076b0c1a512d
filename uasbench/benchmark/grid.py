"""`uasbench benchmark`: prepare the data once, skip what is finished, run the rest, publish the leaderboards.

Running the same command again after a crash, a kill or a pre-emption completes only what is missing:
finished runs are found by their manifests, interrupted ones resume from their work folders. One grid at a
time writes into a results folder (an OS lock on ``.grid.lock``): a second one started at once is refused with
one line, so no job runs twice and no two grids append to one job log.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from uasbench.benchmark.config import BenchmarkConfig
from uasbench.benchmark.executors import Executor
from uasbench.benchmark.jobs import Job, finished_runs, identity_key, make_jobs, prepare_data
from uasbench.benchmark.progress import Board, live
from uasbench.errors import UasbenchError
from uasbench.files import locked, make_folder, write_text_atomic, writing

REPORT = "report"
GRID_LOCK = ".grid.lock"
EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}


def default_out(config: BenchmarkConfig) -> Path:
    return Path("results") / config.name


def plan(config: BenchmarkConfig, out: Path) -> tuple[list[Job], dict[str, Path]]:
    """The grid's jobs (data prepared first) and, by job name, the run folders of those already finished."""
    jobs = make_jobs(config, out, prepare_data(config))
    found = finished_runs(out)
    return jobs, {job.name: found[identity_key(job.identity)] for job in jobs if identity_key(job.identity) in found}


@contextlib.contextmanager
def grid_lock(out: Path) -> Iterator[None]:
    """Hold the results folder's grid lock for the block; refuse with one line if another grid holds it."""
    make_folder(out, out)

    def busy() -> None:
        raise UasbenchError(f"another `uasbench benchmark` is writing into {out} (it holds {out / GRID_LOCK}): "
                            "wait for it to finish, or give another --out")

    with locked(out / GRID_LOCK, busy):
        yield


def run_grid(config: BenchmarkConfig, out: Path, executor: Executor, console: Console) -> list[Path]:
    """Run every missing job; then write the report. A failed job is named (with its log) in the error raised
    after all the others have finished, and the report is left for a complete grid."""
    with grid_lock(out):
        return _run_grid(config, out, executor, console)


def _run_grid(config: BenchmarkConfig, out: Path, executor: Executor, console: Console) -> list[Path]:
    jobs, finished = plan(config, out)
    console.print(escape(f"{config.path}: {len(jobs)} jobs, {len(finished)} already finished, results in {out}"),
                  highlight=False, soft_wrap=True)
    board = Board(jobs, finished, executor.parallel, console)
    with live(board):
        executor.run(board.pending(), board)
    failed = [board.status[name] for name in board.names("failed")]
    if failed:
        listed = "; ".join(f"{s.job.name} (log: {s.job.log})" for s in failed)
        raise UasbenchError(f"{len(failed)} of {len(jobs)} jobs failed: {listed}; rerun the same command to retry them")
    runs = [Path(board.status[job.name].note) for job in jobs]
    return write_report(config, out, runs)


def report_only(config: BenchmarkConfig, out: Path, console: Console) -> list[Path]:
    """The report of the grid's finished runs, saying how many jobs are still missing."""
    with grid_lock(out):
        return _report_only(config, out, console)


def _report_only(config: BenchmarkConfig, out: Path, console: Console) -> list[Path]:
    jobs, finished = plan(config, out)
    if not finished:
        raise UasbenchError(f"no finished runs of {config.path} under {out}: run the benchmark first")
    if len(finished) < len(jobs):
        console.print(f"warning: {len(jobs) - len(finished)} of {len(jobs)} jobs have no finished run yet; "
                      "the report shows the others", highlight=False, soft_wrap=True)
    return write_report(config, out, list(finished.values()))


def write_report(config: BenchmarkConfig, out: Path, runs: list[Path]) -> list[Path]:
    """Leaderboards in every format (Table 1 per pair; Table 2 when there are several pairs) for each of the
    benchmark's thresholds, and the comparison figure of each pair, into ``out/report``."""
    from uasbench.report.figures import figure_from_runs
    from uasbench.report.leaderboard import collect_runs, render

    if config.cross_dataset:
        return _write_levels_report(config, out, runs)
    frame = collect_runs(out)
    frame = frame[frame["run"].isin({str(r) for r in runs})]
    if frame.empty:
        raise UasbenchError(f"no finished runs of {config.path} under {out} to report")
    folder = make_folder(out / REPORT, out)
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


def _write_levels_report(config: BenchmarkConfig, out: Path, runs: list[Path]) -> list[Path]:
    """A cross-dataset grid's report: its blocks per test dataset and level in every format."""
    from uasbench.report.levels import collect_levels, render_levels

    frame = collect_levels(out)
    frame = frame[frame["run"].isin({str(r) for r in runs})]
    if frame.empty:
        raise UasbenchError(f"no finished runs of {config.path} under {out} to report")
    folder = out / REPORT
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, ext in EXTENSIONS.items():
        path = folder / f"leaderboard_levels.{ext}"
        path.write_text(render_levels(frame, fmt))
        written.append(path)
    return written
