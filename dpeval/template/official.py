"""Stage 1 (template), official layout: read and write DensePose's evaluation files.

In: a directory with the files of DensePose's ``densepose_eval_data`` (which dpeval never
downloads: they are under non-commercial terms):

- ``SMPL_subdiv.mat``: ``U_subdiv``, ``V_subdiv``, ``Part_ID_subdiv`` (one entry per
  chart vertex), ``vertex`` (3D positions, ``(3, N)`` or ``(N, 3)``, per chart vertex or
  per merged vertex) and ``faces`` (1-based, into chart vertices or merged vertices);
- ``SMPL_SUBDIV_TRANSFORM.mat``: ``index``, for each chart vertex its 1-based id among
  the merged (seam-welded) vertices, the index space of the distance table;
- optionally ``Pdist_matrix.pkl`` (pickle, key ``Pdist_matrix``) or ``Pdist_matrix.mat``
  (MATLAB v7.3 / HDF5): the condensed geodesic table, ``P[a(a-1)/2 + b]`` for merged ids
  ``a > b`` (0-based).

Out: a :class:`~dpeval.template.BodyTemplate`. A ``.pkl``/``.mat`` distance table is
converted once into a ``.npy`` in dpeval's cache directory (``official/<key>/``, keyed
by the source's path and checked against its size and modification time; never next to
the user's files) and memory-mapped from then on, so the multi-GB pickle is read only
once. A ``Pdist_matrix.npy`` in the directory itself is memory-mapped as it is.

:func:`export_template` writes any template in exactly this layout; the distance table,
if wanted, is passed in (a :class:`~dpeval.geodesic.GeodesicSolver` or an array): the
template stage never imports the geodesic stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._io import atomic_write, cache_dir, write_atomic
from .._safe_pickle import safe_pickle_load
from .._typing import ArrayLike, PathLike
from ..errors import TemplateError
from .model import BodyTemplate

__all__ = ["export_template", "read_official_dir"]

log = logging.getLogger(__name__)

SUBDIV_FILE = "SMPL_subdiv.mat"
TRANSFORM_FILE = "SMPL_SUBDIV_TRANSFORM.mat"
PDIST_NAMES = ("Pdist_matrix.npy", "Pdist_matrix.pkl", "Pdist_matrix.mat")
_SUBDIV_KEYS = ("U_subdiv", "V_subdiv", "Part_ID_subdiv", "vertex", "faces")


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    if not path.is_file():
        raise TemplateError(
            f"{path}: file not found; an official template directory must hold "
            f"{SUBDIV_FILE} and {TRANSFORM_FILE} (from DensePose's densepose_eval_data), "
            "or export one with 'dpeval template export open DIR'"
        )
    try:
        data = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for broken files
        raise TemplateError(f"{path}: not a readable MATLAB file ({exc})") from None
    found = sorted(k for k in data if not k.startswith("__"))
    missing = [k for k in keys if k not in data]
    if missing:
        raise TemplateError(
            f"{path}: missing key(s) {missing}; expected {list(keys)}, found {found}"
        )
    return {k: np.asarray(data[k]) for k in keys}


def _vector(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    if a.ndim > 2 or (a.ndim == 2 and min(a.shape) != 1):
        raise TemplateError(f"{path}: {key!r} must be a vector (N,), (N,1) or (1,N), got {a.shape}")
    return a.ravel()


def _as_rows3(path: Path, key: str, a: np.ndarray, counts: tuple[int, ...]) -> np.ndarray:
    """(N, 3) from a (3, N) or (N, 3) array, N in ``counts`` where possible."""
    if a.ndim != 2 or 3 not in a.shape:
        raise TemplateError(f"{path}: {key!r} must have shape (3, N) or (N, 3), got {a.shape}")
    if a.shape[0] == 3 and (a.shape[1] != 3 or a.shape[1] in counts):
        return a.T
    return a


def read_official_dir(directory: PathLike) -> BodyTemplate:
    """Read an official (or exported) DensePose template directory.

    Parameters
    ----------
    directory : path
        Holds ``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat`` and optionally a
        ``Pdist_matrix`` file.

    Returns
    -------
    BodyTemplate
        ``id`` is the directory name; ``pdist`` is a read-only memory map or None.

    Raises
    ------
    TemplateError
        Missing files, missing keys, or shapes that disagree (the message names the
        file and what was expected).
    """
    d = Path(directory)
    if not d.is_dir():
        raise TemplateError(f"{d}: not a directory")
    sub_path, tr_path = d / SUBDIV_FILE, d / TRANSFORM_FILE
    sub = _loadmat(sub_path, _SUBDIV_KEYS)
    index = _vector(tr_path, "index", _loadmat(tr_path, ("index",))["index"])
    u = _vector(sub_path, "U_subdiv", sub["U_subdiv"]).astype(np.float64)
    v = _vector(sub_path, "V_subdiv", sub["V_subdiv"]).astype(np.float64)
    part = _vector(sub_path, "Part_ID_subdiv", sub["Part_ID_subdiv"])
    c = len(u)
    if not (len(v) == len(part) == c):
        raise TemplateError(
            f"{sub_path}: U_subdiv, V_subdiv and Part_ID_subdiv must have one entry per "
            f"chart vertex; got {len(u)}, {len(v)}, {len(part)}"
        )
    if len(index) != c:
        raise TemplateError(
            f"{tr_path}: 'index' has {len(index)} entries but {sub_path.name} has {c} chart "
            "vertices; the two files must come from the same template"
        )
    if not np.all(np.isfinite(index)) or np.any(index != np.round(index)) or index.min() < 1:
        raise TemplateError(f"{tr_path}: 'index' must hold 1-based integer vertex ids (>= 1)")
    chart_vertex = index.astype(np.int64) - 1
    n = int(chart_vertex.max()) + 1

    vert = _as_rows3(sub_path, "vertex", np.asarray(sub["vertex"], dtype=np.float64), (c, n))
    if len(vert) == c:  # one position per chart vertex: weld through 'index'
        vertices = np.zeros((n, 3))
        vertices[chart_vertex] = vert
    elif len(vert) == n:
        vertices = vert
    else:
        raise TemplateError(
            f"{sub_path}: 'vertex' has {len(vert)} positions; expected one per chart vertex "
            f"({c}) or one per merged vertex ({n})"
        )
    faces_raw = _as_rows3(sub_path, "faces", np.asarray(sub["faces"]), ())
    if faces_raw.size == 0 or np.any(faces_raw != np.round(faces_raw)):
        raise TemplateError(f"{sub_path}: 'faces' must hold integer vertex ids")
    faces1 = faces_raw.astype(np.int64)
    base = 1 if faces1.min() >= 1 else 0
    f0 = faces1 - base
    chart_faces = None
    if len(vert) == c and f0.max() < c:
        chart_faces = f0
        faces = chart_vertex[f0]
    elif f0.max() < n:
        faces = f0
    else:
        raise TemplateError(
            f"{sub_path}: 'faces' ids reach {int(faces1.max())}, beyond the {c} chart and "
            f"{n} merged vertices"
        )
    if chart_faces is not None:
        parts_of_face = part[chart_faces]
        if not np.all(parts_of_face == parts_of_face[:, :1]):
            chart_faces = None  # faces cross charts: keep the mesh, drop the chart mesh
    pdist = _open_pdist(d, n)
    return BodyTemplate(
        id=d.name or "official",
        vertices=vertices,
        faces=faces,
        chart_part=part.astype(np.int64),
        chart_uv=np.column_stack([u, v]),
        chart_vertex=chart_vertex,
        chart_faces=chart_faces,
        pdist=pdist,
        meta={"layout": "densepose-official", "faces_base": base},
        source=str(d),
    )


# ------------------------------------------------------------------ distances
def _source_stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"source": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def converted_location(src: Path) -> tuple[Path, Path]:
    """Where the ``.npy`` conversion of a ``.pkl``/``.mat`` table and its stamp live.

    Parameters
    ----------
    src : Path
        The official distance file.

    Returns
    -------
    (npy, stamp) : Path, Path
        ``<cache>/official/<sha256(resolved path)[:16]>/<name>.npy`` and its ``.json``
        stamp (source size and modification time); never next to the user's files.
    """
    key = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:16]
    npy = cache_dir() / "official" / key / (src.stem + ".npy")
    return npy, npy.with_name(npy.name + ".json")


def _open_pdist(d: Path, n: int) -> np.memmap | None:
    expected = n * (n - 1) // 2
    npy = d / "Pdist_matrix.npy"
    sources = [d / name for name in PDIST_NAMES[1:] if (d / name).is_file()]
    if not sources and not npy.is_file():
        return None
    if sources:
        src = sources[0]
        npy, side = converted_location(src)
        stamp = _source_stamp(src)
        fresh = npy.is_file() and side.is_file() and _read_json(side) == stamp
        if not fresh:
            log.info("converting %s once into %s (memory-mapped from now on)", src, npy)
            _convert_pdist(src, npy, expected)
            write_atomic(side, json.dumps(stamp))
    try:
        table = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise TemplateError(f"{npy}: not a readable .npy distance table ({exc})") from None
    table = table.reshape(-1) if table.ndim == 2 and 1 in table.shape else table
    if table.ndim != 1 or len(table) != expected:
        raise TemplateError(
            f"{npy}: the distance table has shape {table.shape}; a condensed table for "
            f"{n} vertices must hold n(n-1)/2 = {expected} values"
        )
    return table


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _convert_pdist(src: Path, npy: Path, expected: int) -> None:
    with atomic_write(npy) as tmp:
        if src.suffix == ".pkl":
            with open(src, "rb") as fh:
                try:
                    obj = safe_pickle_load(fh)  # never runs code from the file
                except Exception as exc:
                    raise TemplateError(
                        f"{src}: not a readable distance-table pickle ({exc}); expected the "
                        "official dict {'Pdist_matrix': array}, or use Pdist_matrix.mat"
                    ) from None
            if not isinstance(obj, dict) or "Pdist_matrix" not in obj:
                raise TemplateError(f"{src}: expected a dict with key 'Pdist_matrix'")
            arr = np.asarray(obj.pop("Pdist_matrix")).reshape(-1)
            del obj
            _check_len(src, arr.shape[0], expected)
            with open(tmp, "wb") as out:
                np.save(out, arr, allow_pickle=False)
            del arr
        else:
            _convert_h5(src, tmp, expected)


def _check_len(src: Path, got: int, expected: int) -> None:
    if got != expected:
        raise TemplateError(
            f"{src}: 'Pdist_matrix' has {got} values; the template needs n(n-1)/2 = "
            f"{expected} for its merged vertices"
        )


def _convert_h5(src: Path, tmp: Path, expected: int) -> None:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise TemplateError(f"{src}: reading MATLAB v7.3 files needs h5py") from None
    try:
        fh = h5py.File(src, "r")
    except OSError as exc:
        raise TemplateError(f"{src}: not a MATLAB v7.3 (HDF5) file ({exc})") from None
    with fh:
        if "Pdist_matrix" not in fh:
            raise TemplateError(f"{src}: no dataset 'Pdist_matrix' (found {list(fh)})")
        ds = fh["Pdist_matrix"]
        _check_len(src, int(np.prod(ds.shape)), expected)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=ds.dtype, shape=(expected,))
        flat = ds if ds.ndim == 1 else None
        step = 1 << 24
        for start in range(0, expected, step):
            stop = min(expected, start + step)
            if flat is not None:
                out[start:stop] = flat[start:stop]
            else:  # (1, N) or (N, 1)
                out[start:stop] = ds[0, start:stop] if ds.shape[0] == 1 else ds[start:stop, 0]
        out.flush()
        del out


# ---------------------------------------------------------------------- export
class CondensedSource(Protocol):
    """Anything that gives a condensed distance table, e.g. a ``GeodesicSolver``."""

    def condensed_table(self) -> np.ndarray: ...


def export_template(
    template: BodyTemplate,
    directory: PathLike,
    *,
    distances: CondensedSource | ArrayLike | None = None,
) -> list[Path]:
    """Write ``template`` in the official DensePose layout.

    Writes ``SMPL_subdiv.mat`` (``U_subdiv``, ``V_subdiv``, ``Part_ID_subdiv`` as (C, 1)
    doubles, ``vertex`` (3, C) positions of the chart vertices, ``faces`` (F, 3) 1-based
    chart-vertex ids), ``SMPL_SUBDIV_TRANSFORM.mat`` (``index``: (C, 1), 1-based 3D vertex
    id of each chart vertex) and, when ``distances`` is given, ``Pdist_matrix.pkl`` (a
    dict ``{"Pdist_matrix": (n(n-1)/2, 1) float32}`` in the official order). Every file
    is written atomically.

    Parameters
    ----------
    template : BodyTemplate
    directory : path
        Created if needed; existing files of these names are replaced.
    distances : GeodesicSolver or (n(n-1)/2,) float, optional
        The condensed distance table of the template's n vertices in the official order
        (entry ``a(a-1)/2 + b`` for ids ``a > b``), or an object whose
        ``condensed_table()`` returns it, such as
        ``dpeval.geodesic.GeodesicSolver(template)``. None: no distance file.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    TemplateError
        The template has no chart faces, or the table has the wrong length.

    Examples
    --------
    >>> import tempfile
    >>> from dpeval.template import load_template
    >>> files = export_template(load_template("open"), tempfile.mkdtemp())
    >>> [p.name for p in files]
    ['SMPL_subdiv.mat', 'SMPL_SUBDIV_TRANSFORM.mat']
    """
    from scipy.io import savemat

    if template.chart_faces is None:
        raise TemplateError(
            f"template {template.id!r} has no chart faces; the official layout needs them"
        )
    out = Path(directory)
    col = lambda a: np.asarray(a, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    verts = np.asarray(template.vertices, dtype=np.float64)[template.chart_vertex]
    contents: dict[str, dict[str, np.ndarray]] = {
        SUBDIV_FILE: {
            "U_subdiv": col(template.chart_uv[:, 0]),
            "V_subdiv": col(template.chart_uv[:, 1]),
            "Part_ID_subdiv": col(template.chart_part),
            "vertex": verts.T.copy(),
            "faces": np.asarray(template.chart_faces, dtype=np.float64) + 1,
        },
        TRANSFORM_FILE: {"index": col(np.asarray(template.chart_vertex) + 1)},
    }
    written = []
    for name, arrays in contents.items():
        with atomic_write(out / name) as tmp, open(tmp, "wb") as fh:
            savemat(fh, arrays)
        written.append(out / name)
    if distances is not None:
        source = getattr(distances, "condensed_table", None)
        table = source() if callable(source) else distances
        n = template.n_vertices
        table = np.asarray(table, dtype=np.float32).reshape(-1, 1)
        path = out / "Pdist_matrix.pkl"
        _check_len(path, table.shape[0], n * (n - 1) // 2)
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump({"Pdist_matrix": table}, fh, protocol=4)
        # a conversion that earlier versions wrote next to the table would be stale now
        for stale in (out / "Pdist_matrix.npy", out / "Pdist_matrix.npy.json"):
            if stale.exists():
                stale.unlink()
        written.append(path)
    return written
