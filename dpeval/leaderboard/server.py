"""Leaderboard web service for a benchmark with hidden ground truth (Flask + waitress).

In: a store (public entries), the hidden ground-truth JSON and the server database
(:mod:`dpeval.leaderboard.db`). Out: HTTP routes; accepted uploads are queued for the
single scoring worker (:mod:`dpeval.leaderboard.worker`).

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
    ``{"ok": true, "queued": n}``.

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
  a list of challenge detections whose keys, numbers and PNG headers are read by
  dpeval's readers (no pixel inflated; 40 M pixel cap), every image id in the ground
  truth, every map no larger than its image (so a decompression bomb within the pixel
  cap is refused too) and the method fields (lengths, no control characters, http(s)
  URL). Pixels are decoded by the worker.
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
from .db import Database, LimitError, Submission, Team, default_db_path, row_dict
from .rank import DEFAULT_METRIC, METRICS
from .store import BOX_PROTOCOLS, check_method, entries_dir, read_entry
from .worker import DEFAULT_SPLIT, uploads_dir

__all__ = ["COOKIE", "Limits", "check_upload", "create_app", "serve"]

log = logging.getLogger(__name__)

COOKIE = "dpeval_token"
MAX_TOKEN_CHARS = 200
MAX_FILENAME_CHARS = 255
MAX_MESSAGE_CHARS = 500
FORM_OVERHEAD_BYTES = 1 << 20  # multipart framing and text fields on top of the file
_CHUNK = 1 << 20
_WARN_LOCK = threading.Lock()  # warnings filters are process-wide
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


def check_upload(raw: bytes, images: dict[int, Any]) -> int:
    """Validate an uploaded challenge JSON without decoding pixels; return its detections.

    Parameters
    ----------
    raw : bytes
        The uploaded file.
    images : dict[int, ImageInfo]
        The hidden ground truth's images (ids and sizes only).

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
    gt = GroundTruth(images=images, annotations=(), source="the ground truth")
    with _WARN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DpevalWarning)
        preds = load_predictions(records, format="challenge-json")
        check_predictions(preds, gt)
    return len(preds.detections)


class _State:
    """What the routes share: paths, database, GT images and checksum, page cache."""

    def __init__(self, store: Path, gt: Path, db: Database, limits: Limits, split: str,
                 metric: str) -> None:  # fmt: skip
        from ..formats import load_ground_truth

        self.store, self.db, self.limits, self.split, self.metric = store, db, limits, split, metric
        g = load_ground_truth(gt)
        self.gt_sha256 = g.sha256
        self.images = dict(g.images)
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
            page = render_html(rank(entries, self.metric))
            self._board = (names, page)
            return page


