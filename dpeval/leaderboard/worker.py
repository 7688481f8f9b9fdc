"""Leaderboard scoring worker: claims queued submissions and scores them one at a time.

In: the server database (:mod:`dpeval.leaderboard.db`), uploads under
``<store>/.server/uploads/<id>.json`` and the hidden ground truth. Out: one leaderboard
entry per submission in ``<store>/entries/`` (via :func:`~dpeval.leaderboard.store.
write_entry`) and the submission marked ``done`` (with the entry id) or ``failed``
(with a one-line message).

Run as ``python -m dpeval.leaderboard.worker --store S --gt G``; ``dpeval leaderboard
serve`` starts and restarts it (:mod:`dpeval.leaderboard.supervisor`). Guarantees:

- **One worker, one job at a time.** The worker holds an exclusive ``flock`` on
  ``<db>.worker.lock`` for its whole life; a second one exits with code 3. Jobs are
  scored one after another at ``nice`` +10, so a flood of uploads only lengthens the
  queue: it cannot starve the web process or the machine.
- **No submission lost.** A job is claimed with ``BEGIN IMMEDIATE`` (state ``scoring``,
  ``attempts + 1``, worker pid). Holding the lock, a starting worker knows every
  ``scoring`` row is orphaned (its worker died) and puts it back in the queue. A job
  that kills its worker ``max_attempts`` times (3) is marked failed.
- **Scored once.** Each entry carries ``"server": {"instance", "submission_id"}``
  (``instance`` is the database's random id). Before scoring, the worker looks for an
  entry with this pair in the store; if one exists (the previous worker died after
  writing it but before marking the job done) it is adopted and no second entry is
  written.
- **No leaks.** The team name on the entry is the registered team, not a form field.
  Error messages are reduced to one line with the upload and ground-truth paths (and
  the store path) replaced by ``upload`` / ``the ground truth``; unexpected exceptions
  become ``internal error while scoring`` with the traceback only in the server log.
- Decompression bombs are refused by dpeval's readers: every PNG header is read before
  any pixel is inflated (40 M pixel cap) and the server already refused maps larger
  than their image at upload; JSON nested too deeply is refused as malformed.

Fault points: ``ScoringWorker(faults=f)`` calls ``f(phase, job)`` right after a job is
claimed (``"after-claim"``) and right after its entry is written but before the job is
marked done (``"after-write"``); tests inject one that sleeps, so they can ``kill -9``
the worker at a known point (``main(argv, faults=f)`` runs the process with it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._argtypes import pick
from ..errors import DpevalError, DpevalWarning
from .db import DEFAULT_SPLIT, Database, Submission, default_db_path, uploads_dir
from .store import entries_dir, write_entry
from .submit import DEFAULT_RESAMPLES

__all__ = ["EXIT_LOCKED", "FAULT_PHASES", "ScoringWorker", "find_entry", "main"]

log = logging.getLogger(__name__)

EXIT_LOCKED = 3
MAX_ERROR_CHARS = 500
FAULT_PHASES = ("after-claim", "after-write")


def find_entry(store: str | os.PathLike[str], instance: str, sub_id: int) -> str | None:
    """Id of the entry written for submission ``sub_id`` of server ``instance``, if any."""
    folder = entries_dir(store)
    if not folder.is_dir():
        return None
    for p in sorted(folder.glob("*.json")):
        if p.name.startswith("."):
            continue
        try:
            tag = json.loads(p.read_text(encoding="utf-8")).get("server") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if tag.get("instance") == instance and tag.get("submission_id") == sub_id:
            return p.stem
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ScoringWorker:
    """Claims and scores jobs one at a time (see the module docstring).

    Parameters
    ----------
    store, gt : path
        Leaderboard store and hidden ground-truth JSON.
    db_path : path, optional
        Default ``<store>/.server/server.db``.
    split : str
        Split name written into entries.
    resamples : int
        Bootstrap resamples of the intervals.
    max_attempts : int
        Claims of one job before it is marked failed.
    scheduler : str, optional
        Score on this Dask cluster (:mod:`dpeval.leaderboard.pool`), one job per Dask
        worker at a time; this process still claims, writes and finishes every job.
    faults : callable, optional
        ``faults(phase, job)`` is called at each of :data:`FAULT_PHASES` (see the module
        docstring); default none. Tests pass one that sleeps or raises.
    """

    def __init__(
        self,
        store: str | os.PathLike[str],
        gt: str | os.PathLike[str],
        db_path: str | os.PathLike[str] | None = None,
        *,
        split: str = DEFAULT_SPLIT,
        resamples: int = DEFAULT_RESAMPLES,
        template: str = "open",
        max_attempts: int = 3,
        scheduler: str | None = None,
        faults: Callable[[str, Submission], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.faults = faults
        self.store = Path(store)
        self.gt_path = Path(gt)
        self.db = Database(db_path or default_db_path(store))
        self.split = split
        self.resamples = resamples
        self.template = template
        self.max_attempts = max_attempts
        self._gt: Any = None
        self._lock_fd: int | None = None

    def lock(self) -> bool:
        """Take the single-worker lock; False if another worker holds it."""
        import fcntl  # POSIX only; imported here so the package imports everywhere

        fd = os.open(f"{self.db.path}.worker.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def recover(self) -> list[int]:
        """Requeue orphaned ``scoring`` jobs (all of them when holding the lock)."""
        ids = self.db.requeue_orphans(None if self._lock_fd is not None else _pid_alive)
        if ids:
            log.warning("requeued submissions left in 'scoring' by a dead worker: %s", ids)
        return ids

    def ground_truth(self) -> Any:
        """The hidden GT, loaded once, its ``source`` replaced so messages never name it."""
        if self._gt is None:
            from ..formats import load_ground_truth

            g = load_ground_truth(self.gt_path)
            self._gt = dataclasses.replace(g, source="the ground truth")
        return self._gt

    def _clean(self, message: str, upload: Path) -> str:
        text = " ".join(str(message).split())
        for path, label in (
            (upload, "upload"),
            (self.gt_path, "the ground truth"),
            (self.store, "<store>"),
        ):
            for form in {str(path), str(path.resolve()), str(path.absolute())}:
                text = text.replace(form, label)
        text = re.sub(r"(?<![\w:/])(/[\w.-]+){2,}", "<path>", text)  # any other absolute path
        return text[:MAX_ERROR_CHARS]

    def _fault_point(self, phase: str, job: Submission) -> None:
        if self.faults is not None:
            self.faults(phase, job)

    def score(self, job: Submission, build: Any = None) -> None:
        """Score one claimed job and mark it done or failed (never raises on bad input).

        ``build`` replaces :func:`~dpeval.leaderboard.submit.build_entry` (the Dask pool
        runs it on a cluster worker)."""
        from .submit import build_entry

        build = build or build_entry
        self._fault_point("after-claim", job)
        found = find_entry(self.store, self.db.instance, job.id)
        if found:
            log.warning("submission %s already has entry %s; adopting it", job.id, found)
            self.db.finish(job.id, entry=found)
            return
        upload = uploads_dir(self.store) / job.file
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DpevalWarning)
                entry = build(
                    str(upload),
                    self.ground_truth(),
                    name=job.name,
                    team=job.team,
                    url=job.url,
                    description=job.description,
                    split=self.split,
                    boxes=job.boxes,  # type: ignore[arg-type]
                    resamples=self.resamples,
                    template=self.template,
                )
            entry["server"] = {"instance": self.db.instance, "submission_id": job.id}
            written = write_entry(self.store, entry)
        except DpevalError as exc:
            self.db.finish(job.id, error=self._clean(str(exc), upload))
            return
        except RecursionError:
            self.db.finish(job.id, error="upload: malformed JSON (nested too deeply)")
            return
        except MemoryError:
            self.db.finish(job.id, error="upload: too large to score within the memory limit")
            return
        except Exception:
            log.exception("submission %s: unexpected error while scoring", job.id)
            self.db.finish(job.id, error="internal error while scoring; contact the organisers")
            return
        self._fault_point("after-write", job)
        self.db.finish(job.id, entry=written.id)
        log.info("submission %s scored: entry %s", job.id, written.id)

    def run(self, *, once: bool = False, poll_s: float = 1.0, parent_pid: int | None = None):
        """Loop: claim -> score. ``once``: stop when the queue is empty.

        ``parent_pid``: exit when the supervising process is gone. With a
        ``scheduler``, jobs are scored on the Dask cluster (:class:`~.pool.PoolScorer`).
        """
        if self.scheduler:
            from ..distributed import open_client
            from .pool import PoolScorer

            with open_client(self.scheduler) as client:
                pool = PoolScorer(self, client)
                return pool.run(once=once, poll_s=poll_s, parent_pid=parent_pid)
        while True:
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("supervisor %s is gone; worker exits", parent_pid)
                return
            job = self.db.claim_next(os.getpid(), self.max_attempts)
            if job is None:
                if once:
                    return
                time.sleep(poll_s)
                continue
            self.score(job)


def main(
    argv: list[str] | None = None, *, faults: Callable[[str, Submission], None] | None = None
) -> int:
    """Command line of the worker process (see the module docstring).

    ``faults`` is passed to :class:`ScoringWorker` (tests start the process through a
    script that calls ``main(argv, faults=...)``)."""
    ap = argparse.ArgumentParser(prog="python -m dpeval.leaderboard.worker")
    ap.add_argument("--store", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--db")
    ap.add_argument("--split", default=DEFAULT_SPLIT)
    ap.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    ap.add_argument("--template", default="open")
    ap.add_argument("--max-attempts", type=int, default=3)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--once", action="store_true", help="exit when the queue is empty")
    ap.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--scheduler", help="score on this Dask cluster (address or local:N)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="dpeval worker: %(levelname)s: %(message)s")
    with contextlib.suppress(OSError):
        os.nice(args.nice)
    try:
        worker = ScoringWorker(
            args.store,
            args.gt,
            args.db,
            faults=faults,
            **pick(args, "split", "resamples", "template", "max_attempts", "scheduler"),
        )
    except DpevalError as exc:
        log.error("%s", exc)
        return 2
    if not worker.lock():
        log.error("another worker holds %s.worker.lock; exiting", worker.db.path)
        return EXIT_LOCKED
    worker.recover()
    try:
        worker.ground_truth()
    except DpevalError as exc:
        log.error("cannot read the ground truth: %s", exc)
        return 2
    worker.run(once=args.once, poll_s=args.poll, parent_pid=args.parent_pid)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
