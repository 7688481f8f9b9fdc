"""Leaderboard server routes: a Flask Blueprint of module-level views.

In: requests, and the app's state in ``current_app.extensions["dpeval"]`` (a
:class:`~dpeval.leaderboard.server.AppState`: store, database, limits, ground-truth
ids; read duck-typed, so this module does not import ``server``). Out: pages rendered
from ``templates/`` through the same Jinja environment as ``dpeval leaderboard render``
(:func:`~dpeval.leaderboard.render.render_page`), JSON, and one-line errors. The routes
and the security decisions are listed in :mod:`dpeval.leaderboard.server`.

Authentication is the :func:`require_team` decorator; every refusal is a
:class:`Refused` exception turned into a response by one error handler (JSON under
``/api/``, an HTML page elsewhere). Uploads are checked by
:mod:`dpeval.leaderboard.upload` before anything is stored.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, make_response, redirect, request
from werkzeug.exceptions import HTTPException

from ..errors import DpevalError, FormatError
from .db import LimitError, Submission, Team, row_dict
from .rank import METRICS, metric_value
from .render import render_page
from .store import entries_dir, read_entry
from .text import format_interval, is_http_url, one_line
from .upload import check_fields, check_filename, check_upload

__all__ = ["COOKIE", "Refused", "bp", "require_team"]

log = logging.getLogger(__name__)

bp = Blueprint("leaderboard", __name__)

COOKIE = "dpeval_token"
MAX_TOKEN_CHARS = 200
MAX_MESSAGE_CHARS = 500
_CHUNK = 1 << 20
_VALIDATE_LOCK = threading.Lock()  # one validation at a time: bounds memory; warnings are global
_CSP_PAGE = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_CSP_BOARD = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'; base-uri 'none'"
)
_BEARER = {"WWW-Authenticate": "Bearer"}
_RETRY = {"Retry-After": "3600"}


class Refused(Exception):
    """A request refused with ``status`` and a one-line ``message`` (plus headers)."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _state() -> Any:
    return current_app.extensions["dpeval"]


def _page(template: str, title: str, status: int = 200, **context: Any) -> Any:
    """An HTML page (Jinja autoescapes every value of ``context``)."""
    return make_response(render_page(template, title=title, **context), status)


def _error(status: int, message: str, **headers: str) -> Any:
    message = one_line(str(message).replace("<memory>", "upload"), MAX_MESSAGE_CHARS)
    if request.path.startswith("/api/"):
        resp = make_response(jsonify(error=message), status)
    else:
        resp = _page("message.html", f"Error {status}", status, message=message)
    resp.headers.update(headers)
    return resp


# ---------------------------------------------------------------------------- app-wide


@bp.app_errorhandler(Refused)
def _refused(exc: Refused) -> Any:
    return _error(exc.status, exc.message, **exc.headers)


@bp.app_errorhandler(HTTPException)
def _http(exc: HTTPException) -> Any:
    messages = {
        413: f"upload too large; at most {_state().limits.max_upload_bytes} bytes",
        404: "not found",
        405: "method not allowed",
    }
    return _error(exc.code or 500, messages.get(exc.code or 0, exc.name))


@bp.app_errorhandler(Exception)
def _internal(exc: Exception) -> Any:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(500, "internal server error")


@bp.after_app_request
def _headers(resp: Any) -> Any:
    resp.headers.setdefault("Content-Security-Policy", _CSP_PAGE)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if request.path != "/":
        resp.headers["Cache-Control"] = "no-store"
    return resp


# ---------------------------------------------------------------------------- auth


