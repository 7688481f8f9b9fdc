"""Stage 2 (geodesic), table cache: the quantised all-pairs table on disk.

In: a template checksum and the engine's rows (a callback that fills source rows).
Out: a read-only memory map of the condensed ``uint16`` table and its ``scale``.

A table is ``geodesic-<checksum[:20]>-<ENGINE_VERSION>.npy`` in the cache directory,
with its metadata beside it (``.json``). Entry ``a (a - 1) / 2 + b`` (0-based vertex
ids ``a > b``, the order of DensePose's ``Pdist_matrix``) holds
``round(d(a, b) / scale)``, saturated at :data:`QUANT_MAX`; ``QUANT_MAX + 1`` marks
unreachable pairs. The step ``scale`` is the solver's (``GeodesicSolver.quant_scale``:
a power of two at or above :data:`SCALE_MARGIN` times the eccentricity a double sweep
finds, over ``QUANT_MAX``; :func:`step_for`),
and the solver rounds the pairs it computes without the table by the same rule
(:func:`quantize`), so a run's numbers do not depend on whether a table was cached.
Both files are written with :func:`dpeval._io.atomic_write`, the
table first, so a reader that finds the metadata finds a complete table. A table
whose metadata disagrees (another engine version, another mesh, a broken file) or
whose spot check fails is ignored and rebuilt, with a warning in the log.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write, write_atomic

__all__ = [
    "CACHE_LIMIT_BYTES",
    "ENGINE_VERSION",
    "QUANT_MAX",
    "SCALE_MARGIN",
    "quantize",
    "read_step",
    "read_table",
    "spot_check",
    "step_beside",
    "step_for",
    "step_path",
    "table_meta",
    "table_nbytes",
    "table_path",
    "write_step",
    "write_table",
]

log = logging.getLogger(__name__)

ENGINE_VERSION = "fw2"
"""Version tag of the engine's numbers; part of every cache file name (fw2: the step is
:func:`step_for` of the double-sweep eccentricity, and it is the step of every path,
table or not)."""

CACHE_LIMIT_BYTES = 200 * 1024**2
"""Largest condensed table written to the cache (200 MiB)."""

QUANT_MAX = 65534
"""Largest quantised finite distance; 65535 marks unreachable pairs."""

SCALE_MARGIN = 2.02
"""The step is at least this times the double sweep's eccentricity, over
:data:`QUANT_MAX`: no distance on a mesh exceeds twice any vertex's eccentricity
(triangle inequality), plus 1 % for the engine's error, so nothing saturates."""


def step_for(eccentricity: float) -> float:
    """The quantisation step of a mesh whose double sweep found ``eccentricity``: the
    smallest power of two at or above ``SCALE_MARGIN * eccentricity / QUANT_MAX``
    (2^-13 m = 0.12 mm on the open template). A power of two makes the rounding exact
    (``d / scale`` and ``q * scale`` are exact) and keeps distances that sit on the grid,
    such as 1.0 on a unit mesh, unchanged."""
    return float(2.0 ** math.ceil(math.log2(max(eccentricity, 1e-12) * SCALE_MARGIN / QUANT_MAX)))


def quantize(d: np.ndarray, scale: float) -> np.ndarray:
    """The table's value of each distance: ``round(d / scale) * scale``, saturated at
    ``QUANT_MAX * scale``; ``inf`` (no path) stays ``inf``. The same float64 operations
    as ``_kernels.fill_condensed`` and ``_kernels.lookup_condensed``, so the results are
    bit-identical to a table lookup."""
    d = np.asarray(d, dtype=np.float64)
    q = np.minimum(np.floor(d / scale + 0.5), float(QUANT_MAX)) * scale
    return np.where(np.isfinite(d), q, d)


_CHECKED = ("format", "engine_version", "checksum", "n_vertices", "n_entries", "dtype")


def table_nbytes(nv: int) -> int:
    """Size in bytes of the quantised condensed table of ``nv`` vertices (2 per pair)."""
    return 2 * (nv * (nv - 1) // 2)


def table_path(cache_dir: Path, checksum: str) -> Path:
    """Path of the table of a mesh with this checksum (``.npy``; metadata in ``.json``)."""
    return cache_dir / f"geodesic-{checksum[:20]}-{ENGINE_VERSION}.npy"


def step_path(cache_dir: Path, checksum: str) -> Path:
    """Where the solver keeps a mesh's distance step (``GeodesicSolver.quant_scale``), so
    that a small query on a warm install skips the two fields of the double sweep: beside
    the mesh's table (:func:`step_beside`)."""
    return step_beside(table_path(cache_dir, checksum))


def step_beside(table: Path) -> Path:
    """The step file of the table at ``table`` (``geodesic-*.step.json``)."""
    return table.with_name(table.stem + ".step.json")


def read_step(path: Path, checksum: str) -> float | None:
    """The stored step, or None when absent or not a positive power of two for this mesh."""
    try:
        meta = json.loads(path.read_text())
        step = float(meta["step"])
        ok = meta.get("checksum") == checksum and meta.get("engine_version") == ENGINE_VERSION
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (ok and 0.0 < step < math.inf and math.frexp(step)[0] == 0.5):
        return None
    return step


def write_step(path: Path, checksum: str, step: float) -> None:
    """Store a mesh's step (atomically; a failure to write is not an error)."""
    doc = {"checksum": checksum, "engine_version": ENGINE_VERSION, "step": step}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(doc))
    except OSError as e:  # pragma: no cover - read-only cache: compute it each run
        log.info("geodesic step not cached: %s", e)


