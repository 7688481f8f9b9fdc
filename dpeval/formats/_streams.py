"""Stage 3 (formats), internal: the PNG stream checks of a predictions file.

Every encoded map is checked when the file is read (chunk CRCs, a complete zlib stream
of the right length: :func:`~dpeval.formats.iuv_png.check_png_stream`), including maps
the scorer never decodes. With one worker each map is checked in the record loop; with
more, the loop queues the maps and :meth:`StreamChecks.run` checks them in forked
workers after it (each inflates a contiguous share).

Whatever the mode, the error raised is the one a single process raises: the first
failure in the order the checks run, record by record (its fields, its PNG header, its
stream, its box), also when a later record fails the loop before the queued maps were
checked (:meth:`StreamChecks.first_error`).

Measured and dropped: forked checkers that start beside the record loop, reading the
parsed records they inherit. The warm minival load took as long (1.0 s): with both cores
busy the overlap gains nothing, and the workers' reference counting copies the pages of
the 15,849 records they touch.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from typing import Any

from ..errors import FormatError
from .iuv_png import check_png_stream

__all__ = ["StreamChecks"]

_FORKED: dict[str, Any] = {}  # what the forked checkers inherit


class StreamChecks:
    """The stream checks of one file (see the module docstring)."""

    MIN_PARALLEL = 512
    """Fewer maps: a pool costs more than it saves."""

    def __init__(self, workers: int) -> None:
        self.workers = max(int(workers), 1)
        self.pending: list[tuple[bytes, str]] = []

    def add(self, png: bytes, where: str) -> None:
        """One map from the loop: checked now (one worker) or queued for :meth:`run`."""
        if self.workers == 1:
            check_png_stream(png, where)
        else:
            self.pending.append((png, where))

    def run(self) -> None:
        """After the loop: raise the first stream error in file order, if any."""
        pending, self.pending = self.pending, []
        if len(pending) < self.MIN_PARALLEL or "fork" not in mp.get_all_start_methods():
            found = [_first_failure(pending, 0, len(pending))]
        else:
            n = min(self.workers, os.cpu_count() or 1) * 4
            bounds = [len(pending) * k // n for k in range(n + 1)]
            _FORKED["pending"] = pending
            try:
                with mp.get_context("fork").Pool(min(self.workers, n)) as pool:
                    found = pool.map(_check_slice, list(itertools.pairwise(bounds)))
            finally:
                _FORKED.clear()
        errors = [e for e in found if e is not None]
        if errors:
            raise FormatError(min(errors)[1])

    def first_error(self, exc: FormatError) -> FormatError:
        """The error to raise when the loop failed with ``exc``: the first queued map that
        fails its check, if any (every queued map's check comes before ``exc`` in a
        single process's order, its own record's included), else ``exc``."""
        pending, self.pending = self.pending, []
        first = _first_failure(pending, 0, len(pending))
        return FormatError(first[1]) if first is not None else exc


def _first_failure(pending: list[tuple[bytes, str]], lo: int, hi: int) -> tuple[int, str] | None:
    """(index, message) of the first map of ``pending[lo:hi]`` that fails, or None."""
    for k in range(lo, hi):
        png, where = pending[k]
        try:
            check_png_stream(png, where)
        except FormatError as e:
            return k, str(e)
    return None


def _check_slice(span: tuple[int, int]) -> tuple[int, str] | None:
    """:func:`_first_failure` of a share of the queued maps, in a forked worker."""
    return _first_failure(_FORKED["pending"], *span)
