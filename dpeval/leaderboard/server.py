"""Leaderboard web service for a benchmark with hidden ground truth (Flask + waitress).

In: a store (public entries), the hidden ground-truth JSON and the server database
(:mod:`dpeval.leaderboard.db`). Out: HTTP routes; accepted uploads are queued for the
single scoring worker. :func:`create_app` configures the Flask app and registers the
Blueprint of :mod:`dpeval.leaderboard.views`; uploads are checked by
:mod:`dpeval.leaderboard.upload`; :func:`dpeval.leaderboard.supervisor.serve` runs the
app with waitress next to the supervised worker. Pages are the Jinja templates of
``templates/`` (autoescaped), the leaderboard page the same ``board.html`` as ``dpeval
leaderboard render`` with its navigation block filled (``served_board.html``). Flask is
imported only by :func:`create_app` (the ``serve`` extra).

Routes
------
``GET /``
    Public leaderboard: the entries of the store scored on *this* ground truth (same
    GT sha256), ranked and rendered like ``dpeval leaderboard render``.
``POST /api/submissions``
    ``Authorization: Bearer TOKEN``; multipart form with ``file`` (challenge JSON,
    the COCO DensePose results list) and ``name`` (required), ``url``, ``description``,
    ``boxes`` (``detected`` or ``gt``). ``202`` with ``{"id", "state", ...}``.
``GET /api/submissions``, ``GET /api/submissions/<id>``
    The team's own submissions (JSON); another team's id is ``404``.
``GET /submissions``, ``GET /submissions/<id>``
    The same as HTML pages. Browsers sign in at ``/login`` with their token, which is
    then kept in an ``HttpOnly``, ``SameSite=Strict`` cookie (``POST /logout`` drops
    it); an ``Authorization: Bearer`` header works too. Tokens are never read from URLs
    (they would end up in logs and browser history).
``GET /healthz``
    ``{"ok": true, "queued": n, "worker": {...}}``; ``503`` with ``"ok": false`` (and a
    banner on ``GET /``) when the supervised scoring worker keeps dying right after it
    starts (see :meth:`~dpeval.leaderboard.supervisor.Supervisor.health`).

Security decisions
------------------
- Authentication: a missing or malformed ``Authorization`` header or an unknown token
  is ``401`` (with ``WWW-Authenticate: Bearer``), a revoked team ``403``. The cookie
  only gives access to the read-only pages; uploads need the header, so there is no
  cross-site request forgery on uploads.
- Uploads are written under ``<store>/.server/uploads/<id>.json``: the name is chosen by
  the server; the client's file name is only checked (no path separators, ``..`` or
  control characters: ``400``) and never used.
- Limits: ``MAX_CONTENT_LENGTH`` (``413``), at most ``per_team_per_day`` submissions per
  team in 24 h and ``queue_cap`` jobs waiting (``429``). They are checked cheaply
  before validation and again atomically when the row is inserted.
- Validation before queueing (``400``, nothing stored): UTF-8 JSON, nesting depth,
  a list of challenge detections whose keys, numbers and PNGs are checked by
  dpeval's readers (headers first, 40 M pixel cap; every ``uv_shape`` no larger than
  its image, so a decompression bomb within the pixel cap is refused before inflating;
  then chunk CRCs and the zlib stream, inflated in 1 MiB steps and not kept), every
  image id and category in the ground truth, and the method fields (lengths, no control
  characters, http(s) URL). Pixels are decoded by the worker. One upload is validated at
  a time (a lock), which bounds the memory a burst of large uploads can take.
- Text fields are stored with parameterised SQL and shown through Jinja autoescaping
  (pages) or JSON; the leaderboard page escapes every entry field.
- The ground truth is never served: no route reads files other than entries, Flask's
  static route is off, and error pages are one-line messages without paths or
  tracebacks (tracebacks go to the server log). Response headers forbid framing,
  MIME sniffing and referrers and set a strict Content-Security-Policy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DpevalError, FormatError
from .db import DEFAULT_SPLIT, Database, default_db_path, uploads_dir
from .rank import DEFAULT_METRIC, METRICS, rank
from .render import board_context, render_page
from .store import check_method, entries_dir, read_entry

__all__ = ["DEFAULT_SPLIT", "FORM_OVERHEAD_BYTES", "AppState", "Limits", "create_app"]

log = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 1 << 20  # multipart framing and text fields on top of the file


@dataclass(frozen=True)
class Limits:
    """Server limits: upload bytes, submissions per team per 24 h, jobs waiting."""

    max_upload_bytes: int = 200 * 1024 * 1024
    per_team_per_day: int = 5
    queue_cap: int = 100


class AppState:
    """What the views share (``app.extensions["dpeval"]``): paths, database, limits,
    the ground truth's image ids, sizes, categories and checksum, the page cache, and
    the worker's supervisor (set by :func:`~dpeval.leaderboard.supervisor.serve`)."""

    def __init__(self, store: Path, gt: Path, db: Database, limits: Limits, split: str,
                 metric: str) -> None:  # fmt: skip
        from ..formats import load_ground_truth

        self.store, self.db, self.limits, self.split, self.metric = store, db, limits, split, metric
        g = load_ground_truth(gt)
        self.gt_sha256 = g.sha256
        self.images = dict(g.images)
        self.categories = dict(g.categories)
        self.supervisor: Any = None  # anything with health() -> dict; None: no worker
        self.uploads = uploads_dir(store)
        self.uploads.mkdir(parents=True, exist_ok=True)
        self._board: tuple[Any, str] | None = None
        self._board_lock = threading.Lock()

    def sweep(self) -> list[str]:
        """Remove upload files without a row (a crash between move and commit)."""
        known = self.db.files()
        gone = []
        for p in self.uploads.iterdir():
            if p.is_file() and p.name not in known:
                with contextlib.suppress(OSError):
                    p.unlink()
                    gone.append(p.name)
        return gone

    def board(self, banner: str = "") -> str:
        """The leaderboard page (``served_board.html``): the entries scored on this
        ground truth, with ``banner`` (scoring is down) when not empty; re-rendered when
        the entries folder or the banner changes."""
        folder = entries_dir(self.store)
        names = tuple(sorted(p.name for p in folder.glob("*.json"))) if folder.is_dir() else ()
        with self._board_lock:
            if self._board is not None and self._board[0] == (names, banner):
                return self._board[1]
            entries = []
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    e = read_entry(folder / name)
                except DpevalError:
                    log.exception("skipping a malformed entry on the leaderboard page")
                    continue
                if e.data["inputs"]["ground_truth_sha256"] == self.gt_sha256:
                    entries.append(e)
            context = board_context(rank(entries, self.metric))
            page = render_page("served_board.html", **context, split=self.split, banner=banner)
            self._board = ((names, banner), page)
            return page