def table_meta(template_id: str, checksum: str, nv: int, scale: float) -> dict[str, Any]:
    """The metadata stored beside a table (and expected when reading one)."""
    return {
        "format": "dpeval-geodesic-table",
        "engine_version": ENGINE_VERSION,
        "template_id": template_id,
        "checksum": checksum,
        "n_vertices": nv,
        "n_entries": nv * (nv - 1) // 2,
        "dtype": "uint16",
        "scale": scale,
        "unreachable": QUANT_MAX + 1,
        "order": "index a*(a-1)/2 + b for 0-based vertex ids a > b",
    }


def read_table(path: Path, checksum: str, nv: int) -> tuple[np.ndarray, float] | None:
    """The cached table as a read-only memory map and its scale, or None.

    Parameters
    ----------
    path : Path
        From :func:`table_path`.
    checksum : str
        The mesh's checksum; a table of another mesh is never used.
    nv : int
        Number of vertices V.

    Returns
    -------
    (table, scale) or None
        ``table`` is ``(V (V - 1) / 2,) uint16``. None when either file is missing, or
        (with a logged warning) when the metadata or the array disagree.
    """
    meta_path = path.with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        expected = table_meta("", checksum, nv, 0.0)
        for k in _CHECKED:
            if meta.get(k) != expected[k]:
                raise ValueError(f"{k} is {meta.get(k)!r}, expected {expected[k]!r}")
        scale = float(meta["scale"])
        if not (scale > 0 and np.isfinite(scale)):
            raise ValueError(f"scale is {scale!r}")
        table = np.load(path, mmap_mode="r")
        if table.dtype != np.uint16 or table.shape != (expected["n_entries"],):
            raise ValueError(f"array is {table.dtype} {table.shape}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring cached geodesic table %s: %s; recomputing it", path, exc)
        return None
    return table, scale


def spot_check(
    table: np.ndarray, scale: float, nv: int, field: Callable[[int], np.ndarray]
) -> bool:
    """Recompute two rows (sources V-1 and V/2) and compare them with the stored ones.

    Parameters
    ----------
    table : (V (V - 1) / 2,) uint16
    scale : float
    nv : int
    field : callable
        ``source -> (V,) float64`` distances (the engine).

    Returns
    -------
    bool
        True when every stored value is within one quantum of the recomputed one
        (another CPU may round a last bit differently) and unreachable pairs agree.
    """
    for a in sorted({nv - 1, nv // 2}):
        if a < 1:
            continue
        d = field(a)[:a]
        base = a * (a - 1) // 2
        stored = np.asarray(table[base : base + a], dtype=np.float64)
        finite = np.isfinite(d)
        if not (stored[~finite] == QUANT_MAX + 1).all():
            return False
        expect = np.minimum(np.floor(d[finite] / scale + 0.5), QUANT_MAX)
        if np.abs(stored[finite] - expect).max(initial=0.0) > 1.0:
            return False
    return True


def write_table(
    path: Path,
    nv: int,
    scale: float,
    fill: Callable[[np.ndarray, float], float],
    meta: Callable[[float], dict[str, Any]],
) -> float:
    """Build the table into a temporary file and move it, then its metadata, into place.

    Parameters
    ----------
    path : Path
        From :func:`table_path`.
    nv : int
        Number of vertices V.
    scale : float
        The quantisation step (``GeodesicSolver.quant_scale``).
    fill : callable
        ``(table, scale) -> largest distance met``: fills every row of the
        ``(V (V - 1) / 2,) uint16`` array (see ``_kernels.fill_condensed``).
    meta : callable
        ``scale -> metadata`` (see :func:`table_meta`).

    Returns
    -------
    float
        The scale used. A largest distance above ``QUANT_MAX * scale`` (the engine
        breaking the triangle inequality by more than the margin) is logged: those pairs
        saturate, in the table and off it alike.
    """
    n_entries = nv * (nv - 1) // 2
    with atomic_write(path) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint16, shape=(n_entries,))
        arr = mm.view(np.ndarray)
        dmax = fill(arr, scale)
        mm.flush()
        del arr, mm
    if dmax > QUANT_MAX * scale:
        log.warning(
            "geodesic table: the largest distance %.6g is above the last step %.6g; "
            "those pairs saturate", dmax, QUANT_MAX * scale,
        )  # fmt: skip
    write_atomic(path.with_suffix(".json"), json.dumps(meta(scale), indent=1))
    return scale
