"""Leaderboard hosting: :func:`serve` runs the web app and supervises one scoring worker.

In: a store, the hidden ground truth and the server database. Out: the Flask app of
:mod:`dpeval.leaderboard.server` served by waitress in this process and, through
:class:`Supervisor`, exactly one worker subprocess (:mod:`dpeval.leaderboard.worker`),
restarted if it dies; SIGTERM/SIGINT stop both (``dpeval leaderboard serve``).

Imports: this module sits above both ``server`` and ``worker``; neither imports it (the
app only sees a supervisor through ``app.extensions["dpeval"].supervisor``, duck-typed:
``health() -> dict``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .db import DEFAULT_SPLIT, Database, default_db_path
from .submit import DEFAULT_RESAMPLES

__all__ = ["WORKER_LAUNCHER", "Supervisor", "serve", "worker_command"]

log = logging.getLogger(__name__)

WORKER_LAUNCHER = ("-m", "dpeval.leaderboard.worker")
"""Arguments after the Python executable that start a worker (its options follow)."""


class Supervisor:
    """Keep exactly one worker process running (used by ``dpeval leaderboard serve``).

    A thread polls every second: a worker that exited is restarted (after a back-off
    that grows to 60 s while it keeps dying within 10 s of starting), and a worker
    stuck on one job for more than ``job_timeout_s`` is killed (the restarted worker
    requeues the job; after ``max_attempts`` it is marked failed).

    Parameters
    ----------
    command : list of str
        The worker command line.
    db : Database
    job_timeout_s : float
    """

    UNHEALTHY_AFTER = 3
    """Consecutive quick exits (within 10 s of starting) after which :meth:`health` says
    the worker is down (the server's ``/healthz`` answers 503 and the page shows it)."""

    def __init__(
        self,
        command: list[str],
        db: Database,
        job_timeout_s: float = 3600.0,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        import threading

        self.command = command
        self.db = db
        self.job_timeout_s = job_timeout_s
        self.cwd, self.env = cwd, env
        self.proc: Any = None
        self.restarts = 0
        self.quick_exits = 0
        self.last_exit: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dpeval-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, cwd=self.cwd, env=self.env
        )
        self._started = time.monotonic()
        log.info("worker started (pid %s)", self.proc.pid)

    def _loop(self) -> None:
        fails = 0
        while not self._stop.wait(1.0):
            code = self.proc.poll()
            if code is not None:
                quick = time.monotonic() - self._started < 10
                fails = fails + 1 if quick else 0
                self.quick_exits, self.last_exit = fails, code
                log.warning("worker pid %s exited with %s; restarting", self.proc.pid, code)
                if self._stop.wait(min(60.0, 2.0**fails - 1)):
                    return
                self.restarts += 1
                self._spawn()
                continue
            busy = self.db.scoring_since()
            if busy and busy[2] == self.proc.pid and time.time() - busy[1] > self.job_timeout_s:
                log.warning("submission %s ran over %.0f s; killing the worker", busy[0],
                            self.job_timeout_s)  # fmt: skip
                self.proc.kill()

    def health(self) -> dict[str, Any]:
        """``{"ok", "restarts", "quick_exits", "last_exit", "message"}`` of the worker.

        ``ok`` is False once the worker has exited :attr:`UNHEALTHY_AFTER` times in a
        row within 10 s of starting (e.g. it cannot import dpeval or read the ground
        truth); it turns True again when a worker stays up.
        """
        if self.quick_exits and self.proc is not None and self.proc.poll() is None:
            if time.monotonic() - self._started >= 10:
                self.quick_exits = 0  # this one stayed up
        ok = self.quick_exits < self.UNHEALTHY_AFTER
        message = "" if ok else (
            f"the scoring worker keeps exiting right after it starts ({self.quick_exits} times "
            f"in a row, last exit code {self.last_exit}); submissions wait in the queue. "
            "See the server log."
        )  # fmt: skip
        return {"ok": ok, "restarts": self.restarts, "quick_exits": self.quick_exits,
                "last_exit": self.last_exit, "message": message}  # fmt: skip

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop supervising and end the worker (SIGTERM, then SIGKILL)."""
        import subprocess

        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def worker_command(
    store: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    db_file: str | os.PathLike[str],
    *,
    split: str = DEFAULT_SPLIT,
    resamples: int = DEFAULT_RESAMPLES,
    scheduler: str | None = None,
    launcher: Sequence[str] = WORKER_LAUNCHER,
) -> tuple[list[str], str, dict[str, str]]:
    """The worker's command line, working directory and environment.

    ``launcher``: what follows the Python executable to start a worker that takes
    :func:`dpeval.leaderboard.worker.main`'s options (default ``-m
    dpeval.leaderboard.worker``; tests pass a script that injects fault points).

    The working directory does not matter: the worker runs in ``<store>/.server`` (no
    Python package there) with absolute paths, and ``PYTHONPATH`` starts with the
    directory that holds the ``dpeval`` package this process imported, so
    ``python -m dpeval.leaderboard.worker`` imports the same dpeval even when the
    server was started from a directory with a ``dpeval/`` folder (a source checkout)
    in it, which ``-m`` would otherwise put first on ``sys.path``.
    """
    import dpeval

    package_root = str(Path(dpeval.__file__).resolve().parent.parent)
    cwd = Path(db_file).resolve().parent
    cwd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable, *launcher,
        "--store", str(Path(store).resolve()), "--gt", str(Path(gt).resolve()),
        "--db", str(Path(db_file).resolve()), "--split", split,
        "--resamples", str(resamples), "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    if scheduler:
        command += ["--scheduler", scheduler]
    return command, str(cwd), env


def serve(
    store: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    db_path: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Any = None,
    split: str = DEFAULT_SPLIT,
    metric: str = "gpsm",
    resamples: int | None = None,
    threads: int = 4,
    job_timeout_s: float = 3600.0,
    on_ready: Callable[[str, int], None] | None = None,
    scheduler: str | None = None,
    worker_launcher: Sequence[str] = WORKER_LAUNCHER,
) -> None:
    """Serve the app with waitress and supervise one scoring worker until SIGTERM/SIGINT.

    ``on_ready(host, port)`` is called once the socket listens (``port=0`` picks a free
    one). Both signals stop the web server and then the worker. ``scheduler``: the
    worker scores on that Dask cluster (:mod:`dpeval.leaderboard.pool`).
    ``worker_launcher``: see :func:`worker_command`.
    """
    import signal

    import waitress

    from .server import FORM_OVERHEAD_BYTES, Limits, create_app

    limits = limits or Limits()
    db_file = Path(db_path or default_db_path(store))
    app = create_app(store, gt, db_file, limits=limits, split=split, metric=metric)
    server = waitress.create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=limits.max_upload_bytes + FORM_OVERHEAD_BYTES,
        ident="dpeval",
    )
    command, cwd, env = worker_command(
        store, gt, db_file, split=split, resamples=resamples or DEFAULT_RESAMPLES,
        scheduler=scheduler, launcher=worker_launcher,
    )  # fmt: skip
    supervisor = Supervisor(command, app.extensions["dpeval"].db, job_timeout_s, cwd=cwd, env=env)
    app.extensions["dpeval"].supervisor = supervisor

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)  # waitress's loop catches it and shuts its threads down

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    supervisor.start()
    try:
        if on_ready is not None:
            on_ready(server.effective_host, server.effective_port)
        server.run()
    finally:
        supervisor.stop()
        server.close()
        for s, handler in old.items():
            signal.signal(s, handler)
