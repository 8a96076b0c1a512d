"""The grid's live display: every job's state (pending, running, done, skipped, failed), elapsed times and an
estimate of the time left, redrawn in place on a terminal and written as one line per event elsewhere.

The estimate is the mean duration of the jobs of the same method finished in this session (of any method
before one of its own has finished), for the pending jobs and the rest of the running ones, divided by the
number of jobs that run at once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from uasbench.benchmark.jobs import Job

STATES = ("running", "failed", "pending", "done", "skipped")  # display order
_STYLE = {"running": "bold yellow", "failed": "bold red", "pending": "dim", "done": "green", "skipped": "cyan"}


@dataclasses.dataclass
class JobStatus:
    job: Job
    state: str = "pending"
    started: float | None = None
    ended: float | None = None
    note: str = ""  # run folder, or why it failed

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended or now) - self.started


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Board:
    """The state of every job of a grid; executors report to it, the display draws it."""

    def __init__(self, jobs: list[Job], finished: dict[str, Path], parallel: int, console: Console) -> None:
        self.status = {job.name: JobStatus(job) for job in jobs}
        for name, run_dir in finished.items():
            self.status[name].state, self.status[name].note = "skipped", str(run_dir)
        self.parallel = max(1, parallel)
        self.console = console
        self.started = time.monotonic()

    def pending(self) -> list[Job]:
        return [s.job for s in self.status.values() if s.state == "pending"]

    def names(self, state: str) -> list[str]:
        return [name for name, s in self.status.items() if s.state == state]

    def start(self, job: Job) -> None:
        s = self.status[job.name]
        s.state, s.started = "running", time.monotonic()

    def done(self, job: Job, run_dir: Path) -> None:
        s = self._end(job, "done", str(run_dir))
        self.console.print(escape(f"done    {job.name} in {_clock(s.elapsed(time.monotonic()))} -> {run_dir}"),
                           highlight=False, soft_wrap=True)

    def failed(self, job: Job, reason: str) -> None:
        self._end(job, "failed", f"{reason} (log: {job.log})")
        self.console.print(f"[bold red]failed[/]  {escape(f'{job.name}: {reason} (log: {job.log})')}",
                           highlight=False, soft_wrap=True)

    def _end(self, job: Job, state: str, note: str) -> JobStatus:
        s = self.status[job.name]
        now = time.monotonic()
        s.started = s.started if s.started is not None else now
        s.state, s.ended, s.note = state, now, note
        return s

    def eta(self, now: float) -> float | None:
        """Seconds left, or None before any job has finished in this session."""
        if not self.names("pending") and not self.names("running"):
            return 0.0
        durations: dict[str, list[float]] = {}
        for s in self.status.values():
            if s.state in ("done", "failed") and s.started is not None and s.ended is not None:
                durations.setdefault(s.job.method, []).append(s.ended - s.started)
        if not durations:
            return None
        overall = sum(sum(d) for d in durations.values()) / sum(len(d) for d in durations.values())

        def expected(job: Job) -> float:
            own = durations.get(job.method)
            return sum(own) / len(own) if own else overall

        left = sum(expected(s.job) for s in self.status.values() if s.state == "pending")
        left += sum(max(expected(s.job) - (s.elapsed(now) or 0.0), 0.0)
                    for s in self.status.values() if s.state == "running")
        return left / self.parallel

    def summary(self) -> str:
        now = time.monotonic()
        counts = ", ".join(f"{len(self.names(state))} {state}" for state in STATES)
        eta = self.eta(now)
        left = "after the first job" if eta is None else _clock(eta)
        return f"{len(self.status)} jobs: {counts} | elapsed {_clock(now - self.started)}, estimated left {left}"

    def render(self) -> Group:
        now = time.monotonic()
        table = Table(box=None, pad_edge=False, show_header=True)
        widths = {"job": max(len(name) for name in self.status), "state": 7, "elapsed": 7}
        for column in ("job", "state", "elapsed", "run / reason"):  # the last column gives way on narrow screens
            table.add_column(column, overflow="ellipsis", no_wrap=True, min_width=widths.get(column, 0))
        order = sorted(self.status.values(), key=lambda s: STATES.index(s.state))
        for s in order:
            table.add_row(Text(s.job.name), Text(s.state, style=_STYLE[s.state]), _clock(s.elapsed(now)),
                          Text(s.note))  # Text: a bracket in a path or reason is shown as written
        return Group(Text(self.summary(), style="bold"), table)


@contextlib.contextmanager
def live(board: Board) -> Iterator[Board]:
    """Redraw the board in place while the block runs (a no-op on a non-terminal, where events are lines)."""
    with Live(get_renderable=board.render, console=board.console, refresh_per_second=2, transient=True,
              redirect_stdout=False, redirect_stderr=False, vertical_overflow="crop"):
        yield board
    board.console.print(board.summary(), highlight=False, soft_wrap=True)
