"""`uasbench benchmark`: prepare the data once, skip what is finished, run the rest, publish the leaderboards
(written by the report writer the caller passes).

Running the same command again after a crash, a kill or a pre-emption completes only what is missing:
finished runs are found by their manifests, interrupted ones resume from their work folders. One grid at a
time writes into a results folder (an OS lock on ``.grid.lock``): a second one started at once is refused with
one line, so no job runs twice and no two grids append to one job log.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from uasbench.benchmark.config import BenchmarkConfig
from uasbench.benchmark.executors import Executor
from uasbench.benchmark.jobs import Job, finished_runs, identity_key, make_jobs, prepare_data
from uasbench.benchmark.progress import Board, live
from uasbench.errors import UasbenchError
from uasbench.files import locked, make_folder

REPORT = "report"  # the folder of the grid's leaderboards and figures, inside its results folder
GRID_LOCK = ".grid.lock"
#: Writes the report of a grid's finished runs: (benchmark file, results folder, run folders, report folder) ->
#: the files written. The command line passes the report layer's (``report.grid_report.write_grid_report``), so
#: this layer never imports the one above it.
ReportWriter = Callable[[BenchmarkConfig, Path, list[Path], Path], list[Path]]


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


def run_grid(config: BenchmarkConfig, out: Path, executor: Executor, console: Console, report: ReportWriter
             ) -> list[Path]:
    """Run every missing job; then write the report. A failed job is named (with its log) in the error raised
    after all the others have finished, and the report is left for a complete grid."""
    with grid_lock(out):
        return _run_grid(config, out, executor, console, report)


def _run_grid(config: BenchmarkConfig, out: Path, executor: Executor, console: Console, report: ReportWriter
              ) -> list[Path]:
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
    return report(config, out, runs, out / REPORT)


def report_only(config: BenchmarkConfig, out: Path, console: Console, report: ReportWriter) -> list[Path]:
    """The report of the grid's finished runs, saying how many jobs are still missing."""
    with grid_lock(out):
        return _report_only(config, out, console, report)


def _report_only(config: BenchmarkConfig, out: Path, console: Console, report: ReportWriter) -> list[Path]:
    jobs, finished = plan(config, out)
    if not finished:
        raise UasbenchError(f"no finished runs of {config.path} under {out}: run the benchmark first")
    if len(finished) < len(jobs):
        console.print(f"warning: {len(jobs) - len(finished)} of {len(jobs)} jobs have no finished run yet; "
                      "the report shows the others", highlight=False, soft_wrap=True)
    return report(config, out, list(finished.values()), out / REPORT)