def create_app(
    store: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    db_path: str | os.PathLike[str] | None = None,
    *,
    limits: Limits | None = None,
    split: str = DEFAULT_SPLIT,
    metric: str = DEFAULT_METRIC,
) -> Any:
    """Build the Flask application (see the module docstring for the routes).

    Parameters
    ----------
    store : path
        Leaderboard store (entries are read from ``<store>/entries``).
    gt : path
        Hidden ground-truth JSON (read once for image ids, sizes and checksum).
    db_path : path, optional
        Default ``<store>/.server/server.db``.
    limits : Limits, optional
    split : str
        Split name of the hidden ground truth (checked like an entry's split).
    metric : str
        Ranking metric of the leaderboard page.

    Returns
    -------
    flask.Flask

    Raises
    ------
    FormatError
        Unreadable ground truth or a bad split name.

    Example
    -------
    >>> app = create_app("leaderboard", "hidden/gt.json")  # doctest: +SKIP
    """
    from flask import Flask

    from .views import bp

    limits = limits or Limits()
    check_method({"name": "x"}, split, "--split")
    if metric not in METRICS:
        raise FormatError(f"metric {metric!r}; choose from {sorted(METRICS)}")
    store_p = Path(store)
    db = Database(db_path or default_db_path(store_p))
    state = AppState(store_p, Path(gt), db, limits, split, metric)
    swept = state.sweep()
    if swept:
        log.warning("removed %d upload file(s) without a database row", len(swept))

    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=limits.max_upload_bytes + FORM_OVERHEAD_BYTES)
    app.extensions["dpeval"] = state
    app.register_blueprint(bp)
    return app
