"""Stage 2 of the data flow: geodesic distances on the body template.

In: a :class:`~dpeval.template.BodyTemplate` (or plain ``vertices``/``faces``) and
vertex ids. Out: distances in the template's unit (metres), ``float64``.

:class:`GeodesicSolver` does the costly setup once; :meth:`GeodesicSolver.field`
gives one source's distances to every vertex and :meth:`GeodesicSolver.pairs`
answers millions of (a, b) queries. :func:`geodesic_distance` is the one-off form.

Algorithm: face-window propagation
----------------------------------
A near-exact relative of MMP (Mitchell-Mount-Papadimitriou / Surazhsky et al.)
in the spirit of virtual-source propagation (Trettner, Bommes and Kobbelt 2021),
written for this project (``dpeval.geodesic._kernels.geodesic_field``):

* every face keeps **one window**: a virtual source (a point of the unfolded
  plane), the path length ``sigma`` travelled before it, and the **cone** of
  directions from it that passed through every edge crossed so far (bounded by
  two mesh vertices);
* faces are expanded from a bucket queue ordered by their key (distance to the
  face centroid, measured around the cone when the centroid is outside it); a
  neighbour adopts the unfolded window when that lowers its key
  (label-correcting, so late improvements are propagated again);
* when the cone misses the next edge, or the source lies behind it, the path
  bends at the blocking vertex, which becomes the new virtual source (this is
  exact at saddle and boundary vertices and a safe over-estimate elsewhere);
* a vertex's distance is the minimum over its faces, reaching corners outside a
  face's cone around the cone boundary; it is never below the straight-line
  distance (clamped), and exactly 0 at the source.

Keeping one window per face (exact MMP keeps all) is the approximation; flat
interior vertices and convex boundary vertices never bound a cone, so planar
regions are exact (a flat grid gives the Euclidean distance to 1e-15). Pairs use
the larger id as the source (``max(a, b)``), so results are symmetric by
construction and equal to the condensed table; ``d(i, i) = 0``.

Error budget, open template (13,380 vertices, 26,756 triangles, slivers down to
3 degrees), against exact MMP (``pygeodesic``), measured on 40 random sources x
all vertices (``benchmarks/geodesic.py`` repeats it on 8):

* pairs farther apart than 2 cm: mean relative error 0.084 %, 99th percentile
  0.61 %, worst 6.1 % (a handful of paths across the deep saddles between fingers
  and toes); signed mean +0.025 % (the engine mostly overestimates, by bending at
  blocking vertices), worst underestimate -4.4 %;
* pairs closer than 2 cm: absolute error mean 0.016 mm, worst 0.75 mm;
* never below the straight-line distance (clamped);
* on meshes whose table fits the cache, :meth:`GeodesicSolver.pairs` rounds every
  distance to a power-of-two step at or above ``2.02 x`` the largest distance found by
  a double sweep ``/ 65534`` (:attr:`GeodesicSolver.quant_scale`, 2^-13 m = 0.12 mm on
  the template; at most 0.061 mm per pair; the rounding itself is exact), from the
  ``uint16`` table or from a field alike, so a run gives
  the same numbers whether or not a table was cached, with the cache on or off, in one
  query or in batches (:meth:`GeodesicSolver.field` stays unrounded).

Cost: one field takes about 6-8 ms on the template on one core of the project
machine (linear in the mesh size: about 31 ms at 53k vertices), i.e. about
4 times a Dijkstra on the edge graph. Many-source queries are served from the
condensed all-pairs table (171 MiB for the template), built once in parallel
(numba ``prange`` over source chunks, about 45-75 s on 2 cores) and cached on
disk; a warm lookup of 10 M pairs takes about 0.3-1 s. When the table would
exceed :data:`CACHE_LIMIT_BYTES` (e.g. 27,554 vertices: 724 MiB) or caching is
off, pairs are grouped by source and fields computed in parallel chunks with
O(threads x V) memory; each grouped field stops early, once the bucket queue's
floor has passed the source's farthest target by 4 mean edge lengths and 1 % (keys
are face-centroid distances and may step back slightly between neighbours). On
the open template the stopped values were identical to full fields for 12,000
random targets of 500 sources (the tests check identity), so near pairs cost a
small patch of the mesh instead of a whole field. Parallel results equal serial
ones exactly (one field is always computed by one thread, deterministically).

Legacy mode: with ``template.pdist`` (the official ``Pdist_matrix``) the solver
returns the official table's values with the official index rule.

(Over 500 lines: this algorithm note and the numpydoc of the public class make up a
third of it; mesh preparation lives in ``mesh.py``, the table cache in ``table.py``.)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np

from .._io import cache_dir as default_cache_dir
from .._typing import ArrayLike, Float64Array, PathLike
from ..errors import GeodesicError
from . import _kernels
from . import table as _table
from . import warmup as _warmup
from .mesh import Mesh
from .table import CACHE_LIMIT_BYTES, ENGINE_VERSION, QUANT_MAX

__all__ = [
    "CACHE_LIMIT_BYTES",
    "ENGINE_VERSION",
    "GeodesicSolver",
    "default_cache_dir",
    "geodesic_distance",
]

log = logging.getLogger(__name__)

TABLE_SOURCE_FRACTION = 0.5
"""Build (or load) the table when a query touches more than this fraction of the
vertices as sources."""

_OPEN_CACHED_MIN_SOURCES = 32  # fewer sources: computing is cheaper than verifying
_CHUNKS_PER_THREAD = 16  # parallel work items per thread (sources split evenly)
_BLOCK = 1 << 21  # pairs handled per block in the table lookup (bounds memory)
_SCALES: dict[str, float] = {}  # mesh geometry hash -> quant_scale, once per process

Mode = Literal["auto", "legacy", "engine"]
_MODES = ("auto", "legacy", "engine")


# --------------------------------------------------------------------------- ids


def _as_ids(x: ArrayLike, name: str, nv: int) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        if a.size == 0 and a.dtype.kind == "f":
            a = a.astype(np.int64)  # np.asarray([]) is float64
        else:
            raise GeodesicError(
                f"{name}: dtype {a.dtype}; expected integer vertex ids (cast with .astype(int))."
            )
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0:
            raise GeodesicError(
                f"{name}: contains negative id {lo}; expected 0-based ids in [0, {nv - 1}] "
                "(invalid points must be filtered before the distance lookup)."
            )
        if hi >= nv:
            raise GeodesicError(f"{name}: contains id {hi}; expected 0-based ids in [0, {nv - 1}].")
    return a


@contextlib.contextmanager
def _numba_threads(n: int | None, *, dynamic: bool = False) -> Iterator[int]:
    """Pin numba's thread count (if given); with ``dynamic``, hand out prange
    iterations one at a time (for the few, long field chunks: keeps both cores
    busy when another process competes)."""
    old = numba.get_num_threads()
    numba.set_num_threads(old if n is None else n)
    try:
        with numba.parallel_chunksize(1 if dynamic else 0):
            yield numba.get_num_threads()
    finally:
        numba.set_num_threads(old)


# --------------------------------------------------------------------------- solver


class GeodesicSolver:
    """Geodesic distances on a template mesh (costly setup once, then queries).

    Parameters
    ----------
    template : BodyTemplate
        Anything with ``vertices`` (V, 3) float, ``faces`` (F, 3) int and,
        optionally, ``checksum`` (str), ``id`` (str) and ``pdist`` (official
        condensed table, index ``a(a-1)/2 + b`` for ``a > b``).
    cache : bool
        Keep the quantised all-pairs table on disk and reuse it (default True).
    cache_dir : path, optional
        Where the table lives; default :func:`dpeval._io.cache_dir`
        (``$DPEVAL_CACHE_DIR`` or ``~/.cache/dpeval``).
    mode : {"auto", "legacy", "engine"}
        ``"legacy"``: return the official ``template.pdist`` values (error if
        absent); ``"engine"``: always compute; ``"auto"``: legacy when ``pdist``
        is present, else the engine.
    threads : int, optional
        Number of numba threads for batch work (default: numba's setting).

    Raises
    ------
    GeodesicError
        Invalid mesh, mode, threads, or ``mode="legacy"`` without ``pdist``.

    Examples
    --------
    >>> from dpeval.template import load_template
    >>> solver = GeodesicSolver(load_template("open"), cache=False)
    >>> d = solver.pairs([0, 5], [10, 5])
    >>> d.shape, float(d[1])
    ((2,), 0.0)
    """

    def __init__(
        self,
        template: Any,
        *,
        cache: bool = True,
        cache_dir: PathLike | None = None,
        mode: Mode = "auto",
        threads: int | None = None,
    ) -> None:
        if mode not in _MODES:
            raise GeodesicError(f"mode={mode!r}; expected one of {_MODES}.")
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
                raise GeodesicError(f"threads={threads!r}; expected a positive int or None.")
            if threads < 1:
                raise GeodesicError(f"threads={threads}; expected a positive int or None.")
            top = numba.config.NUMBA_NUM_THREADS
            if threads > top:
                log.info("threads=%d capped at numba's NUMBA_NUM_THREADS=%d", threads, top)
                threads = top
        for attr in ("vertices", "faces"):
            if not hasattr(template, attr):
                raise GeodesicError(
                    f"template: has no '{attr}'; expected a BodyTemplate "
                    "(or use GeodesicSolver.from_mesh(vertices, faces))."
                )
        pdist = getattr(template, "pdist", None)
        if mode == "legacy" and pdist is None:
            raise GeodesicError(
                "mode='legacy' needs the official Pdist table (template.pdist), but this "
                f"template ({getattr(template, 'id', '?')!r}) has none; load the official "
                "template or use mode='engine'."
            )
        self.mode: str = (
            "legacy" if (mode == "legacy" or (mode == "auto" and pdist is not None)) else "engine"
        )
        self._template = template
        self._mesh_obj: Mesh | None = None
        if self.mode == "engine":
            self._mesh_obj = Mesh(template.vertices, template.faces)  # validates now
        nv = int(np.shape(template.vertices)[0])
        self._nv = nv
        self._pdist: np.ndarray | None = None
        if self.mode == "legacy":
            p = np.asarray(pdist).reshape(-1)
            expected = nv * (nv - 1) // 2
            if p.shape[0] != expected:
                raise GeodesicError(
                    f"template.pdist has {p.shape[0]} entries; expected V(V-1)/2 = "
                    f"{expected} for V = {nv} vertices."
                )
            self._pdist = p
        self.cache = bool(cache)
        self.cache_dir = (
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        )
        self.threads = threads
        self.template_id = str(getattr(template, "id", "mesh"))
        checksum = getattr(template, "checksum", None)
        self._checksum = str(checksum) if checksum else None
        self._table: np.ndarray | None = None
        self._scale = 1.0
        self._warmup: _warmup.Warmup | None = None
        self._step: float | None = None

    @classmethod
    def from_mesh(
        cls,
        vertices: ArrayLike,
        faces: ArrayLike,
        *,
        cache: bool = False,
        cache_dir: PathLike | None = None,
        threads: int | None = None,
    ) -> GeodesicSolver:
        """Solver for a plain triangle mesh (no chart, no official table).

        Parameters
        ----------
        vertices : (V, 3) float
        faces : (F, 3) int
            Edge-manifold, consistently oriented triangles; every vertex in a face.
        cache : bool
            Cache the all-pairs table (keyed by a checksum of the geometry);
            default False.
        cache_dir, threads
            As for :class:`GeodesicSolver`.

        Returns
        -------
        GeodesicSolver

        Raises
        ------
        GeodesicError
            Bad shapes, dtypes, non-finite coordinates, ids out of range, repeated
            vertices in a face, zero-length edges, unreferenced vertices, or a
            non-manifold / inconsistently oriented mesh.

        Examples
        --------
        >>> import numpy as np
        >>> v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
        >>> f = np.array([[0, 1, 2], [1, 3, 2]])
        >>> round(float(GeodesicSolver.from_mesh(v, f).pairs([0], [3])[0]), 6)
        1.414214
        """

        class _Plain:
            pass

        t = _Plain()
        t.vertices = vertices  # type: ignore[attr-defined]
        t.faces = faces  # type: ignore[attr-defined]
        t.id = "mesh"  # type: ignore[attr-defined]
        return cls(t, cache=cache, cache_dir=cache_dir, mode="engine", threads=threads)

    # ------------------------------------------------------------------ info
    @property
    def n_vertices(self) -> int:
        """Number of vertices V."""
        return self._nv

    @property
    def _mesh(self) -> Mesh:
        # built lazily in legacy mode (only field() and engine pairs need it)
        if self._mesh_obj is None:
            self._mesh_obj = Mesh(self._template.vertices, self._template.faces)
        return self._mesh_obj

    @property
    def checksum(self) -> str:
        """Template checksum (or a checksum of the geometry); the cache key."""
        if self._checksum is None:
            self._checksum = self._mesh.checksum()
        return self._checksum

    def __repr__(self) -> str:
        return (
            f"GeodesicSolver(template={self.template_id!r}, V={self.n_vertices}, "
            f"mode={self.mode!r}, cache={self.cache})"
        )

    # ------------------------------------------------------------------ queries
    def compile_ahead(self, n_sources: int) -> None:
        """Start compiling, in a forked process, the kernels a query of about
        ``n_sources`` sources will run (:mod:`dpeval.geodesic.warmup`), if Numba's cache
        lacks them; the first query waits for it. ``prepare`` calls this before it
        decodes the maps. A no-op in legacy mode and on a warm install.

        Parameters
        ----------
        n_sources : int
            An upper bound of the number of distinct sources (the GT points): above
            :data:`TABLE_SOURCE_FRACTION` of the vertices the table kernels, else the
            grouped one.
        """
        if self.mode != "engine" or self._warmup is not None:
            return
        big = self.cache and self._table_fits() and n_sources > TABLE_SOURCE_FRACTION * self._nv
        if big and self.cache_path().exists():
            return  # the table is there: only the spot check's field, not worth a child
        self._warmup = _warmup.start(_warmup.TABLE if big else _warmup.GROUPED)

    def _ready(self) -> None:
        if self._warmup is not None:
            self._warmup.wait()

    def field(self, source: int) -> Float64Array:
        """Distances from one vertex to every vertex (always computed by the engine).

        Parameters
        ----------
        source : int
            Vertex id in ``[0, V)``.

        Returns
        -------
        (V,) float64
            Distances in the template's unit; ``0`` at ``source``; not rounded. Note
            that :meth:`pairs` uses ``max(a, b)`` as the source, so ``field(s)[t]`` can
            differ from ``pairs(s, t)`` by the engine's error when ``t > s``, and that
            it rounds to :attr:`quant_scale` where the mesh's table fits the cache.

        Raises
        ------
        GeodesicError
            ``source`` is not an integer id in range.

        Examples
        --------
        >>> from dpeval.template import load_template
        >>> d = GeodesicSolver(load_template("open"), cache=False).field(0)
        >>> d.shape, float(d[0])
        ((13380,), 0.0)
        """
        s = _as_ids(source, "source", self.n_vertices)
        if s.ndim != 0:
            raise GeodesicError(f"source: shape {s.shape}; expected a single vertex id.")
        m = self._mesh
        work = _field_work(m)
        self._ready()
        _kernels.geodesic_field(int(s), *m.kernel_args(), *work, m.n_vertices)
        return work[0]

    def pairs(self, a: ArrayLike, b: ArrayLike) -> Float64Array:
        """Distances between aligned vertex ids.

        Parameters
        ----------
        a, b : (N,) int
            0-based vertex ids (any matching shape).

        Returns
        -------
        float64 array, same shape as ``a``
            ``d(a[k], b[k])``; the source of each pair is ``max(a, b)`` so the result
            is symmetric, and ``d(i, i) = 0``. Where the mesh's table fits the cache,
            every value is a multiple of :attr:`quant_scale` (the table's value, whether
            the table is used or not). In legacy mode: the official table's value
            ``P[i(i-1)/2 + j]`` with ``i = max``, ``j = min``.

        Raises
        ------
        GeodesicError
            Non-integer ids, mismatched shapes, negative or out-of-range ids.

        Examples
        --------
        >>> from dpeval.template import load_template
        >>> s = GeodesicSolver(load_template("open"), cache=False)
        >>> bool(s.pairs([3], [7])[0] == s.pairs([7], [3])[0])
        True
        """
        nv = self.n_vertices
        aa = _as_ids(a, "a", nv)
        bb = _as_ids(b, "b", nv)
        if aa.shape != bb.shape:
            raise GeodesicError(
                f"a has shape {aa.shape} but b has shape {bb.shape}; expected aligned ids."
            )
        shape = aa.shape
        fa = aa.reshape(-1)
        fb = bb.reshape(-1)
        if self.mode == "legacy":
            assert self._pdist is not None
            return self._lookup(self._pdist, 1.0, fa, fb).reshape(shape)
        if fa.size == 0:
            return np.zeros(shape)
        if self._table is None and self.cache and self._table_fits():
            n_src = _count_sources(fa, fb, nv)
            if n_src > TABLE_SOURCE_FRACTION * nv:
                self.precompute()
            elif n_src > _OPEN_CACHED_MIN_SOURCES:
                self._open_table(verify=True)
        if self._table is not None:
            return self._lookup(self._table, self._scale, fa, fb).reshape(shape)
        d = self._grouped(fa, fb)
        if self._table_fits():  # the table's numbers, table or not (cache on or off)
            d = _table.quantize(d, self.quant_scale)
        return d.reshape(shape)

    def condensed_table(self) -> np.ndarray:
        """All pairs as one condensed float32 table in the official order.

        Entry ``a(a-1)/2 + b`` holds ``d(a, b)`` for 0-based ids ``a > b`` (the layout
        of DensePose's ``Pdist_matrix``); used by ``dpeval template export
        --with-distances``. Legacy mode returns the official values; the engine
        returns its cached table (built if needed) or, for meshes above the cache
        limit, computes the rows by source.

        Returns
        -------
        (V(V-1)/2,) float32
        """
        nv = self.n_vertices
        if self.mode == "legacy":
            assert self._pdist is not None
            return np.asarray(self._pdist, dtype=np.float32)
        n = nv * (nv - 1) // 2
        out = np.empty(n, dtype=np.float32)
        if self.cache and self._table_fits():
            self.precompute()
            assert self._table is not None
            step = 1 << 24
            for lo in range(0, n, step):
                q = np.asarray(self._table[lo : lo + step])
                block = q.astype(np.float32) * np.float32(self._scale)
                block[q == QUANT_MAX + 1] = np.inf
                out[lo : lo + step] = block
            return out
        rows = max(1, (1 << 23) // max(nv, 1))
        for a0 in range(1, nv, rows):
            a1 = min(nv, a0 + rows)
            fa = np.repeat(np.arange(a0, a1), np.arange(a0, a1))
            fb = np.concatenate([np.arange(a) for a in range(a0, a1)])
            out[a0 * (a0 - 1) // 2 : a1 * (a1 - 1) // 2] = self._grouped(fa, fb)
        return out

    # ------------------------------------------------------------------ table
    def table_nbytes(self) -> int:
        """Size in bytes of the quantised condensed table (2 bytes per pair)."""
        return _table.table_nbytes(self.n_vertices)

    def _table_fits(self) -> bool:
        return self.table_nbytes() <= CACHE_LIMIT_BYTES

    def cache_path(self) -> Path:
        """Path of this template's cached table (``.npy``; metadata in ``.json``)."""
        return _table.table_path(self.cache_dir, self.checksum)

    def precompute(self, *, progress: Callable[[int, int], None] | None = None) -> Path:
        """Load the cached all-pairs table, or build and cache it.

        Parameters
        ----------
        progress : callable, optional
            ``progress(pairs_done, pairs_total)``, called as each of the 8 blocks of
            table rows is built (not called when the table is found in the cache).

        Returns
        -------
        pathlib.Path
            The table file.

        Raises
        ------
        GeodesicError
            Caching is off, or the table would exceed :data:`CACHE_LIMIT_BYTES`.
        """
        if not self.cache:
            raise GeodesicError("precompute() needs cache=True; pairs() works without it.")
        if not self._table_fits():
            raise GeodesicError(
                f"the table for V={self.n_vertices} would take {self.table_nbytes() / 2**20:.0f}"
                f" MiB, above the {CACHE_LIMIT_BYTES / 2**20:.0f} MiB cache limit; pairs() "
                "computes such meshes by source instead."
            )
        if self._table is None and not self._open_table(verify=True):
            self._build_table(progress)
            if not self._open_table(verify=False):  # pragma: no cover - disk trouble
                raise GeodesicError(f"could not read back the table at {self.cache_path()}.")
        return self.cache_path()

    def open_cached_table(self) -> bool:
        """Open (and spot-check) the cached all-pairs table if one exists; never build it.

        :meth:`pairs` does the same on demand; a caller that knows a large query is coming
        may run this on a thread first (``prepare`` does, while its workers decode maps),
        but must not call :meth:`pairs` before it returns.

        Returns
        -------
        bool
            Whether a table is open now.
        """
        if self.mode == "legacy" or not self.cache or not self._table_fits():
            return False
        if self._table is None:
            self._open_table(verify=True)
        return self._table is not None

    def _meta(self, scale: float) -> dict[str, Any]:
        return _table.table_meta(self.template_id, self.checksum, self.n_vertices, scale)

    def _open_table(self, *, verify: bool) -> bool:
        path = self.cache_path()
        found = _table.read_table(path, self.checksum, self.n_vertices)
        if found is None:
            return False
        table, scale = found
        if scale != self.quant_scale:
            log.warning("cached geodesic table %s has another step; recomputing it", path)
            return False
        if verify and not _table.spot_check(table, scale, self.n_vertices, self.field):
            log.warning("cached geodesic table %s fails its spot check; recomputing it", path)
            return False
        self._table = table
        self._scale = scale
        log.info("geodesic table: using %s", path)
        return True

    def _build_table(self, progress: Callable[[int, int], None] | None = None) -> None:
        m = self._mesh
        nv = m.n_vertices
        path = self.cache_path()
        t0 = time.perf_counter()

        def fill(arr: np.ndarray, scale: float) -> float:
            self._ready()
            dmax = 0.0
            with _numba_threads(self.threads, dynamic=True) as nthreads:
                nblocks = 8
                for blk in range(nblocks):
                    lo = blk * nv // nblocks
                    hi = (blk + 1) * nv // nblocks
                    dmax = max(
                        dmax,
                        _kernels.fill_condensed(
                            arr, scale, lo, hi, _CHUNKS_PER_THREAD * nthreads, m.kernel_args()
                        ),
                    )
                    log.info(
                        "geodesic table: rows %d/%d (%.1f s)", hi, nv, time.perf_counter() - t0
                    )
                    if progress is not None:
                        progress(hi * (hi - 1) // 2, nv * (nv - 1) // 2)
            return dmax

        _table.write_table(path, nv, self.quant_scale, fill, self._meta)
        log.info(
            "geodesic table: built %s (%.0f MiB) in %.1f s",
            path,
            self.table_nbytes() / 2**20,
            time.perf_counter() - t0,
        )

    @property
    def quant_scale(self) -> float:
        """The engine's distance step (metres): every engine distance :meth:`pairs` returns
        on a mesh whose table fits the cache is a multiple of it, whether it comes from
        the table or from a field (:func:`dpeval.geodesic.table.quantize`).

        The power of two at or above :data:`~dpeval.geodesic.table.SCALE_MARGIN` times
        the eccentricity of a double sweep (vertex 0, then the vertex farthest from it),
        over ``QUANT_MAX`` (:func:`~dpeval.geodesic.table.step_for`); computed once per
        mesh (two fields) and kept in the cache directory beside the table.
        """
        if self._step is not None:
            return self._step
        key = self._mesh.checksum()  # the geometry itself (a template may claim any id)
        if key in _SCALES:
            self._step = _SCALES[key]
            return self._step
        path = _table.step_path(self.cache_dir, self.checksum)
        step = _table.read_step(path, self.checksum) if self.cache else None
        if step is None:
            d0 = self._sweep(0)
            far = int(np.argmax(np.where(np.isfinite(d0), d0, -1.0)))
            d1 = self._sweep(far)
            step = _table.step_for(float(np.max(d1[np.isfinite(d1)])))
            if self.cache:
                _table.write_step(path, self.checksum, step)
        _SCALES[key] = self._step = step
        return step

    def _sweep(self, source: int) -> np.ndarray:
        """:meth:`field` through the early-stop kernel with every vertex as a target (the
        same values; the grouped path then compiles no second kernel)."""
        m = self._mesh
        work = _field_work(m)
        self._ready()
        every = np.arange(m.n_vertices, dtype=np.int32)
        _kernels.geodesic_targets(source, *m.kernel_args(), *work, every, float(m.stop_margin))
        return work[0]

    # ------------------------------------------------------------------ pair paths
    def _lookup(
        self, table: np.ndarray, scale: float, fa: np.ndarray, fb: np.ndarray
    ) -> np.ndarray:
        out = np.empty(fa.shape[0])
        unreachable = QUANT_MAX + 1 if table.dtype == np.uint16 else -1
        with _numba_threads(self.threads):
            for lo in range(0, fa.shape[0], _BLOCK):
                hi = min(lo + _BLOCK, fa.shape[0])
                _kernels.lookup_condensed(
                    table,
                    _ids_block(fa[lo:hi]),
                    _ids_block(fb[lo:hi]),
                    scale,
                    unreachable,
                    out[lo:hi],
                )
        return out

    def _grouped(self, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        """Pairs grouped by source, one early-stopped field per source.

        The fields (:func:`~dpeval.geodesic._kernels.geodesic_targets`) are dispatched
        from Python to the GIL-free kernel on a thread pool rather than from a
        ``parallel=True`` kernel: the numbers are the same (one field per source,
        computed by one thread), and a first run on a fresh install compiles less (the
        parallel lowering of such a driver took as long as the field itself; see
        ``benchmarks/score.py``).
        """
        m = self._mesh
        hi = np.maximum(fa, fb)
        lo = np.minimum(fa, fb).astype(np.int32)
        keep = np.flatnonzero(hi != lo)
        perm = keep[np.argsort(hi[keep], kind="stable")]  # input order within a source
        hs = hi[perm]
        starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]]) if hs.size else hs[:0]
        ends = np.r_[starts[1:], hs.size].astype(np.int64)
        result = np.zeros(fa.shape[0])
        if starts.size == 0:
            return result
        args = m.kernel_args()
        margin = float(m.stop_margin)
        self._ready()

        def run(g0: int, g1: int) -> None:
            work = _field_work(m)
            out = work[0]
            for g in range(g0, g1):
                idx = perm[starts[g] : ends[g]]
                stop_t = lo[idx]  # a fancy-indexed copy: C-contiguous int32
                _kernels.geodesic_targets(int(hs[starts[g]]), *args, *work, stop_t, margin)
                result[idx] = out[stop_t]

        n_threads = self.threads or numba.get_num_threads()
        n_groups = starts.size
        n_chunks = min(n_groups, _CHUNKS_PER_THREAD * n_threads)
        bounds = [
            (c * n_groups // n_chunks, (c + 1) * n_groups // n_chunks) for c in range(n_chunks)
        ]
        if n_threads == 1 or n_chunks == 1:
            for g0, g1 in bounds:
                run(g0, g1)
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                for f in [pool.submit(run, g0, g1) for g0, g1 in bounds]:
                    f.result()
        return result


def _field_work(m: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scratch arrays of one field (``out``, ``state``, ``link``, ``head``), allocated
    in NumPy (the kernel ``_field_work`` does the same inside compiled code)."""
    nf = m.faces.shape[0]
    return (
        np.empty(m.n_vertices),
        np.empty((nf, 8)),
        np.empty((nf, 4), np.int32),
        np.empty(m.nbuckets, np.int32),
    )


def _ids_block(x: np.ndarray) -> np.ndarray:
    """Ids as contiguous int32/int64 (one compiled lookup per dtype)."""
    if x.dtype == np.int32 or x.dtype == np.int64:
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(x, dtype=np.int64)


def _count_sources(fa: np.ndarray, fb: np.ndarray, nv: int) -> int:
    seen = np.zeros(nv, bool)
    step = _BLOCK
    for lo in range(0, fa.shape[0], step):
        x = fa[lo : lo + step]
        y = fb[lo : lo + step]
        seen[np.maximum(x, y)[x != y]] = True
    return int(seen.sum())


def geodesic_distance(template: Any, a: ArrayLike, b: ArrayLike, *, mode: Mode = "auto") -> Any:
    """One-off geodesic distances between vertex ids of a template.

    Parameters
    ----------
    template : BodyTemplate
    a, b : int or (N,) int
        Aligned 0-based vertex ids.
    mode : {"auto", "legacy", "engine"}
        See :class:`GeodesicSolver`.

    Returns
    -------
    float or float64 array shaped like ``a``

    Raises
    ------
    GeodesicError
        As :meth:`GeodesicSolver.pairs`.

    Examples
    --------
    >>> from dpeval.template import load_template
    >>> geodesic_distance(load_template("open"), 12, 12)
    0.0
    """
    solver = GeodesicSolver(template, cache=True, mode=mode)
    out = solver.pairs(a, b)
    if np.ndim(a) == 0 and np.ndim(b) == 0:
        return float(out)
    return out
