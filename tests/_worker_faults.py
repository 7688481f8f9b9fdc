"""Leaderboard worker (and server) processes that pause at a fault point, for kill tests.

The production worker has no test switch: a pause is injected through
``ScoringWorker(faults=...)`` (here via ``worker.main(argv, faults=...)``), and the
server starts this script instead of ``-m dpeval.leaderboard.worker`` through
``serve(worker_launcher=...)``.

Usage::

    python tests/_worker_faults.py PHASE:SECONDS WORKER-OPTIONS...
    python tests/_worker_faults.py serve PHASE:SECONDS STORE GT SPLIT RESAMPLES

``PHASE`` is one of ``dpeval.leaderboard.worker.FAULT_PHASES``; the pause happens on a
job's first attempt only. ``serve`` prints ``serving http://HOST:PORT/`` (as ``dpeval
leaderboard serve`` does) once it listens, and stops on SIGTERM.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from dpeval.leaderboard.worker import FAULT_PHASES


def pause_at(spec: str) -> Callable:
    """``"after-claim:120"`` -> ``faults(phase, job)`` sleeping there on a first attempt."""
    phase, _, seconds = spec.partition(":")
    if phase not in FAULT_PHASES:
        raise SystemExit(f"unknown fault phase {phase!r}; choose from {FAULT_PHASES}")

    def faults(at: str, job) -> None:
        if at == phase and job.attempts == 1:
            time.sleep(float(seconds or 60))

    return faults


def _serve(spec: str, store: str, gt: str, split: str, resamples: str) -> int:
    from dpeval.leaderboard.supervisor import serve

    def ready(host: str, port: int) -> None:
        sys.stdout.write(f"serving http://{host}:{port}/ (store {store}); Ctrl-C stops\n")
        sys.stdout.flush()

    launcher = (str(Path(__file__).resolve()), spec)
    serve(store, gt, port=0, split=split, resamples=int(resamples), on_ready=ready,
          worker_launcher=launcher)  # fmt: skip
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        sys.exit(_serve(*sys.argv[2:]))
    from dpeval.leaderboard.worker import main

    sys.exit(main(sys.argv[2:], faults=pause_at(sys.argv[1])))
