"""Leaderboard server database: teams, tokens and the submission queue in SQLite.

(Over 500 lines: one cohesive SQLite schema and transaction layer; splitting it
would couple the halves through shared transaction helpers.)

In: admin commands (:func:`Database.add_team`, ...), accepted uploads from
:mod:`dpeval.leaderboard.server`, claims from :mod:`dpeval.leaderboard.worker`.
Out: rows that survive a crash of either process.

Design
------
- One file (default ``<store>/.server/server.db``) in WAL mode, ``synchronous=FULL``
  (a commit survives a power cut), ``busy_timeout`` on every connection, foreign keys on.
  A connection is opened per operation, so the module is safe from any thread or process.
- The schema is versioned in ``meta(key, value)`` (``schema_version``, plus a random
  ``instance`` id that the worker writes into every entry it scores, see
  :mod:`dpeval.leaderboard.worker`). Opening a newer schema is refused.
- Every query is parameterised; no SQL text is ever built from user data.
- Tokens: ``secrets.token_urlsafe(32)`` (256 bits), shown once by :meth:`add_team`;
  only ``sha256(token)`` is stored, so a stolen database holds no usable token.
- Writers that must see a consistent state use ``BEGIN IMMEDIATE`` (the write lock is
  taken before the first read): :meth:`add_submission` (rate and queue limits, insert
  and placing the upload file happen in one transaction) and :meth:`claim_next` (at most
  one worker gets a job).
- Rate accounting: a team's submissions created in the last ``window_s`` seconds
  (24 h by default), whatever their state, count against its limit.

Tables
------
``teams(id, name UNIQUE, token_hash UNIQUE, created, revoked)``;
``submissions(id, team_id, name, url, description, boxes, state, created, started,
finished, attempts, worker_pid, file, size, sha256, error, entry)`` with ``state`` one of
``queued | scoring | done | failed``. Times are UNIX seconds (UTC).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DpevalError, ParamsError
from .text import has_control

__all__ = [
    "DEFAULT_SPLIT",
    "SCHEMA_VERSION",
    "STATES",
    "Database",
    "LimitError",
    "Submission",
    "Team",
    "check_team_name",
    "default_db_path",
    "hash_token",
    "row_dict",
    "uploads_dir",
]

DEFAULT_SPLIT = "test"
"""Split name of a served benchmark's hidden ground truth (server and worker)."""
SCHEMA_VERSION = 1
STATES = ("queued", "scoring", "done", "failed")
BUSY_TIMEOUT_MS = 30_000
MAX_TEAM_CHARS = 64
DAY_S = 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS teams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id INTEGER NOT NULL REFERENCES teams(id),
    name TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    boxes TEXT NOT NULL DEFAULT 'detected',
    state TEXT NOT NULL CHECK (state IN ('queued', 'scoring', 'done', 'failed')),
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    file TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    error TEXT,
    entry TEXT
);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions(state, id);
CREATE INDEX IF NOT EXISTS submissions_team ON submissions(team_id, created);
"""


class LimitError(DpevalError):
    """A rate limit or the queue cap refused a submission (HTTP 429)."""


@dataclass(frozen=True)
class Team:
    """A registered team (``revoked``: UNIX time or None)."""

    id: int
    name: str
    created: float
    revoked: float | None


@dataclass(frozen=True)
class Submission:
    """One row of ``submissions`` (see the module docstring)."""

    id: int
    team_id: int
    team: str
    name: str
    url: str
    description: str
    boxes: str
    state: str
    created: float
    started: float | None
    finished: float | None
    attempts: int
    worker_pid: int | None
    file: str
    size: int
    sha256: str
    error: str | None
    entry: str | None


def hash_token(token: str) -> str:
    """sha256 hex digest of a token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def default_db_path(store: str | os.PathLike[str]) -> Path:
    """``<store>/.server/server.db``."""
    return Path(store) / ".server" / "server.db"


def uploads_dir(store: str | os.PathLike[str]) -> Path:
    """``<store>/.server/uploads`` (upload files, named ``<submission id>.json``)."""
    return Path(store) / ".server" / "uploads"


