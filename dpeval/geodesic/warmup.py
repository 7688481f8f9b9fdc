"""Stage 2 (geodesic): compile the engine's kernels ahead, in a forked process.

On a fresh install the first query of a process compiles the engine's kernels: about
3 s for :func:`~dpeval.geodesic._kernels.geodesic_targets` (grouped pairs, the bundled
example's path) on the project machine, most of it Numba's front end, which holds the
GIL, so a thread would not overlap it with anything. :func:`start` forks a child that
compiles the kernels a query will need into Numba's on-disk cache (``cache=True``)
while the parent reads, decodes and samples its inputs on the other core; the solver
calls :meth:`Warmup.wait` before its first kernel call and then loads the compiled code
from the cache (about 0.1 s). The compiled code, and so every number, is the same
either way.

Nothing is forked when every kernel asked for is in the cache already (a warm run),
when Numba's cache is off, where ``fork`` does not exist, or while other threads of the
process run (a fork beside them could deadlock the child); if the child fails or saves
nothing, the parent compiles as it would have (the wait is bounded).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _kernels

__all__ = ["GROUPED", "TABLE", "Warmup", "start", "uncached"]

log = logging.getLogger(__name__)

GROUPED = ("geodesic_targets",)
"""Kernels of a grouped query (few sources: early-stopped fields)."""
TABLE = ("geodesic_field", "fill_condensed")
"""Kernels of an all-pairs table build (the largest compile of a first-ever large run)."""

_WAIT_S = 120.0  # longest wait for the child; then the parent compiles by itself


class Warmup:
    """A running compile-ahead child; :meth:`wait` (thread-safe) joins it once."""

    def __init__(self, proc: Any, names: Sequence[str]) -> None:
        self._proc = proc
        self.names = tuple(names)
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            if self._proc is None:
                return
            proc, self._proc = self._proc, None
            proc.join(_WAIT_S)
            if proc.is_alive():  # pragma: no cover - a stuck child: compile here instead
                log.warning("geodesic kernel warm-up still running after %.0f s", _WAIT_S)
                proc.terminate()
                proc.join()
            elif proc.exitcode != 0:
                log.info("geodesic kernel warm-up exited with %s; compiling here", proc.exitcode)


def uncached(names: Sequence[str]) -> list[str]:
    """The kernels among ``names`` that Numba's on-disk cache does not hold yet.

    Reads the index of each kernel's cache (for the current source file; a stale index
    counts as empty). Where caching is off, the cache directory is not writable or the
    index cannot be read, the kernel is reported as cached: then there is nothing a
    child could hand over.
    """
    out = []
    for name in names:
        cache = getattr(getattr(_kernels, name), "_cache", None)
        cache_file = getattr(cache, "_cache_file", None)
        if cache_file is None:  # caching off (a NullCache)
            continue
        try:
            where = str(cache._cache_path)
            if not os.access(where if os.path.isdir(where) else os.path.dirname(where), os.W_OK):
                continue  # nothing a child could save: the parent compiles, as before
            if not cache_file._load_index():
                out.append(name)
        except Exception:  # Numba internals changed: assume cached
            continue
    return out


def start(names: Sequence[str]) -> Warmup | None:
    """Fork a child that compiles ``names`` (see :data:`GROUPED`, :data:`TABLE`) into the
    cache, unless all are cached already; None when nothing was started."""
    todo = uncached(names)
    if not todo or "fork" not in mp.get_all_start_methods():
        return None
    if threading.active_count() > 1:  # forking beside running threads may deadlock the child
        log.info("geodesic kernel warm-up skipped: other threads are running")
        return None
    try:
        proc = mp.get_context("fork").Process(
            target=_compile, args=(tuple(todo),), name="dpeval-geodesic-warmup", daemon=True
        )
        proc.start()
    except OSError as e:  # pragma: no cover - out of processes: compile here
        log.info("geodesic kernel warm-up not started: %s", e)
        return None
    log.info("geodesic kernels compiling ahead in process %s: %s", proc.pid, ", ".join(todo))
    return Warmup(proc, todo)


def _compile(names: tuple[str, ...]) -> None:
    """In the child: call each kernel once on a tetrahedron, with the argument types the
    solver passes (so the cached signature is the one the parent will look up)."""
    from .mesh import Mesh
    from .solver import _CHUNKS_PER_THREAD, _field_work

    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    m = Mesh(v, f)
    args = m.kernel_args()
    work = _field_work(m)
    for name in names:
        if name == "geodesic_targets":
            stop = np.array([0, 2], np.int32)
            _kernels.geodesic_targets(3, *args, *work, stop, float(m.stop_margin))
        elif name == "geodesic_field":
            _kernels.geodesic_field(3, *args, *work, m.n_vertices)
        elif name == "fill_condensed":
            table = np.zeros(6, np.uint16)
            _kernels.fill_condensed(table, 1e-4, 0, 4, _CHUNKS_PER_THREAD, args)