_LAYOUT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{ title }}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}th,td{border-bottom:1px solid #ddd;padding:4px 8px;
text-align:left}th{background:#f4f4f4}.err{color:#a00}code{font-size:13px}</style>
</head><body><p><a href="/">Leaderboard</a> · <a href="/submissions">My submissions</a>
· <a href="/login">Sign in</a></p><h1>{{ title }}</h1>
@BODY@
</body></html>"""

_LIST = """{% if team %}<p>Team <b>{{ team }}</b>.</p>{% endif %}
{% if rows %}<table><tr><th>Id</th><th>Method</th><th>State</th><th>Created</th>
<th>Entry</th></tr>{% for r in rows %}<tr><td><a href="/submissions/{{ r.id }}">{{ r.id }}</a>
</td><td>{{ r.name }}</td><td>{{ r.state }}</td><td>{{ r.created }}</td>
<td><code>{{ r.entry or "" }}</code></td></tr>{% endfor %}</table>
{% else %}<p>No submissions yet.</p>{% endif %}"""

_DETAIL = """<table>
<tr><th>Team</th><td>{{ s.team }}</td></tr>
<tr><th>Method</th><td>{% if link %}<a href="{{ s.url }}" rel="noopener noreferrer nofollow">
{{ s.name }}</a>{% else %}{{ s.name }}{% endif %}</td></tr>
<tr><th>Description</th><td>{{ s.description }}</td></tr>
<tr><th>Boxes</th><td>{{ s.boxes }}</td></tr>
<tr><th>State</th><td><b>{{ s.state }}</b></td></tr>
<tr><th>Created</th><td>{{ s.created }}</td></tr>
<tr><th>Started</th><td>{{ s.started or "" }}</td></tr>
<tr><th>Finished</th><td>{{ s.finished or "" }}</td></tr>
<tr><th>Attempts</th><td>{{ s.attempts }}</td></tr>
<tr><th>Upload sha256</th><td><code>{{ s.sha256 }}</code> ({{ s.size }} bytes)</td></tr>
{% if s.error %}<tr><th>Error</th><td class="err">{{ s.error }}</td></tr>{% endif %}
{% if s.entry %}<tr><th>Entry</th><td><code>{{ s.entry }}</code></td></tr>{% endif %}
</table>
{% if metrics %}<h2>Scores</h2><table>{% for k, v in metrics.items() %}
<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}"""

_LOGIN = """<form method="post" action="/login"><label>Team token
<input type="password" name="token" size="50" autocomplete="off"></label>
<button type="submit">Sign in</button></form>
<p>The token is kept in an HttpOnly cookie for this site only.</p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>"""

_MESSAGE = """<p class="err">{{ message }}</p>"""


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
    from flask import Flask, jsonify, make_response, redirect, render_template_string, request
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

    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=limits.max_upload_bytes + FORM_OVERHEAD_BYTES)
    app.extensions["dpeval"] = state

    def is_api() -> bool:
        return request.path.startswith("/api/")

    def page(title: str, body: str, status: int = 200, refresh: int = 0, **ctx: Any):
        text = render_template_string(
            _LAYOUT.replace("@BODY@", body), title=title, refresh=refresh, **ctx
        )
        return make_response(text, status)

    def error(status: int, message: str, **headers: str):
        message = _one_line(message)
        if is_api():
            resp = make_response(jsonify(error=message), status)
        else:
            resp = page(f"Error {status}", _MESSAGE, status, message=message)
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
        resp = make_response(state.board())
        resp.headers["Content-Security-Policy"] = _CSP_BOARD
        return resp

    @app.get("/healthz")
    def healthz():
        c = db.counts()
        return jsonify(ok=True, queued=c["queued"] + c["scoring"])

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
                n_dets = check_upload(tmp.read_bytes(), state.images)
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
        return page("My submissions", _LIST, team=t.name, rows=rows)

    @app.get("/submissions/<int:sub_id>")
    def html_get(sub_id: int):
        s = own(sub_id, team(cookie=True))
        d = row_dict(s)
        link = bool(re.match(r"^https?://[^\s]+$", d["url"], re.IGNORECASE))
        refresh = 10 if s.state in ("queued", "scoring") else 0
        return page(f"Submission {s.id}", _DETAIL, refresh=refresh, s=d, link=link,
                    metrics=_headline(store_p, s.entry))  # fmt: skip

    @app.get("/login")
    def login_form():
        return page("Sign in", _LOGIN)

    @app.post("/login")
    def login():
        token = request.form.get("token", "").strip()
        found = db.team_for_token(token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
        if found is None or found.revoked is not None:
            return page("Sign in", _MESSAGE + _LOGIN, 401, message="unknown or revoked token")
        resp = redirect("/submissions", code=303)
        resp.set_cookie(COOKIE, token, max_age=30 * 24 * 3600, httponly=True,
                        samesite="Strict", secure=request.is_secure, path="/")  # fmt: skip
        return resp

    @app.post("/logout")
    def logout():
        resp = redirect("/", code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    return app


def serve(
    store: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    db_path: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    split: str = DEFAULT_SPLIT,
    metric: str = DEFAULT_METRIC,
    resamples: int | None = None,
    threads: int = 4,
    job_timeout_s: float = 3600.0,
    on_ready: Any = None,
) -> None:
    """Serve the app with waitress and supervise one scoring worker until SIGTERM/SIGINT.

    ``on_ready(host, port)`` is called once the socket listens (``port=0`` picks a free
    one). Both signals stop the web server and then the worker.
    """
    import signal
    import sys

    import waitress

    from .submit import DEFAULT_RESAMPLES
    from .worker import Supervisor

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
    command = [
        sys.executable, "-m", "dpeval.leaderboard.worker", "--store", str(store), "--gt",
        str(gt), "--db", str(db_file), "--split", split, "--resamples",
        str(resamples or DEFAULT_RESAMPLES), "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    supervisor = Supervisor(command, app.extensions["dpeval"].db, job_timeout_s)

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
