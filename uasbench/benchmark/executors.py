"""Where a grid's jobs run: in this process (``serial``), in N worker processes on this machine (``local``)
or as a SLURM job array (``slurm``, through submitit). Every executor runs the same ``run_job``, so a job
means the same thing everywhere; a failing job is reported on the board and never stops the others.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from uasbench.benchmark.config import SlurmSettings
from uasbench.benchmark.jobs import Job, open_log, run_job
from uasbench.benchmark.progress import Board
from uasbench.choices import EXECUTORS
from uasbench.errors import UasbenchError, UsageError
from uasbench.files import describe_os_error



class Executor(Protocol):
    parallel: int

    def run(self, jobs: list[Job], board: Board) -> None:
        """Run ``jobs``, reporting each start, success and failure to ``board``."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):  # e.g. a full disk while the job wrote its log: say so in words
        return describe_os_error(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


class SerialExecutor:
    """One job after another in the calling process (the default; what a laptop or a single GPU wants)."""

    parallel = 1

    def run(self, jobs: list[Job], board: Board) -> None:
        for job in jobs:
            board.start(job)
            try:
                run_dir = run_job(job)
            except Exception as exc:  # noqa: BLE001 - one failing job must not stop the grid
                board.failed(job, _reason(exc))
            else:
                board.done(job, run_dir)


def _visible_gpus() -> list[str]:
    """GPU ids a worker may be pinned to: those in CUDA_VISIBLE_DEVICES, else all that torch sees."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the benchmark process dies (even by SIGKILL), so a rerun never races
    with orphans on the same work folders."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


class LocalExecutor:
    """N jobs at once, each in its own worker process writing to its own log.

    With several GPUs, worker slot k is pinned to GPU k mod G through CUDA_VISIBLE_DEVICES; the CPU threads
    (OMP_NUM_THREADS, MKL_NUM_THREADS) are divided between the workers so they do not oversubscribe the cores.
    """

    def __init__(self, jobs: int, poll_s: float = 0.25) -> None:
        if jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        self.parallel = jobs
        self.poll_s = poll_s

    def worker_env(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        gpus = _visible_gpus()
        if len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        threads = str(max(1, _cpu_count() // self.parallel))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        return env

    def run(self, jobs: list[Job], board: Board) -> None:
        queue = list(jobs)
        running: dict[int, tuple[Job, subprocess.Popen[bytes]]] = {}  # slot -> job, process
        try:
            while queue or running:
                for slot in range(self.parallel):
                    if slot not in running and queue:
                        job = queue.pop(0)
                        running[slot] = (job, self._launch(job, slot))
                        board.start(job)
                for slot, (job, proc) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[slot]
                    if code == 0:
                        board.done(job, Path(_last_line(job.log).removeprefix("run directory: ")))
                    else:
                        board.failed(job, f"exit code {code}: {_last_line(job.log)}")
                time.sleep(self.poll_s)
        finally:
            for _, proc in running.values():  # interrupted: stop the workers, whose runs resume next time
                proc.terminate()
            for _, proc in running.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _launch(self, job: Job, slot: int) -> subprocess.Popen[bytes]:
        with open_log(job.log, job.spec.out) as log:
            return subprocess.Popen([sys.executable, "-m", "uasbench.benchmark.worker", job.to_json()],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=self.worker_env(slot), preexec_fn=_die_with_parent)


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log written"
    return lines[-1] if lines else "empty log"


class SlurmExecutor:
    """The jobs as one SLURM job array through submitit; each task runs ``run_job`` on its node.

    Tasks are submitit ``Checkpointable``: on pre-emption or time-out submitit requeues the task, which
    resumes from its run's work folder. The results folder and the cache (UASBENCH_CACHE_DIR) must be on a
    filesystem the nodes share. ``cluster="local"`` or ``"debug"`` runs the same submission on this machine
    (submitit's own executors), which is how it is tested without a cluster.
    """

    def __init__(self, settings: SlurmSettings, folder: Path, *, name: str = "uasbench",
                 cluster: str | None = "slurm", poll_s: float = 10.0) -> None:
        try:
            import submitit
        except ImportError:
            raise UasbenchError('--executor slurm needs submitit: pip install "uasbench[slurm]"') from None
        self.folder, self.poll_s, self.parallel = folder, poll_s, settings.array_parallelism
        try:
            self.executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
        except RuntimeError as exc:  # e.g. no srun/sbatch on this machine
            raise UasbenchError(f"--executor slurm: {exc}") from None
        s = settings
        params: dict[str, Any] = {"name": name, "timeout_min": s.timeout_min, "gpus_per_node": s.gpus_per_job,
                                  "cpus_per_task": s.cpus_per_job, "mem_gb": s.mem_gb, "tasks_per_node": 1,
                                  "slurm_array_parallelism": s.array_parallelism, "slurm_partition": s.partition,
                                  "slurm_account": s.account, "slurm_qos": s.qos, "slurm_constraint": s.constraint,
                                  "slurm_setup": list(s.setup) or None}
        self.executor.update_parameters(**{k: v for k, v in params.items() if v is not None})

    def submit(self, jobs: list[Job]) -> list[Any]:
        """Submit the jobs as one array; returns submitit's job handles, in order."""
        return self.executor.map_array(SlurmTask(), jobs)

    def run(self, jobs: list[Job], board: Board) -> None:
        if not jobs:
            return
        submitted = self.submit(jobs)
        board.console.print(f"submitted {len(jobs)} jobs as array {submitted[0].job_id.split('_')[0]} "
                            f"(submitit folder {self.folder})", highlight=False, soft_wrap=True)
        waiting = dict(zip((job.name for job in jobs), zip(jobs, submitted)))
        while waiting:
            for name, (job, task) in list(waiting.items()):
                if task.done():
                    del waiting[name]
                    exc = task.exception()
                    if exc is None:
                        board.done(job, Path(task.result()))
                    else:
                        board.failed(job, f"{_reason(exc)} (submitit logs: {task.paths.stderr})")
                elif task.state in ("RUNNING", "COMPLETING") and board.status[name].state == "pending":
                    board.start(job)
            if waiting:
                time.sleep(self.poll_s)


class SlurmTask:
    """The callable a SLURM task runs; requeued by submitit on pre-emption (``checkpoint`` resubmits it)."""

    def __call__(self, job: Job) -> str:
        return str(run_job(job))

    def checkpoint(self, job: Job) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, job)


def make_executor(kind: str, *, jobs: int, slurm: SlurmSettings, folder: Path, name: str) -> Executor:
    if kind not in EXECUTORS:
        raise UsageError(f"invalid --executor {kind!r} (valid: {', '.join(EXECUTORS)})")
    if kind != "local" and jobs != 1:
        raise UsageError(f"--jobs {jobs} needs --executor local (slurm: set slurm.array_parallelism)")
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return LocalExecutor(jobs)
    return SlurmExecutor(slurm, folder, name=name)