def authenticate(*, cookie: bool) -> Team:
    """The team of the request's ``Authorization: Bearer`` token (or, for pages, of
    the sign-in cookie); :class:`Refused` 401 when missing or unknown, 403 if revoked."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "malformed Authorization header; send 'Bearer TOKEN'", **_BEARER)
        token = token.strip()
    elif cookie and request.cookies.get(COOKIE):
        token = request.cookies[COOKIE]
    else:
        hint = "sign in at /login, or send " if cookie else "send "
        raise Refused(
            401, f"authentication required; {hint}'Authorization: Bearer TOKEN'", **_BEARER
        )
    found = _state().db.team_for_token(token) if len(token) <= MAX_TOKEN_CHARS else None
    if found is None:
        raise Refused(401, "unknown token", **_BEARER)
    if found.revoked is not None:
        raise Refused(403, "this team's token was revoked; contact the organisers")
    return found


def require_team(*, cookie: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: authenticate first (:func:`authenticate`), then call the view with the
    :class:`~dpeval.leaderboard.db.Team` as its first argument.

    ``cookie``: pages accept the sign-in cookie; the API (and uploads, so there is no
    cross-site request forgery) needs the header.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return view(authenticate(cookie=cookie), *args, **kwargs)

        return wrapped

    return decorate


def _own(sub_id: int, team: Team) -> Submission:
    s = _state().db.get(sub_id)
    if s is None or s.team_id != team.id:  # another team's submission does not exist
        raise Refused(404, f"no submission {sub_id} for your team")
    return s


def _headline(store: Path, entry_id: str | None) -> dict[str, str]:
    """``{metric title: "59.6 [55.6, 70.6]"}`` for an own entry (empty if unreadable)."""
    if not entry_id or not re.fullmatch(r"[A-Za-z0-9-]+", entry_id):
        return {}
    try:
        e = read_entry(entries_dir(store) / f"{entry_id}.json")
    except (DpevalError, OSError):
        return {}
    out = {}
    for metric, (_, _, _, title) in METRICS.items():
        value, lo, hi = metric_value(e, metric)
        if value is not None:
            out[title] = format_interval(value, lo, hi)
    return out


# ---------------------------------------------------------------------------- public


@bp.get("/")
def board() -> Any:
    state = _state()
    health = state.supervisor.health() if state.supervisor is not None else None
    resp = make_response(state.board("" if health is None or health["ok"] else health["message"]))
    resp.headers["Content-Security-Policy"] = _CSP_BOARD
    return resp


@bp.get("/healthz")
def healthz() -> Any:
    state = _state()
    c = state.db.counts()
    queued = c["queued"] + c["scoring"]
    if state.supervisor is None:
        return jsonify(ok=True, queued=queued)
    health = state.supervisor.health()
    worker = {k: health[k] for k in ("ok", "restarts", "last_exit", "message")}
    body = jsonify(ok=health["ok"], queued=queued, worker=worker)
    return make_response(body, 200 if health["ok"] else 503)


# ---------------------------------------------------------------------------- API


@bp.post("/api/submissions")
@require_team(cookie=False)
def upload(team: Team) -> Any:
    state = _state()
    limits = state.limits
    try:
        state.db.precheck(team.id, limits.per_team_per_day, limits.queue_cap)
    except LimitError as exc:
        raise Refused(429, str(exc), **_RETRY) from None
    f = request.files.get("file")
    if f is None:
        raise Refused(400, "no 'file' part; send the predictions as multipart field 'file'")
    try:
        check_filename(f.filename or "")
        fields = check_fields(request.form, state.split, team.name)
    except FormatError as exc:
        raise Refused(400, str(exc)) from None
    sub_id, n_dets = _store_upload(state, team, f.stream, fields)
    log.info("team %s: submission %s queued (%d detections)", team.id, sub_id, n_dets)
    body = {
        "id": sub_id,
        "state": "queued",
        "detections": n_dets,
        "status_url": f"/api/submissions/{sub_id}",
        "page_url": f"/submissions/{sub_id}",
    }
    return jsonify(body), 202


def _store_upload(state: Any, team: Team, stream: Any, fields: dict[str, str]) -> tuple[int, int]:
    """Stream the file to a temporary name, validate it, then queue it: ``(id, detections)``.

    The file is moved to ``<id>.json`` inside the database transaction that inserts the
    row; on any refusal nothing is left behind.
    """
    limits = state.limits
    tmp = state.uploads / f".tmp-{secrets.token_hex(8)}.part"
    placed: list[Path] = []
    try:
        digest, size = hashlib.sha256(), 0
        with open(tmp, "xb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise Refused(413, f"upload too large; at most {limits.max_upload_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise Refused(400, "the file is empty")
        try:
            with _VALIDATE_LOCK:
                n_dets = check_upload(tmp.read_bytes(), state.images, state.categories)
        except FormatError as exc:
            raise Refused(400, str(exc)) from None

        def place(sub_id: int) -> str:
            name = f"{sub_id}.json"
            os.replace(tmp, state.uploads / name)
            placed.append(state.uploads / name)
            return name

        try:
            sub_id = state.db.add_submission(
                team.id, fields, size=size, sha256=digest.hexdigest(), place_file=place,
                per_team=limits.per_team_per_day, queue_cap=limits.queue_cap,
            )  # fmt: skip
        except LimitError as exc:
            raise Refused(429, str(exc), **_RETRY) from None
        placed.clear()  # committed: the file now belongs to the row
    finally:
        for p in (tmp, *placed):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return sub_id, n_dets


@bp.get("/api/submissions")
@require_team(cookie=False)
def api_list(team: Team) -> Any:
    rows = [row_dict(s) for s in _state().db.submissions(team.id)]
    return jsonify(team=team.name, submissions=rows)


@bp.get("/api/submissions/<int:sub_id>")
@require_team(cookie=False)
def api_get(team: Team, sub_id: int) -> Any:
    s = _own(sub_id, team)
    return jsonify(row_dict(s) | {"scores": _headline(_state().store, s.entry)})


# ---------------------------------------------------------------------------- pages


@bp.get("/submissions")
@require_team(cookie=True)
def html_list(team: Team) -> Any:
    rows = [row_dict(s) for s in _state().db.submissions(team.id)]
    return _page("list.html", "My submissions", team=team.name, rows=rows)


@bp.get("/submissions/<int:sub_id>")
@require_team(cookie=True)
def html_get(team: Team, sub_id: int) -> Any:
    s = _own(sub_id, team)
    d = row_dict(s)
    link = is_http_url(d["url"])
    refresh = 10 if s.state in ("queued", "scoring") else 0
    scores = _headline(_state().store, s.entry)
    return _page("detail.html", f"Submission {s.id}", refresh=refresh, s=d, link=link,
                 scores=scores)  # fmt: skip


@bp.get("/login")
def login_form() -> Any:
    return _page("login.html", "Sign in")


@bp.post("/login")
def login() -> Any:
    token = request.form.get("token", "").strip()
    db = _state().db
    found = db.team_for_token(token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
    if found is None or found.revoked is not None:
        return _page("login.html", "Sign in", 401, message="unknown or revoked token")
    resp = redirect("/submissions", code=303)
    secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
    resp.set_cookie(COOKIE, token, max_age=30 * 24 * 3600, httponly=True,
                    samesite="Strict", secure=secure, path="/")  # fmt: skip
    return resp


@bp.post("/logout")
def logout() -> Any:
    resp = redirect("/", code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp
