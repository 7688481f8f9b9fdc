"""Command line of the leaderboard: ``dpeval leaderboard submit | show | render``.

:func:`add_leaderboard_parser` adds the ``leaderboard`` command to the ``dpeval``
parser; each subcommand sets ``func`` to a handler returning the exit code. Errors are
raised as :class:`~dpeval.errors.DpevalError` for ``dpeval.cli`` to turn into exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .rank import DEFAULT_METRIC, METRICS
from .store import BOX_PROTOCOLS
from .submit import DEFAULT_RESAMPLES, DEFAULT_SPLIT

__all__ = ["DEFAULT_STORE", "add_leaderboard_parser"]

DEFAULT_STORE = "leaderboard"


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def add_leaderboard_parser(subparsers: Any) -> None:
    """Add ``leaderboard`` (with ``submit``, ``show``, ``render``) to ``subparsers``."""
    lp = subparsers.add_parser("leaderboard", help="submit to, rank and render a leaderboard store")
    sub = lp.add_subparsers(dest="leaderboard_command", metavar="SUBCOMMAND")
    lp.set_defaults(func=lambda a: (lp.print_help(), 2)[1])

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
    sp.add_argument("--store", default=DEFAULT_STORE, help="store directory (default leaderboard/)")
    sp.add_argument(
        "--resamples",
        type=_positive,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples of the 95%% intervals (default {DEFAULT_RESAMPLES})",
    )
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    sp.add_argument("--template", default="open", help="'open' (default) or a directory")
    sp.set_defaults(func=run_submit)

    shp = sub.add_parser("show", help="rank comparable entries with 95%% intervals")
    shp.add_argument(
        "--store", default=DEFAULT_STORE, help="store directory (default leaderboard/)"
    )
    shp.add_argument(
        "--metric", choices=sorted(METRICS), default=DEFAULT_METRIC, help="ranking metric"
    )
    shp.add_argument("--split", help="show only this split")
    shp.set_defaults(func=run_show)

    rp = sub.add_parser("render", help="write README.md and index.html into the store")
    rp.add_argument("--store", default=DEFAULT_STORE, help="store directory (default leaderboard/)")
    rp.add_argument(
        "--metric", choices=sorted(METRICS), default=DEFAULT_METRIC, help="ranking metric"
    )
    rp.set_defaults(func=run_render)


def run_submit(args: argparse.Namespace) -> int:
    """``dpeval leaderboard submit``: prints the new entry's path and headline numbers."""
    from .rank import METRICS as M
    from .submit import submit

    entry = submit(
        args.predictions,
        args.gt,
        store=args.store,
        name=args.name,
        team=args.team,
        url=args.url,
        description=args.description,
        split=args.split,
        boxes=args.boxes,
        resamples=args.resamples,
        seed=args.seed,
        template=args.template,
        git_commit=args.commit,
    )
    _say(f"wrote {entry.path}")
    for key in ("gpsm", "gps_perpart", "gps_paper", "iou", "auc10", "auc30"):
        block, k, iv_key, title = M[key]
        v = entry.data["score"]["metrics"].get(block, {}).get(k)
        iv = entry.data["intervals"].get(iv_key) or {}
        if v is not None:
            lo, hi = iv.get("ci_low"), iv.get("ci_high")
            ci = "" if lo is None or hi is None else f"  [{100 * lo:.1f}, {100 * hi:.1f}]"
            _say(f"  {title:<22} {100 * v:5.1f}{ci}")
    for msg, n in entry.data["validation"]["warnings"].items():
        _say(f"  warning: {n} {msg}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """``dpeval leaderboard show``: one ranked table per comparable group."""
    from .rank import format_groups, rank
    from .store import read_entries

    for line in format_groups(rank(read_entries(args.store), args.metric, args.split)):
        _say(line)
    return 0


def run_render(args: argparse.Namespace) -> int:
    """``dpeval leaderboard render``: prints the two files written."""
    from .render import render_store

    for path in render_store(args.store, args.metric):
        _say(f"wrote {path}")
    return 0
