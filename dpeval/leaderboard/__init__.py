"""Leaderboard: reproducible entries, ranking that never mixes metric versions, pages.

- :func:`submit` / :func:`build_entry`: validate predictions, score every metric
  version with 95% bootstrap intervals, write a never-overwritten entry file;
- :func:`read_entries`: every entry of a store, validated;
- :func:`rank`: groups of comparable entries, ranked, with significance marks;
- :func:`render_store`: ``README.md`` and ``index.html`` in the store;
- hosting with hidden ground truth: :class:`Database` (teams, tokens, queue),
  :func:`create_app` (Flask routes), :class:`ScoringWorker` and :func:`serve` (waitress
  plus one supervised worker). Flask and waitress are needed only by the last two
  (``pip install -e ".[serve]"``).

Modules, each importing only those above it: ``text`` (number format, control-character
and URL rules), ``store`` (entry schema), ``rank``, ``render`` (Jinja, ``templates/``),
``submit``, ``db``; ``upload`` (upload validator), ``views`` (Flask Blueprint), ``server``
(``create_app``); ``pool`` and ``worker`` (scoring); ``supervisor`` (``serve``); ``cli``.
"""

from .db import Database
from .rank import METRICS, RankedGroup, RankedRow, rank
from .render import render_store
from .server import Limits, create_app
from .store import ENTRY_SCHEMA, Entry, GroupKey, read_entries, write_entry
from .submit import build_entry, submit

__all__ = [
    "ENTRY_SCHEMA",
    "METRICS",
    "Database",
    "Entry",
    "GroupKey",
    "Limits",
    "RankedGroup",
    "RankedRow",
    "ScoringWorker",
    "build_entry",
    "create_app",
    "rank",
    "read_entries",
    "render_store",
    "serve",
    "submit",
    "write_entry",
]


def __getattr__(name: str):
    # lazy, so that ``python -m dpeval.leaderboard.worker`` does not import itself twice
    if name == "ScoringWorker":
        from .worker import ScoringWorker

        return ScoringWorker
    if name == "serve":
        from .supervisor import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
