"""Leaderboard scoring on a Dask cluster (``dpeval leaderboard serve --scheduler ADDRESS``).

In: a :class:`~dpeval.leaderboard.worker.ScoringWorker` (the one process that claims
jobs from the server database) and a ``dask.distributed`` scheduler. Out: the same
entries and database states as the single local worker, with up to one job per Dask
worker scored at a time.

What stays and what moves:

- The scoring worker process (started and restarted by the server's supervisor, holding
  the single-worker lock) still claims every job, adopts entries left by a dead
  predecessor, writes every entry and marks every job done or failed; only
  :func:`~dpeval.leaderboard.submit.build_entry` (reading the upload, scoring, the
  bootstrap) runs on a Dask worker. So queue order, rate limits, the queue cap, the
  time limit (the supervisor kills the scoring worker, whose Dask futures are then
  cancelled, and the restarted worker requeues the job) and "scored once" (one entry
  per submission, written here) are unchanged.
- A job whose Dask worker dies mid-job is rerun on another worker by the scheduler
  (the job is requeued within the same claim; no entry was written by the lost run).
  A job that keeps killing workers (more than the scheduler's ``allowed-failures``,
  3 by default) is marked failed.
- The hidden ground truth is loaded once here and shipped once to every Dask worker
  (``scatter(broadcast=True)``; scattered again if the scheduler loses it with a killed
  worker); uploads are read by the Dask workers from
  ``<store>/.server/uploads``, so the store must be on a path every worker can read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from ..errors import DpevalWarning, StateError

__all__ = ["PoolScorer"]

log = logging.getLogger(__name__)


def _remote_build(
    upload: str, gt: Any, kwargs: dict[str, Any], fault: Callable[[str], None] | None
) -> dict:
    """Runs on a Dask worker: :func:`~dpeval.leaderboard.submit.build_entry`."""
    from .submit import build_entry

    if fault is not None:
        fault(upload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DpevalWarning)
        return build_entry(upload, gt, **kwargs)


class PoolScorer:
    """Runs a scoring worker's jobs on a Dask cluster, one per Dask worker at a time.

    Parameters
    ----------
    worker : ScoringWorker
    client : distributed.Client
    slots : int, optional
        Jobs in flight (default: the number of Dask workers when started).
    remote_fault : callable, optional
        Fault point on the Dask worker: ``remote_fault(upload_path)`` runs there before
        every scoring run (it must pickle); tests pass one that records its pid and
        sleeps, then kill that Dask worker. Default none.
    """

    def __init__(
        self,
        worker: Any,
        client: Any,
        slots: int | None = None,
        *,
        remote_fault: Callable[[str], None] | None = None,
    ) -> None:
        from ..distributed import n_workers

        self.remote_fault = remote_fault
        self.worker = worker
        self.client = client
        self.slots = slots or n_workers(client)
        self._gt_lock = threading.Lock()
        self._gt = self._scatter_gt()

    def _scatter_gt(self) -> Any:
        return self.client.scatter(self.worker.ground_truth(), broadcast=True, hash=False)

    def build(self, upload: str, gt: Any, **kwargs: Any) -> dict:
        """Drop-in for ``build_entry`` inside ``ScoringWorker.score``: the same call on a
        Dask worker (``gt`` is the scattered copy).

        The scheduler can lose the scattered ground truth with a killed worker (its
        replicas may not all have arrived); the job's future is then cancelled. The
        ground truth is scattered again and the job resubmitted, once.
        """
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError

        for attempt in (1, 2):
            gt_future = self._gt
            fut = self.client.submit(
                _remote_build, upload, gt_future, kwargs, self.remote_fault, pure=False
            )
            try:
                return fut.result()
            except KilledWorker:
                raise StateError(
                    "scoring this upload killed every Dask worker that tried it; contact the "
                    "organisers"
                ) from None
            except FutureCancelledError:
                if attempt == 2:
                    raise
                log.warning("the scattered ground truth was lost with a Dask worker; resending")
                with self._gt_lock:
                    if self._gt is gt_future:  # another job may have resent it already
                        self._gt = self._scatter_gt()
            finally:
                fut.release()
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, *, once: bool = False, poll_s: float = 1.0, parent_pid: int | None = None):
        """Loop: claim while a slot is free, score on the cluster. ``once``: stop when
        the queue is empty and nothing is in flight."""
        worker = self.worker
        running: set[Any] = set()
        with ThreadPoolExecutor(self.slots, thread_name_prefix="dpeval-pool") as pool:
            while True:
                if parent_pid is not None and os.getppid() != parent_pid:
                    log.warning("supervisor %s is gone; worker exits", parent_pid)
                    for f in running:
                        f.cancel()
                    return
                job = None
                if len(running) < self.slots:
                    job = worker.db.claim_next(os.getpid(), worker.max_attempts)
                if job is not None:
                    running.add(pool.submit(worker.score, job, self.build))
                    continue
                if not running and once:
                    return
                if running:
                    done, _ = wait(running, timeout=poll_s, return_when=FIRST_COMPLETED)
                    for f in done:
                        running.discard(f)
                        f.result()  # score() handles bad input; anything else is a bug
                else:
                    time.sleep(poll_s)
