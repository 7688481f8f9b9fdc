"""The cache directory as a whole: build it ahead of time, list it, clear it.

Backs ``dpeval cache build | info | clear``. The directory is
:func:`dpeval._io.cache_dir` (``$DPEVAL_CACHE_DIR`` or ``~/.cache/dpeval``); what lives
there is derived data only, each entry keyed by a template checksum and a version:

* ``geodesic-<checksum>-<engine>.npy`` (+ ``.json``): the engine's quantised all-pairs
  geodesic table of a template (:mod:`dpeval.geodesic.table`);
* ``lut/uv8_<checksum>.npy``: the closest-vertex table of quantised UVs
  (:attr:`dpeval.template.BodyTemplate.uv8_lut`);
* ``official/<key>/Pdist_matrix.npy`` (+ ``.json``): an official ``Pdist_matrix``
  converted once to a memory-mappable array (:mod:`dpeval.template.official`);
* ``baselines/``: derived arrays of the baseline models;
* ``gt/``: per ground-truth content (keyed by a sha256 of the inputs themselves): the
  template vertex of every GT point and the marker of validated ``dp_masks`` RLEs, so a
  second run against the same ground truth skips both (:func:`dpeval._io.memo_npy`).

:func:`clear_cache` removes only these entries (and leftover temporary files of
interrupted writes), never anything else a user may have put in the directory.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._io import cache_dir
from .._typing import PathLike
from ..errors import ParamsError

__all__ = ["CacheEntry", "build_cache", "cache_entries", "clear_cache"]

log = logging.getLogger(__name__)

KINDS = ("geodesic", "lut", "official", "baselines", "gt", "partial")
"""Kinds of cache entries, in the order :func:`cache_entries` lists them."""


@dataclass(frozen=True)
class CacheEntry:
    """One cached item.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS` (``partial``: a temporary file left by an interrupted write).
    path : pathlib.Path
        The main file (or directory, for ``official`` and ``baselines``).
    nbytes : int
        Size on disk of every file of the entry (metadata included).
    what : str
        A short description (template id, vertex count, engine version...).
    """

    kind: str
    path: Path
    nbytes: int
    what: str


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def _geodesic_what(npy: Path) -> str:
    import json

    try:
        meta = json.loads(npy.with_suffix(".json").read_text())
        return (
            f"template {meta.get('template_id', '?')}, {meta.get('n_vertices', '?')} vertices, "
            f"engine {meta.get('engine_version', '?')}"
        )
    except (OSError, ValueError):
        return "no metadata (incomplete; ignored and rebuilt when needed)"


def cache_entries(root: PathLike | None = None) -> list[CacheEntry]:
    """Everything dpeval has cached, by kind.

    Parameters
    ----------
    root : path, optional
        The cache directory; default :func:`dpeval._io.cache_dir`.

    Returns
    -------
    list of CacheEntry
        Empty when the directory does not exist.

    Examples
    --------
    >>> import tempfile
    >>> cache_entries(tempfile.mkdtemp())
    []
    """
    d = Path(root).expanduser() if root is not None else cache_dir()
    if not d.is_dir():
        return []
    out = []
    for npy in sorted(d.glob("geodesic-*.npy")):
        meta = npy.with_suffix(".json")
        nbytes = _size(npy) + _size(meta) + _size(_step_file(npy))
        out.append(CacheEntry("geodesic", npy, nbytes, _geodesic_what(npy)))
    folded = {_step_file(npy) for npy in d.glob("geodesic-*.npy")}
    for step in sorted(set(d.glob("geodesic-*.step.json")) - folded):  # a step, no table
        out.append(CacheEntry("geodesic", step, _size(step), "the engine's distance step"))
    for npy in sorted((d / "lut").glob("uv8_*.npy")):
        out.append(CacheEntry("lut", npy, _size(npy), "closest vertex of (part, U8, V8)"))
    for sub in sorted((d / "official").glob("*")):
        if sub.is_dir():
            names = ", ".join(sorted(f.name for f in sub.glob("*.npy"))) or "empty"
            out.append(CacheEntry("official", sub, _size(sub), f"converted {names}"))
    if (d / "baselines").is_dir():
        b = d / "baselines"
        out.append(CacheEntry("baselines", b, _size(b), f"{sum(1 for _ in b.iterdir())} files"))
    if (d / "gt").is_dir():
        g = d / "gt"
        n = sum(1 for _ in g.rglob("*.npy"))
        out.append(CacheEntry("gt", g, _size(g), f"{n} ground-truth derived arrays"))
    for tmp in sorted(d.rglob(".*.tmp")):
        out.append(CacheEntry("partial", tmp, _size(tmp), "interrupted write"))
    return out


def _step_file(table: Path) -> Path:
    """The distance-step file kept beside a geodesic table: the rule of
    :func:`dpeval.geodesic.table.step_beside`, restated so that listing the cache does not
    import the engine (and Numba)."""
    return table.with_name(table.stem + ".step.json")


def clear_cache(root: PathLike | None = None, kinds: tuple[str, ...] = KINDS) -> list[CacheEntry]:
    """Remove cached entries (all kinds by default); returns what was removed.

    Only dpeval's own entries are touched; the directory itself is removed when
    nothing else is left in it.

    Parameters
    ----------
    root : path, optional
        The cache directory; default :func:`dpeval._io.cache_dir`.
    kinds : tuple of str
        Subset of :data:`KINDS`.

    Returns
    -------
    list of CacheEntry

    Raises
    ------
    ParamsError
        An unknown kind.
    """
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ParamsError(f"cache kinds {bad}: unknown; choose from {list(KINDS)}")
    d = Path(root).expanduser() if root is not None else cache_dir()
    removed = []
    for e in cache_entries(d):
        if e.kind not in kinds:
            continue
        if e.path.is_dir():
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            e.path.unlink(missing_ok=True)
            if e.kind == "geodesic" and e.path.suffix == ".npy":
                e.path.with_suffix(".json").unlink(missing_ok=True)
                _step_file(e.path).unlink(missing_ok=True)
        removed.append(e)
    for sub in ("lut", "official", ""):
        p = d / sub
        try:
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        except OSError:  # pragma: no cover - a concurrent writer; leave it
            pass
    return removed


def build_cache(
    template: PathLike = "open",
    *,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CacheEntry]:
    """Build (or verify) every cache entry a ``dpeval score`` on ``template`` uses.

    The closest-vertex table, the official ``Pdist_matrix`` conversion (official
    directories with distances), and the engine's all-pairs geodesic table (templates
    without an official table, when it fits :data:`dpeval.geodesic.CACHE_LIMIT_BYTES`;
    larger meshes are always computed by source, so there is nothing to build).

    Parameters
    ----------
    template : str or path
        ``"open"`` or a template directory, as for :func:`dpeval.template.load_template`.
    threads : int, optional
        Numba threads for the table build.
    progress : callable, optional
        ``progress(pairs_done, pairs_total)`` during the table build.

    Returns
    -------
    list of CacheEntry
        The entries the template uses, as found on disk afterwards.
    """
    from ..geodesic import GeodesicSolver
    from ..template import load_template

    t = load_template(template)  # converts an official Pdist file (cached) if present
    _ = t.uv8_lut
    solver = GeodesicSolver(t, threads=threads)
    if solver.mode == "engine":
        if solver._table_fits():
            solver.precompute(progress=progress)
        else:
            log.warning(
                "template %s: its table (%.0f MiB) exceeds the cache limit; distances are "
                "computed by source at scoring time (nothing to build)",
                t.id,
                solver.table_nbytes() / 2**20,
            )
    key = t.checksum[:20]
    official = set()
    if solver.mode == "legacy" and Path(template).is_dir():
        from ..template.official import PDIST_NAMES, converted_location

        for name in PDIST_NAMES:
            official.add(converted_location(Path(template) / name)[0].parent)
    return [
        e
        for e in cache_entries()
        if (e.kind in ("geodesic", "lut") and key in e.path.name)
        or (e.kind == "official" and e.path in official)
    ]
