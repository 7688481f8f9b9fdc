"""Command line of the leaderboard: ``dpeval leaderboard submit | show | render | serve |
admin``.

:func:`add_leaderboard_parser` adds the ``leaderboard`` command to the ``dpeval``
parser. The same convention as ``dpeval.cli``: argparse validates the arguments, each
handler validates the rest before acting and returns data (an entry, teams, paths...),
and one output layer (:func:`_command` with a function from data to lines) prints it on
stdout; errors are raised as :class:`~dpeval.errors.DpevalError`, which ``dpeval.cli``
prints as one ``dpeval: error: ...`` line with exit 2. ``args.func(args)`` returns the
exit code.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._argtypes import (
    add_resamples,
    add_scheduler,
    add_template,
    no_subcommand,
    pick,
    positive_int,
)
from .._output import emit
from ..errors import ParamsError
from .rank import DEFAULT_METRIC, METRICS
from .store import BOX_PROTOCOLS
from .submit import DEFAULT_RESAMPLES, DEFAULT_SPLIT
from .text import format_interval

__all__ = ["DEFAULT_STORE", "add_leaderboard_parser"]

DEFAULT_STORE = "leaderboard"
SUBMIT_METRICS = ("gpsm", "gps_perpart", "gps_paper", "iou", "auc10", "auc30")


def _emit(lines: Iterable[str]) -> None:
    """Lines through the one output layer (flushed: ``serve`` prints while it runs)."""
    emit(list(lines))


def _command(show: Callable[[Any], Iterable[str]]) -> Callable[..., Callable[..., int]]:
    """Decorator: the handler returns data, ``show`` turns it into lines, exit code 0."""

    def decorate(handler: Callable[[argparse.Namespace], Any]) -> Callable[..., int]:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            _emit(show(handler(args)))
            return 0

        return run

    return decorate


def add_leaderboard_parser(subparsers: Any) -> None:
    """Add ``leaderboard`` (with ``submit``, ``show``, ``render``) to ``subparsers``."""
    lp = subparsers.add_parser("leaderboard", help="submit to, rank and render a leaderboard store")
    sub = lp.add_subparsers(dest="leaderboard_command", metavar="SUBCOMMAND")
    lp.set_defaults(func=lambda a: no_subcommand(lp))

    sp = sub.add_parser(
        "submit", help="validate and score predictions, write a new leaderboard entry"
    )
    sp.add_argument("predictions", help="instance predictions (format detected)")
    sp.add_argument("--gt", required=True, help="DensePose-COCO ground-truth JSON")
    sp.add_argument("--name", required=True, help="method name")
    sp.add_argument("--team", default="", help="team or authors")
    sp.add_argument("--url", default="", help="paper or code URL (http or https)")
    sp.add_argument("--description", default="", help="one paragraph about the method")
    sp.add_argument("--split", default=DEFAULT_SPLIT, help=f"split name (default {DEFAULT_SPLIT})")
    sp.add_argument(
        "--boxes",
        choices=BOX_PROTOCOLS,
        default="detected",
        help="predictions from detected boxes (default) or ground-truth boxes",
    )
    sp.add_argument("--commit", help="git commit of the method's code")
    sp.add_argument(
        "--training",
        metavar="JSON",
        help="file with a JSON object describing how the predictions were made "
        "(config, iterations, hardware, time); stored in the entry",
    )
    _add_store(sp)
    add_resamples(sp, DEFAULT_RESAMPLES, "of the 95%% intervals")
    add_template(sp)
    sp.set_defaults(func=run_submit)

    shp = sub.add_parser("show", help="rank comparable entries with 95%% intervals")
    _add_store(shp)
    _add_metric(shp)
    shp.add_argument("--split", help="show only this split")
    shp.set_defaults(func=run_show)

    rp = sub.add_parser("render", help="write README.md and index.html into the store")
    _add_store(rp)
    _add_metric(rp)
    rp.set_defaults(func=run_render)

    _add_serve_parser(sub)
    _add_admin_parser(sub)


def _add_store(p: argparse.ArgumentParser, help: str = "store directory (default leaderboard/)"):
    """``--store`` (and the options below: ``--db``, ``--metric``): one declaration for
    every leaderboard subcommand that takes it."""
    p.add_argument("--store", default=DEFAULT_STORE, help=help)


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="server database (default STORE/.server/server.db)")


def _add_metric(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metric", choices=sorted(METRICS), default=DEFAULT_METRIC, help="ranking metric"
    )


def _add_serve_parser(sub: Any) -> None:
    from .server import DEFAULT_SPLIT as SERVER_SPLIT
    from .server import Limits

    d = Limits()
    vp = sub.add_parser(
        "serve",
        help="host a benchmark with hidden ground truth (web service + one scoring worker)",
        description="Serve the leaderboard page and the submission API with waitress, and "
        "supervise one scoring worker. Needs the 'serve' extra: pip install -e \".[serve]\".",
    )
    vp.add_argument("--gt", required=True, help="hidden ground-truth JSON (never served)")
    _add_store(vp)
    _add_db(vp)
    vp.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    vp.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    vp.add_argument("--split", default=SERVER_SPLIT, help=f"split name (default {SERVER_SPLIT})")
    _add_metric(vp)
    vp.add_argument(
        "--max-upload-mb",
        type=positive_int,
        default=d.max_upload_bytes // 2**20,
        help=f"largest upload in MiB (default {d.max_upload_bytes // 2**20})",
    )
    vp.add_argument(
        "--per-team-per-day",
        type=positive_int,
        default=d.per_team_per_day,
        help=f"submissions per team in 24 h (default {d.per_team_per_day})",
    )
    vp.add_argument(
        "--queue-cap",
        type=positive_int,
        default=d.queue_cap,
        help=f"jobs waiting before uploads get 429 (default {d.queue_cap})",
    )
    add_resamples(vp, DEFAULT_RESAMPLES, "per entry", seed=False)
    vp.add_argument("--threads", type=positive_int, default=4, help="web threads (default 4)")
    add_scheduler(
        vp,
        help="score on a Dask cluster, one job per Dask worker at a time (needs "
        "dask[distributed]; the store must be readable by every Dask worker)",
    )
    vp.add_argument(
        "--job-timeout",
        type=positive_int,
        default=3600,
        help="seconds one scoring job may take before the worker is killed (default 3600)",
    )
    vp.set_defaults(func=run_serve)


def _add_admin_parser(sub: Any) -> None:
    ap = sub.add_parser("admin", help="teams and submissions of a served benchmark")
    asub = ap.add_subparsers(dest="admin_command", metavar="ACTION")
    ap.set_defaults(func=lambda a: no_subcommand(ap))

    def common(p: argparse.ArgumentParser) -> None:
        _add_store(p, help="store directory")
        _add_db(p)

    p = asub.add_parser("add-team", help="register a team and print its token (shown once)")
    p.add_argument("name", help="team name (1-64 characters)")
    common(p)
    p.set_defaults(func=run_add_team)
    p = asub.add_parser("list-teams", help="list teams (tokens are not stored)")
    common(p)
    p.set_defaults(func=run_list_teams)
    p = asub.add_parser("revoke-team", help="revoke a team's token")
    p.add_argument("name")
    common(p)
    p.set_defaults(func=run_revoke_team)
    p = asub.add_parser("list-submissions", help="list submissions, newest first")
    p.add_argument("--team", help="only this team")
    p.add_argument("--state", choices=("queued", "scoring", "done", "failed"))
    common(p)
    p.set_defaults(func=run_list_submissions)
    p = asub.add_parser("requeue", help="queue a finished or failed submission again")
    p.add_argument("id", type=positive_int)
    common(p)
    p.set_defaults(func=run_requeue)


def _db(args: argparse.Namespace) -> Any:
    from .db import Database, default_db_path

    return Database(args.db or default_db_path(args.store))


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _new_team_lines(team: tuple[int, str, str]) -> list[str]:
    team_id, name, token = team
    return [
        f"team {team_id}: {name}",
        f"token: {token}",
        "Give this token to the team now; it is not stored and cannot be shown again.",
    ]


@_command(_new_team_lines)
def run_add_team(args: argparse.Namespace) -> tuple[int, str, str]:
    """``admin add-team``: ``(id, name, token)``; the token is shown this once only."""
    team_id, token = _db(args).add_team(args.name)
    return team_id, args.name.strip(), token


def _team_lines(teams: list[Any]) -> Iterable[str]:
    for t in teams:
        state = "active" if t.revoked is None else f"revoked {_when(t.revoked)}"
        yield f"{t.id:>4}  {_when(t.created)}  {state:<27}  {t.name}"


@_command(_team_lines)
def run_list_teams(args: argparse.Namespace) -> list[Any]:
    """``admin list-teams``: the teams (id, creation date, state, name)."""
    return _db(args).teams()


@_command(lambda t: [f"revoked team {t.id}: {t.name}"])
def run_revoke_team(args: argparse.Namespace) -> Any:
    """``admin revoke-team``: the revoked team."""
    return _db(args).revoke_team(args.name)


def _submission_lines(subs: list[Any]) -> Iterable[str]:
    for s in subs:
        tail = s.entry or (s.error or "")[:100]
        yield (f"{s.id:>5}  {_when(s.created)}  {s.state:<7}  {s.attempts}  {s.team}  "
               f"{s.name!r}  {tail}")  # fmt: skip


@_command(_submission_lines)
def run_list_submissions(args: argparse.Namespace) -> list[Any]:
    """``admin list-submissions``: the submissions, newest first."""
    db = _db(args)
    team_id = None
    if args.team is not None:
        match = [t for t in db.teams() if t.name == args.team]
        if not match:
            raise ParamsError(f"no team named {args.team!r}")
        team_id = match[0].id
    return db.submissions(team_id, args.state)


@_command(lambda sub_id: [f"submission {sub_id} queued again"])
def run_requeue(args: argparse.Namespace) -> int:
    """``admin requeue ID``: the id queued again."""
    _db(args).requeue(args.id)
    return args.id


@_command(lambda _: [])
def run_serve(args: argparse.Namespace) -> None:
    """``dpeval leaderboard serve``: runs until SIGTERM or Ctrl-C (prints the address
    once it listens)."""
    try:
        from .server import Limits
        from .supervisor import serve
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ParamsError(
            f'the server needs Flask and waitress ({exc}); pip install -e ".[serve]"'
        ) from None

    def ready(host: str, port: int) -> None:
        _emit([f"serving http://{host}:{port}/ (store {args.store}); Ctrl-C stops"])

    limits = Limits(
        max_upload_bytes=args.max_upload_mb * 2**20,
        per_team_per_day=args.per_team_per_day,
        queue_cap=args.queue_cap,
    )
    serve(
        args.store,
        args.gt,
        args.db,
        limits=limits,
        job_timeout_s=args.job_timeout,
        on_ready=ready,
        **pick(args, "host", "port", "split", "metric", "resamples", "threads", "scheduler"),
    )


def _read_training(path: str | None) -> dict | None:
    """The ``--training`` JSON object (read and checked before anything is scored)."""
    if not path:
        return None
    from ..errors import FormatError
    from ..formats._validate import parse_json

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    training = parse_json(raw, path)
    if not isinstance(training, dict):
        raise FormatError(f"{path}: --training must hold one JSON object")
    return training


def _entry_lines(entry: Any) -> Iterable[str]:
    from .rank import metric_value

    yield f"wrote {entry.path}"
    for metric in SUBMIT_METRICS:
        value, lo, hi = metric_value(entry, metric)
        if value is not None:
            yield f"  {METRICS[metric][3]:<22} {format_interval(value, lo, hi)}"
    for msg, n in entry.data["validation"]["warnings"].items():
        yield f"  warning: {n} {msg}"


# options of `leaderboard submit` passed on to submit() as they are
_SUBMIT_OPTIONS = ("store", "name", "team", "url", "description", "split", "boxes", "resamples",
                   "seed", "template")  # fmt: skip


@_command(_entry_lines)
def run_submit(args: argparse.Namespace) -> Any:
    """``dpeval leaderboard submit``: the new entry (its path, headline numbers and
    validation warnings are printed)."""
    from .submit import submit

    training = _read_training(args.training)
    return submit(
        args.predictions,
        args.gt,
        git_commit=args.commit,
        training=training,
        **pick(args, *_SUBMIT_OPTIONS),
    )


def _groups_lines(groups: list[Any]) -> list[str]:
    from .rank import format_groups

    return format_groups(groups)


@_command(_groups_lines)
def run_show(args: argparse.Namespace) -> list[Any]:
    """``dpeval leaderboard show``: the ranked groups (one table per comparable group)."""
    from .rank import rank
    from .store import read_entries

    return rank(read_entries(args.store), args.metric, args.split)


@_command(lambda paths: [f"wrote {p}" for p in paths])
def run_render(args: argparse.Namespace) -> tuple[Path, Path]:
    """``dpeval leaderboard render``: the two files written."""
    from .render import render_store

    return render_store(args.store, args.metric)
