"""Leaderboard web service for a benchmark with hidden ground truth (Flask + waitress).

In: a store (public entries), the hidden ground-truth JSON and the server database
(:mod:`dpeval.leaderboard.db`). Out: HTTP routes; accepted uploads are queued for the
single scoring worker. :func:`create_app` builds the Flask app; :func:`dpeval.leaderboard.
worker.serve` runs it with waitress next to the supervised worker. Pages are Jinja
templates in ``templates/`` (autoescaped).

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
    starts (see :meth:`~dpeval.leaderboard.worker.Supervisor.health`).

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
import hashlib
import html
import logging
import os
import re
import secrets
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DpevalError, DpevalWarning, FormatError
from .db import Database, LimitError, Submission, Team, default_db_path, row_dict, uploads_dir
from .rank import DEFAULT_METRIC, METRICS
from .store import BOX_PROTOCOLS, check_method, entries_dir, read_entry

__all__ = ["COOKIE", "DEFAULT_SPLIT", "Limits", "check_upload", "create_app"]

log = logging.getLogger(__name__)

COOKIE = "dpeval_token"
DEFAULT_SPLIT = "test"
MAX_TOKEN_CHARS = 200
MAX_FILENAME_CHARS = 255
MAX_MESSAGE_CHARS = 500
FORM_OVERHEAD_BYTES = 1 << 20  # multipart framing and text fields on top of the file
_CHUNK = 1 << 20
_VALIDATE_LOCK = threading.Lock()  # one validation at a time: bounds memory; warnings are global
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CSP_PAGE = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_CSP_BOARD = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Limits:
    """Server limits: upload bytes, submissions per team per 24 h, jobs waiting."""

    max_upload_bytes: int = 200 * 1024 * 1024
    per_team_per_day: int = 5
    queue_cap: int = 100


def _one_line(text: str) -> str:
    return " ".join(str(text).replace("<memory>", "upload").split())[:MAX_MESSAGE_CHARS]


def check_upload(
    raw: bytes, images: dict[int, Any], categories: dict[int, str] | None = None
) -> int:
    """Validate an uploaded challenge JSON without decoding pixels; return its detections.

    Changes the process-wide warning filters while it runs: the server calls it under a
    lock.

    Parameters
    ----------
    raw : bytes
        The uploaded file.
    images : dict[int, ImageInfo]
        The hidden ground truth's images (ids and sizes only).
    categories : dict[int, str], optional
        The hidden ground truth's categories (default ``{1: "person"}``).

    Raises
    ------
    FormatError
        One line naming the record and the problem (see the module docstring).
    """
    from ..formats import load_predictions
    from ..formats._validate import parse_json
    from ..formats.model import GroundTruth
    from .submit import check_predictions

    try:
        records = parse_json(raw, "upload")
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("upload: malformed JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. integers over Python's digit limit
        raise FormatError(f"upload: malformed JSON ({_one_line(str(exc))[:120]})") from None
    if not isinstance(records, list):
        raise FormatError(
            "upload: the top level must be a JSON list of detections {image_id, "
            "category_id, bbox, score, uv_shape, uv_data} (COCO DensePose challenge format)"
        )
    gt = GroundTruth(
        images=images,
        annotations=(),
        categories=dict(categories or {1: "person"}),
        source="the ground truth",
    )
    _precheck_sizes(records, images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DpevalWarning)
        preds = load_predictions(records, format="challenge-json")
        check_predictions(preds, gt)
    return len(preds.detections)


def _precheck_sizes(records: list[Any], images: dict[int, Any]) -> None:
    """Refuse maps larger than their image from ``uv_shape`` alone, before any inflating."""
    from ..formats.iuv_png import MAX_PIXELS
    from .submit import SIZE_TOLERANCE_PX

    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            continue  # the reader names it
        shape, img = rec.get("uv_shape"), images.get(rec.get("image_id"))  # type: ignore
        if img is None or not isinstance(shape, list) or len(shape) != 3:
            continue
        h, w = shape[1], shape[2]
        if not all(isinstance(v, int) for v in (h, w)) or h * w > MAX_PIXELS:
            continue  # the reader names these (over the cap: "pixel cap")
        if h > img.height + SIZE_TOLERANCE_PX or w > img.width + SIZE_TOLERANCE_PX:
            raise FormatError(
                f"upload: record {i} (image_id={rec['image_id']}): IUV map is {h}x{w} (HxW) "
                f"but the image is {img.height}x{img.width}; maps cover the box, so they "
                "cannot exceed it"
            )


class _State:
    """What the routes share: paths, database, GT images and checksum, page cache."""

    def __init__(self, store: Path, gt: Path, db: Database, limits: Limits, split: str,
                 metric: str) -> None:  # fmt: skip
        from ..formats import load_ground_truth

        self.store, self.db, self.limits, self.split, self.metric = store, db, limits, split, metric
        g = load_ground_truth(gt)
        self.gt_sha256 = g.sha256
        self.images = dict(g.images)
        self.categories = dict(g.categories)
        self.supervisor: Any = None  # set by worker.serve; None when no worker is supervised
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

    def board(self) -> str:
        """The leaderboard page, re-rendered when the entries folder changes."""
        from .rank import rank
        from .render import render_html

        folder = entries_dir(self.store)
        names = tuple(sorted(p.name for p in folder.glob("*.json"))) if folder.is_dir() else ()
        with self._board_lock:
            if self._board is not None and self._board[0] == names:
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
            nav = (
                '<p><a href="/submissions">My submissions</a> · <a href="/login">Sign in</a>'
                f" · split <code>{html.escape(self.split)}</code> (hidden ground truth)</p>"
            )
            page = render_html(rank(entries, self.metric))
            page = page.replace("</h1>\n", "</h1>\n" + nav + "\n", 1)
            self._board = (names, page)
            return page


def _headline(store: Path, entry_id: str | None) -> dict[str, str]:
    """``{metric title: "59.6 [55.6, 70.6]"}`` for an own entry (empty if unreadable)."""
    if not entry_id or not re.fullmatch(r"[A-Za-z0-9-]+", entry_id):
        return {}
    try:
        e = read_entry(entries_dir(store) / f"{entry_id}.json")
    except (DpevalError, OSError):
        return {}
    out = {}
    for block, key, iv_key, title in METRICS.values():
        v = e.data["score"]["metrics"].get(block, {}).get(key)
        if v is None:
            continue
        iv = e.data["intervals"].get(iv_key) or {}
        lo, hi = iv.get("ci_low"), iv.get("ci_high")
        ci = "" if lo is None or hi is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
        out[title] = f"{100 * v:.1f}{ci}"
    return out


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
    from flask import Flask, jsonify, make_response, redirect, render_template, request
    from werkzeug.exceptions import HTTPException

    limits = limits or Limits()
    check_method({"name": "x"}, split, "--split")
    if metric not in METRICS:
        raise FormatError(f"metric {metric!r}; choose from {sorted(METRICS)}")
    store_p = Path(store)
    db = Database(db_path or default_db_path(store_p))
    state = _State(store_p, Path(gt), db, limits, split, metric)
    swept = state.sweep()
    if swept:
        log.warning("removed %d upload file(s) without a database row", len(swept))

    app = Flask(__name__, static_folder=None, template_folder="templates")
    app.config.update(MAX_CONTENT_LENGTH=limits.max_upload_bytes + FORM_OVERHEAD_BYTES)
    app.extensions["dpeval"] = state

    def is_api() -> bool:
        return request.path.startswith("/api/")

    def page(template: str, title: str, status: int = 200, **ctx: Any):
        """An HTML page (Jinja autoescapes every value of ``ctx``)."""
        return make_response(render_template(template, title=title, **ctx), status)

    def error(status: int, message: str, **headers: str):
        message = _one_line(message)
        if is_api():
            resp = make_response(jsonify(error=message), status)
        else:
            resp = page("message.html", f"Error {status}", status, message=message)
        resp.headers.update(headers)
        return resp

    class _Refused(Exception):
        def __init__(self, status: int, message: str, **headers: str) -> None:
            super().__init__(message)
            self.status, self.message, self.headers = status, message, headers

    @app.errorhandler(_Refused)
    def _refused(exc: _Refused):
        return error(exc.status, exc.message, **exc.headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        messages = {
            413: f"upload too large; at most {limits.max_upload_bytes} bytes",
            404: "not found",
            405: "method not allowed",
        }
        return error(exc.code or 500, messages.get(exc.code or 0, exc.name))

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(500, "internal server error")

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", _CSP_PAGE)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        if request.path != "/":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    def team(*, cookie: bool) -> Team:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _Refused(401, "malformed Authorization header; send 'Bearer TOKEN'",
                               **{"WWW-Authenticate": "Bearer"})  # fmt: skip
            token = token.strip()
        elif cookie and request.cookies.get(COOKIE):
            token = request.cookies[COOKIE]
        else:
            hint = "sign in at /login, or send " if cookie else "send "
            raise _Refused(401, f"authentication required; {hint}'Authorization: Bearer TOKEN'",
                           **{"WWW-Authenticate": "Bearer"})  # fmt: skip
        found = db.team_for_token(token) if len(token) <= MAX_TOKEN_CHARS else None
        if found is None:
            raise _Refused(401, "unknown token", **{"WWW-Authenticate": "Bearer"})
        if found.revoked is not None:
            raise _Refused(403, "this team's token was revoked; contact the organisers")
        return found

    def own(sub_id: int, t: Team) -> Submission:
        s = db.get(sub_id)
        if s is None or s.team_id != t.id:  # another team's submission does not exist
            raise _Refused(404, f"no submission {sub_id} for your team")
        return s

    @app.get("/")
    def board():
        page = state.board()
        health = state.supervisor.health() if state.supervisor is not None else None
        if health is not None and not health["ok"]:
            banner = f'<p role="alert"><strong>Scoring is down:</strong> ' \
                     f"{html.escape(health['message'])}</p>"  # fmt: skip
            page = page.replace("</h1>\n", "</h1>\n" + banner + "\n", 1)
        resp = make_response(page)
        resp.headers["Content-Security-Policy"] = _CSP_BOARD
        return resp

    @app.get("/healthz")
    def healthz():
        c = db.counts()
        queued = c["queued"] + c["scoring"]
        if state.supervisor is None:
            return jsonify(ok=True, queued=queued)
        health = state.supervisor.health()
        worker = {k: health[k] for k in ("ok", "restarts", "last_exit", "message")}
        return make_response(jsonify(ok=health["ok"], queued=queued, worker=worker),
                             200 if health["ok"] else 503)  # fmt: skip

    @app.post("/api/submissions")
    def upload():
        t = team(cookie=False)
        try:
            db.precheck(t.id, limits.per_team_per_day, limits.queue_cap)
        except LimitError as exc:
            raise _Refused(429, str(exc), **{"Retry-After": "3600"}) from None
        f = request.files.get("file")
        if f is None:
            raise _Refused(400, "no 'file' part; send the predictions as multipart field 'file'")
        fname = f.filename or ""
        if (
            len(fname) > MAX_FILENAME_CHARS
            or _CONTROL.search(fname)
            or "/" in fname
            or "\\" in fname
            or fname.startswith(".")
        ):
            raise _Refused(400, "the file name must be a plain name (no path, no leading dot)")
        form = request.form
        fields = {k: form.get(k, "") for k in ("name", "url", "description", "boxes")}
        fields["boxes"] = fields["boxes"] or "detected"
        if fields["boxes"] not in BOX_PROTOCOLS:
            raise _Refused(400, f"'boxes' must be one of {list(BOX_PROTOCOLS)}")
        method = {k: fields[k] for k in ("name", "url", "description")} | {"team": t.name}
        try:
            check_method(method, split, "submission")
        except FormatError as exc:
            raise _Refused(400, str(exc).split("; a leaderboard entry")[0]) from None
        tmp = state.uploads / f".tmp-{secrets.token_hex(8)}.part"
        placed: list[Path] = []
        try:
            digest, size = hashlib.sha256(), 0
            with open(tmp, "xb") as out:
                while chunk := f.stream.read(_CHUNK):
                    size += len(chunk)
                    if size > limits.max_upload_bytes:
                        raise _Refused(413, f"upload too large; at most "
                                       f"{limits.max_upload_bytes} bytes")  # fmt: skip
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise _Refused(400, "the file is empty")
            try:
                with _VALIDATE_LOCK:
                    n_dets = check_upload(tmp.read_bytes(), state.images, state.categories)
            except FormatError as exc:
                raise _Refused(400, str(exc)) from None

            def place(sub_id: int) -> str:
                name = f"{sub_id}.json"
                os.replace(tmp, state.uploads / name)
                placed.append(state.uploads / name)
                return name

            try:
                sub_id = db.add_submission(
                    t.id, fields, size=size, sha256=digest.hexdigest(), place_file=place,
                    per_team=limits.per_team_per_day, queue_cap=limits.queue_cap,
                )  # fmt: skip
            except LimitError as exc:
                raise _Refused(429, str(exc), **{"Retry-After": "3600"}) from None
            placed.clear()  # committed: the file now belongs to the row
        finally:
            for p in (tmp, *placed):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        log.info("team %s: submission %s queued (%d detections)", t.id, sub_id, n_dets)
        body = {
            "id": sub_id,
            "state": "queued",
            "detections": n_dets,
            "status_url": f"/api/submissions/{sub_id}",
            "page_url": f"/submissions/{sub_id}",
        }
        return jsonify(body), 202

    @app.get("/api/submissions")
    def api_list():
        t = team(cookie=False)
        return jsonify(team=t.name, submissions=[row_dict(s) for s in db.submissions(t.id)])

    @app.get("/api/submissions/<int:sub_id>")
    def api_get(sub_id: int):
        s = own(sub_id, team(cookie=False))
        return jsonify(row_dict(s) | {"scores": _headline(store_p, s.entry)})

    @app.get("/submissions")
    def html_list():
        t = team(cookie=True)
        rows = [row_dict(s) for s in db.submissions(t.id)]
        return page("list.html", "My submissions", team=t.name, rows=rows)

    @app.get("/submissions/<int:sub_id>")
    def html_get(sub_id: int):
        s = own(sub_id, team(cookie=True))
        d = row_dict(s)
        link = bool(re.match(r"^https?://[^\s]+$", d["url"], re.IGNORECASE))
        refresh = 10 if s.state in ("queued", "scoring") else 0
        scores = _headline(store_p, s.entry)
        return page("detail.html", f"Submission {s.id}", refresh=refresh, s=d, link=link,
                    scores=scores)  # fmt: skip

    @app.get("/login")
    def login_form():
        return page("login.html", "Sign in")

    @app.post("/login")
    def login():
        token = request.form.get("token", "").strip()
        found = db.team_for_token(token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
        if found is None or found.revoked is not None:
            return page("login.html", "Sign in", 401, message="unknown or revoked token")
        resp = redirect("/submissions", code=303)
        secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
        resp.set_cookie(COOKIE, token, max_age=30 * 24 * 3600, httponly=True,
                        samesite="Strict", secure=secure, path="/")  # fmt: skip
        return resp

    @app.post("/logout")
    def logout():
        resp = redirect("/", code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    return app