def check_team_name(name: str) -> str:
    """1-64 printable characters, not only spaces; returned stripped.

    Raises
    ------
    ParamsError
        Empty, too long, or with control characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise ParamsError("team name must not be empty")
    name = name.strip()
    if len(name) > MAX_TEAM_CHARS or has_control(name):
        raise ParamsError(
            f"team name {name[:80]!r} must be 1-{MAX_TEAM_CHARS} characters without "
            "control characters"
        )
    return name


_SUB_COLUMNS = (
    "s.id, s.team_id, t.name, s.name, s.url, s.description, s.boxes, s.state, s.created, "
    "s.started, s.finished, s.attempts, s.worker_pid, s.file, s.size, s.sha256, s.error, "
    "s.entry"
)
_SUB_FROM = f"SELECT {_SUB_COLUMNS} FROM submissions s JOIN teams t ON t.id = s.team_id"


class Database:
    """The server database at ``path`` (created with its folder on first use).

    Parameters
    ----------
    path : path
        SQLite file.

    Raises
    ------
    ParamsError
        The file holds a newer schema than this dpeval knows.

    Example
    -------
    >>> db = Database("lb/.server/server.db")  # doctest: +SKIP
    >>> team_id, token = db.add_team("Lab")  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.path.parent, 0o700)
        self.instance = self._init()

    # ------------------------------------------------------------------ connections

    @contextlib.contextmanager
    def connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection; with ``write=True`` inside ``BEGIN IMMEDIATE`` … ``COMMIT``."""
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA synchronous = FULL")
            if not write:
                yield con
                return
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    def _init(self) -> str:
        with self.connect() as con:  # WAL cannot be switched on inside a transaction
            con.execute("PRAGMA journal_mode = WAL")
        with self.connect(write=True) as con:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('instance', ?)",
                    (str(SCHEMA_VERSION), secrets.token_hex(8)),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise ParamsError(
                    f"{self.path}: database schema {row[0]} is newer than this dpeval's "
                    f"({SCHEMA_VERSION}); upgrade dpeval"
                )
            instance = con.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        return str(instance[0])

    # ------------------------------------------------------------------ teams

    def add_team(self, name: str) -> tuple[int, str]:
        """Register a team; return ``(team id, token)``. The token is not stored.

        Raises
        ------
        ParamsError
            A bad name, or a team of that name exists.
        """
        name = check_team_name(name)
        token = secrets.token_urlsafe(32)
        try:
            with self.connect(write=True) as con:
                cur = con.execute(
                    "INSERT INTO teams (name, token_hash, created) VALUES (?, ?, ?)",
                    (name, hash_token(token), time.time()),
                )
                team_id = int(cur.lastrowid or 0)
        except sqlite3.IntegrityError:
            raise ParamsError(f"a team named {name!r} exists; choose another name") from None
        return team_id, token

    def teams(self) -> list[Team]:
        """Every team, by id."""
        with self.connect() as con:
            rows = con.execute("SELECT id, name, created, revoked FROM teams ORDER BY id")
            return [Team(*r) for r in rows.fetchall()]

    def revoke_team(self, name: str) -> Team:
        """Revoke a team's token (its submissions stay).

        Raises
        ------
        ParamsError
            No such team.
        """
        with self.connect(write=True) as con:
            cur = con.execute(
                "UPDATE teams SET revoked = COALESCE(revoked, ?) WHERE name = ?",
                (time.time(), name),
            )
            if cur.rowcount != 1:
                raise ParamsError(f"no team named {name!r}; see `dpeval leaderboard admin "
                                  "list-teams`")  # fmt: skip
            row = con.execute(
                "SELECT id, name, created, revoked FROM teams WHERE name = ?", (name,)
            ).fetchone()
        return Team(*row)

    def team_for_token(self, token: str) -> Team | None:
        """The team whose token this is (revoked ones included), or None."""
        with self.connect() as con:
            row = con.execute(
                "SELECT id, name, created, revoked FROM teams WHERE token_hash = ?",
                (hash_token(token),),
            ).fetchone()
        return Team(*row) if row else None

    # ------------------------------------------------------------------ submissions

    def check_limits(
        self, con: sqlite3.Connection, team_id: int, per_team: int, queue_cap: int,
        window_s: float = DAY_S,
    ) -> None:  # fmt: skip
        """Raise :class:`LimitError` if the team's window or the queue is full."""
        n = con.execute(
            "SELECT COUNT(*) FROM submissions WHERE team_id = ? AND created > ?",
            (team_id, time.time() - window_s),
        ).fetchone()[0]
        if n >= per_team:
            raise LimitError(
                f"rate limit: {per_team} submissions per {window_s / 3600:g} h per team; "
                "try again later"
            )
        q = con.execute(
            "SELECT COUNT(*) FROM submissions WHERE state IN ('queued', 'scoring')"
        ).fetchone()[0]
        if q >= queue_cap:
            raise LimitError(f"the queue is full ({queue_cap} waiting); try again later")

    def precheck(self, team_id: int, per_team: int, queue_cap: int) -> None:
        """:meth:`check_limits` without a transaction (fast refusal before validation)."""
        with self.connect() as con:
            self.check_limits(con, team_id, per_team, queue_cap)

    def add_submission(
        self,
        team_id: int,
        fields: dict[str, str],
        *,
        size: int,
        sha256: str,
        place_file: Callable[[int], str],
        per_team: int,
        queue_cap: int,
    ) -> int:
        """Queue a submission atomically; return its id.

        Inside one ``BEGIN IMMEDIATE`` transaction: check the limits, insert the row,
        call ``place_file(id)`` (moves the upload to its final, id-based name and
        returns that name), record the name, commit. If anything fails the row is rolled
        back and the caller removes the file, so a row exists iff its file does.

        Raises
        ------
        LimitError
            Rate limit or queue cap.
        """
        with self.connect(write=True) as con:
            self.check_limits(con, team_id, per_team, queue_cap)
            cur = con.execute(
                "INSERT INTO submissions (team_id, name, url, description, boxes, state, "
                "created, size, sha256) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (
                    team_id,
                    fields["name"],
                    fields.get("url", ""),
                    fields.get("description", ""),
                    fields.get("boxes", "detected"),
                    time.time(),
                    size,
                    sha256,
                ),
            )
            sub_id = int(cur.lastrowid or 0)
            name = place_file(sub_id)
            con.execute("UPDATE submissions SET file = ? WHERE id = ?", (name, sub_id))
        return sub_id

    def get(self, sub_id: int) -> Submission | None:
        """One submission, or None."""
        with self.connect() as con:
            row = con.execute(f"{_SUB_FROM} WHERE s.id = ?", (sub_id,)).fetchone()
        return Submission(*row) if row else None

    def submissions(
        self, team_id: int | None = None, state: str | None = None, limit: int = 1000
    ) -> list[Submission]:
        """Submissions, newest first, optionally of one team and/or state."""
        where, args = [], []
        if team_id is not None:
            where.append("s.team_id = ?")
            args.append(team_id)
        if state is not None:
            where.append("s.state = ?")
            args.append(state)
        sql = _SUB_FROM + (" WHERE " + " AND ".join(where) if where else "")
        with self.connect() as con:
            rows = con.execute(f"{sql} ORDER BY s.id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Submission(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of submissions per state."""
        with self.connect() as con:
            rows = con.execute("SELECT state, COUNT(*) FROM submissions GROUP BY state")
            found = dict(rows.fetchall())
        return {s: int(found.get(s, 0)) for s in STATES}

    def files(self) -> set[str]:
        """Upload file names referenced by rows."""
        with self.connect() as con:
            return {r[0] for r in con.execute("SELECT file FROM submissions WHERE file != ''")}

    # ------------------------------------------------------------------ worker side

    def claim_next(self, pid: int, max_attempts: int = 3) -> Submission | None:
        """Atomically move the oldest queued submission to ``scoring`` and return it.

        A job already tried ``max_attempts`` times (the worker died or was killed on it
        each time) is marked failed instead and the next one is tried.
        """
        while True:
            with self.connect(write=True) as con:
                row = con.execute(
                    "SELECT id, attempts FROM submissions WHERE state = 'queued' "
                    "ORDER BY id LIMIT 1"
                ).fetchone()
                if row is None:
                    return None
                sub_id, attempts = row
                now = time.time()
                if attempts >= max_attempts:
                    con.execute(
                        "UPDATE submissions SET state = 'failed', finished = ?, worker_pid = "
                        "NULL, error = ? WHERE id = ?",
                        (
                            now,
                            f"scoring did not finish after {attempts} attempts (time limit "
                            "or crash); contact the organisers",
                            sub_id,
                        ),
                    )
                    continue
                con.execute(
                    "UPDATE submissions SET state = 'scoring', started = ?, worker_pid = ?, "
                    "attempts = attempts + 1 WHERE id = ? AND state = 'queued'",
                    (now, pid, sub_id),
                )
                got = con.execute(f"{_SUB_FROM} WHERE s.id = ?", (sub_id,)).fetchone()
            return Submission(*got)

    def requeue_orphans(self, is_alive: Callable[[int], bool] | None = None) -> list[int]:
        """Put ``scoring`` rows whose worker is gone back in the queue; return their ids.

        ``is_alive(pid)``: None requeues every ``scoring`` row (right when the caller
        holds the single-worker lock, so no other worker can own one).
        """
        with self.connect(write=True) as con:
            rows = con.execute(
                "SELECT id, worker_pid FROM submissions WHERE state = 'scoring'"
            ).fetchall()
            ids = [i for i, pid in rows if is_alive is None or pid is None or not is_alive(pid)]
            for i in ids:
                con.execute(
                    "UPDATE submissions SET state = 'queued', worker_pid = NULL "
                    "WHERE id = ? AND state = 'scoring'",
                    (i,),
                )
        return ids

    def finish(self, sub_id: int, *, entry: str | None = None, error: str | None = None) -> None:
        """Mark a submission done (``entry``: entry id) or failed (``error``: one line)."""
        state = "failed" if error is not None else "done"
        with self.connect(write=True) as con:
            con.execute(
                "UPDATE submissions SET state = ?, finished = ?, worker_pid = NULL, "
                "entry = ?, error = ? WHERE id = ?",
                (state, time.time(), entry, error, sub_id),
            )

    def requeue(self, sub_id: int) -> None:
        """Admin: queue a failed (or done) submission again with its attempts reset.

        Raises
        ------
        ParamsError
            No such submission, or it is queued or being scored.
        """
        with self.connect(write=True) as con:
            cur = con.execute(
                "UPDATE submissions SET state = 'queued', attempts = 0, error = NULL, "
                "finished = NULL, worker_pid = NULL WHERE id = ? AND state IN "
                "('failed', 'done')",
                (sub_id,),
            )
            if cur.rowcount != 1:
                raise ParamsError(f"submission {sub_id} does not exist or is not finished")

    def scoring_since(self) -> tuple[int, float, int | None] | None:
        """``(id, started, worker_pid)`` of the job being scored, if any."""
        with self.connect() as con:
            row = con.execute(
                "SELECT id, started, worker_pid FROM submissions WHERE state = 'scoring' "
                "ORDER BY started LIMIT 1"
            ).fetchone()
        return None if row is None else (int(row[0]), float(row[1] or 0), row[2])


def row_dict(s: Submission) -> dict[str, Any]:
    """The fields a team may see about its own submission (no server paths)."""

    def iso(t: float | None) -> str | None:
        return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return {
        "id": s.id,
        "team": s.team,
        "name": s.name,
        "url": s.url,
        "description": s.description,
        "boxes": s.boxes,
        "state": s.state,
        "created": iso(s.created),
        "started": iso(s.started),
        "finished": iso(s.finished),
        "attempts": s.attempts,
        "size": s.size,
        "sha256": s.sha256,
        "error": s.error,
        "entry": s.entry,
    }
