"""A local worker process: ``python -m uasbench.benchmark.worker JOB_JSON`` runs one job of a grid.

The ``local`` executor starts one per job with its output sent to the job's log; the exit code says whether
the run finished (0) or failed (1; 130 when interrupted). The error itself is in the log.
"""
from __future__ import annotations

import sys

from uasbench.benchmark.jobs import Job, run_job


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m uasbench.benchmark.worker JOB_JSON", file=sys.stderr)
        return 2
    try:
        run_dir = run_job(Job.from_json(argv[0]))
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - run_job wrote the traceback to the job's log
        return 1
    print(f"run directory: {run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
