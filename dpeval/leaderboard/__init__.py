"""Leaderboard: reproducible entries, ranking that never mixes metric versions, pages.

- :func:`submit` / :func:`build_entry`: validate predictions, score every metric
  version with 95% bootstrap intervals, write a never-overwritten entry file;
- :func:`read_entries`: every entry of a store, validated;
- :func:`rank`: groups of comparable entries, ranked, with significance marks;
- :func:`render_store`: ``README.md`` and ``index.html`` in the store.
"""

from .rank import METRICS, RankedGroup, RankedRow, rank
from .render import render_store
from .store import ENTRY_SCHEMA, Entry, GroupKey, read_entries, write_entry
from .submit import build_entry, submit

__all__ = [
    "ENTRY_SCHEMA",
    "METRICS",
    "Entry",
    "GroupKey",
    "RankedGroup",
    "RankedRow",
    "build_entry",
    "rank",
    "read_entries",
    "render_store",
    "submit",
    "write_entry",
]
