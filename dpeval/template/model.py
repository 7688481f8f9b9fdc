"""Stage 1 (template): the :class:`BodyTemplate` model.

A :class:`BodyTemplate` is a triangle mesh in metres plus DensePose's 24-part chart:
every *chart vertex* has a part id (1..24), chart coordinates (U, V) in [0, 1] and the
id of the 3D vertex it copies (vertices on part borders and on chart seams have one
copy per chart, as in the official ``SMPL_subdiv.mat`` / ``UV_Processed.mat`` layout).

In: arrays from a reader (:mod:`~dpeval.template.open_template`,
:mod:`~dpeval.template.official`). Out: a frozen :class:`BodyTemplate` whose arrays are
read-only, with the closest-vertex rule of the official evaluator; the geodesic engine
(:mod:`dpeval.geodesic`) and the metrics read it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._typing import ArrayLike, IntArray
from ..errors import TemplateError
from .parts import N_PARTS, PART_NAMES

__all__ = ["BodyTemplate", "chart_folds"]


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    if isinstance(a, np.memmap):
        return a
    a = np.array(a, copy=True)  # private copy: nobody can change it through a base array
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class BodyTemplate:
    """A body mesh with DensePose's 24-part chart.

    Parameters
    ----------
    id : str
        Short name (``"open"``, ``"official"``, ...).
    vertices : (V, 3) float
        Vertex positions in metres.
    faces : (F, 3) int
        Triangles, 0-based vertex ids, consistently oriented.
    chart_part : (C,) int
        Part id 1..24 of each chart vertex.
    chart_uv : (C, 2) float
        (U, V) of each chart vertex, in [0, 1].
    chart_vertex : (C,) int
        3D vertex id copied by each chart vertex.
    chart_faces : (F, 3) int, optional
        Chart-vertex ids of each face (same face order as ``faces``).
    face_part : (F,) int, optional
        Part id of each face.
    mirror : (V,) int, optional
        Left/right mirror vertex of each vertex.
    skinning : dict, optional
        ``skin_joint`` (V, 4), ``skin_weight`` (V, 4), ``joint_name`` (J,),
        ``joint_position`` (J, 3), ``joint_parent`` (J,).
    pdist : 1-D array-like, optional
        Official condensed geodesic table over the 3D vertices (``Pdist_matrix``),
        index ``a(a-1)/2 + b`` for vertex ids ``a > b``.
    meta : dict
        Provenance and build facts.
    source : str
        Where the template was read from.
    """

    id: str
    vertices: np.ndarray
    faces: np.ndarray
    chart_part: np.ndarray
    chart_uv: np.ndarray
    chart_vertex: np.ndarray
    chart_faces: np.ndarray | None = None
    face_part: np.ndarray | None = None
    mirror: np.ndarray | None = None
    skinning: dict[str, np.ndarray] | None = None
    pdist: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        for name in (
            "vertices",
            "faces",
            "chart_part",
            "chart_uv",
            "chart_vertex",
            "chart_faces",
            "face_part",
            "mirror",
        ):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        if self.skinning is not None:
            object.__setattr__(
                self, "skinning", {k: _readonly(v) for k, v in self.skinning.items()}
            )
        _validate(self)

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        """Number of 3D vertices V."""
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        """Number of triangles F."""
        return int(self.faces.shape[0])

    @property
    def n_chart_vertices(self) -> int:
        """Number of chart vertices C (3D vertices duplicated along seams)."""
        return int(self.chart_part.shape[0])

    @functools.cached_property
    def checksum(self) -> str:
        """sha256 (hex) of the geometry and the chart; the cache key of derived data."""
        h = hashlib.sha256(b"dpeval-template-v1")
        for name, arr, dtype in (
            ("vertices", self.vertices, "<f8"),
            ("faces", self.faces, "<i8"),
            ("chart_part", self.chart_part, "<i8"),
            ("chart_uv", self.chart_uv, "<f8"),
            ("chart_vertex", self.chart_vertex, "<i8"),
        ):
            a = np.ascontiguousarray(arr, dtype=dtype)
            h.update(f"{name}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ parts
    @staticmethod
    def part_index(part: ArrayLike) -> np.ndarray:
        """0-based index (0..23) of part ids 1..24; other values give -1."""
        p = np.asarray(part)
        out = p.astype(np.int64) - 1
        out[(p < 1) | (p > N_PARTS)] = -1
        return out

    @functools.cached_property
    def _part_trees(self) -> tuple[Any, ...]:
        from scipy.spatial import cKDTree

        uv = np.asarray(self.chart_uv, dtype=np.float64)
        trees = []
        for p in range(1, N_PARTS + 1):
            ids = np.flatnonzero(self.chart_part == p)
            trees.append((ids, uv[ids], cKDTree(uv[ids]) if len(ids) else None))
        return tuple(trees)

    def closest_chart_vertices(self, part: ArrayLike, u: ArrayLike, v: ArrayLike) -> IntArray:
        """Nearest chart vertex of part ``I`` to each (U, V), as the official evaluator.

        For each point the chart vertices of its part are searched by Euclidean distance
        in (U, V); ties go to the lowest chart-vertex index (the first in file order,
        like ``argmin`` in the reference code). Points outside [0, 1] are searched the
        same way (no clamping). A part id outside 1..24 (0 = background) gives -1.

        Parameters
        ----------
        part : (N,) int
            Part ids.
        u, v : (N,) float
            Chart coordinates; must be finite.

        Returns
        -------
        (N,) int64
            Chart-vertex ids, -1 for invalid parts.

        Raises
        ------
        TemplateError
            If the arrays differ in length or hold non-finite (U, V).
        """
        part = np.asarray(part)
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        if part.dtype.kind == "f":
            if not np.all(np.isfinite(part)):
                raise TemplateError("closest_vertices: part ids must be finite numbers")
            part = part.astype(np.int64)
        part = part.astype(np.int64, copy=False).ravel()
        if not (len(part) == len(u) == len(v)):
            raise TemplateError(
                f"closest_vertices: I, U, V must have the same length; got {len(part)}, "
                f"{len(u)}, {len(v)}"
            )
        out = np.full(len(part), -1, dtype=np.int64)
        valid = (part >= 1) & (part <= N_PARTS)
        bad = valid & ~(np.isfinite(u) & np.isfinite(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TemplateError(
                f"closest_vertices: point {i} has non-finite (U, V) = ({u[i]}, {v[i]}) "
                f"for part {part[i]}; chart coordinates must be finite numbers in [0, 1]"
            )
        order = np.argsort(part, kind="stable")
        sorted_parts = part[order]
        bounds = np.searchsorted(sorted_parts, np.arange(1, N_PARTS + 2))
        for p in range(1, N_PARTS + 1):
            sel = order[bounds[p - 1] : bounds[p]]
            if len(sel) == 0:
                continue
            ids, uv, tree = self._part_trees[p - 1]
            if tree is None:
                continue  # a part without chart vertices cannot be matched
            out[sel] = ids[_nearest_lowest(uv, tree, u[sel], v[sel])]
        return out

    def closest_vertices(self, part: ArrayLike, u: ArrayLike, v: ArrayLike) -> IntArray:
        """3D vertex id of the nearest chart vertex of part ``I`` (see
        :meth:`closest_chart_vertices`); -1 where the part is not 1..24.

        Example
        -------
        >>> from dpeval.template import load_template
        >>> t = load_template("open")
        >>> t.closest_vertices([1, 0], [0.5, 0.5], [0.5, 0.5])[1]
        -1
        """
        cv = self.closest_chart_vertices(part, u, v)
        out = np.full(cv.shape, -1, dtype=np.int64)
        ok = cv >= 0
        out[ok] = self.chart_vertex[cv[ok]]
        return out

    @functools.cached_property
    def uv8_lut(self) -> np.ndarray:
        """(25, 256, 256) int32: 3D vertex of ``(I, U8/255, V8/255)`` for quantised charts.

        Predictions store U and V as uint8 (value * 255), so their closest vertex takes
        one of 24 * 256 * 256 answers; this table holds them all (row 0 and ids outside
        1..24 are -1), computed once by :meth:`closest_vertices` with the same rule and
        cached on disk under the template checksum (see :mod:`dpeval._io`).
        """
        from .._io import cache_dir, load_npy, save_npy_atomic

        path = cache_dir() / "lut" / f"uv8_{self.checksum[:32]}.npy"
        shape = (N_PARTS + 1, 256, 256)
        lut = load_npy(path, shape, np.dtype(np.int32))
        if lut is None:
            g = np.arange(256, dtype=np.float64) / 255.0
            uu, vv = np.meshgrid(g, g, indexing="ij")
            lut = np.full(shape, -1, dtype=np.int32)
            for p in range(1, N_PARTS + 1):
                part = np.full(uu.size, p)
                lut[p] = self.closest_vertices(part, uu.ravel(), vv.ravel()).reshape(256, 256)
            save_npy_atomic(path, lut)
        lut.flags.writeable = False
        return lut

    # ------------------------------------------------------------- statistics
    def part_stats(self) -> list[dict[str, Any]]:
        """Per part: chart vertices, 3D vertices, faces, area (m^2), UV ranges, folds."""
        stats = []
        fp = self.face_part
        if fp is None and self.chart_faces is not None:
            fp = self.chart_part[self.chart_faces[:, 0]]
        areas = _face_areas(self.vertices, self.faces)
        folds = chart_folds(self) if self.chart_faces is not None else None
        for p in range(1, N_PARTS + 1):
            m = self.chart_part == p
            uv = self.chart_uv[m]
            row: dict[str, Any] = {
                "part": p,
                "name": PART_NAMES[p],
                "chart_vertices": int(m.sum()),
                "vertices": len(np.unique(self.chart_vertex[m])),
            }
            if fp is not None:
                fm = fp == p
                row["faces"] = int(fm.sum())
                row["area_m2"] = float(areas[fm].sum())
            if len(uv):
                row["u_range"] = (float(uv[:, 0].min()), float(uv[:, 0].max()))
                row["v_range"] = (float(uv[:, 1].min()), float(uv[:, 1].max()))
            if folds is not None:
                row["folded_faces"] = int(folds[p - 1])
            stats.append(row)
        return stats


def _nearest_lowest(uv: np.ndarray, tree: Any, qu: np.ndarray, qv: np.ndarray) -> np.ndarray:
    """Index into ``uv`` of the nearest point to each query, ties -> lowest index.

    Distances are recomputed as ``sqrt(du*du + dv*dv)`` in float64 (what scipy's
    ``cdist`` computes) over the k nearest KD-tree candidates; a query whose k-th
    candidate is as close as the best falls back to a brute-force scan.
    """
    q = np.column_stack([qu, qv])
    n = len(uv)
    k = min(4, n)
    _, cand = tree.query(q, k=k, workers=-1)
    cand = cand.reshape(len(q), k)
    du = uv[cand, 0] - qu[:, None]
    dv = uv[cand, 1] - qv[:, None]
    d = np.sqrt(du * du + dv * dv)
    dmin = d.min(axis=1)
    tied = d == dmin[:, None]
    best = np.where(tied, cand, n).min(axis=1)
    if k < n:
        unsure = np.flatnonzero(d[:, -1] <= dmin)
        for i in unsure:  # more than k points at the minimal distance: scan them all
            du_all = uv[:, 0] - qu[i]
            dv_all = uv[:, 1] - qv[i]
            best[i] = int(np.argmin(np.sqrt(du_all * du_all + dv_all * dv_all)))
    return best


def _face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def chart_folds(template: BodyTemplate) -> np.ndarray:
    """Number of folded chart triangles per part, shape (24,).

    A part's chart triangles must all have the orientation (sign of the signed UV
    area) of the majority; a triangle of the other sign or of zero area is folded.
    """
    if template.chart_faces is None:
        raise TemplateError(f"template {template.id!r} has no chart faces")
    uv = np.asarray(template.chart_uv, dtype=np.float64)[template.chart_faces]
    area2 = (uv[:, 1, 0] - uv[:, 0, 0]) * (uv[:, 2, 1] - uv[:, 0, 1]) - (
        uv[:, 2, 0] - uv[:, 0, 0]
    ) * (uv[:, 1, 1] - uv[:, 0, 1])
    fpart = template.chart_part[template.chart_faces[:, 0]]
    out = np.zeros(N_PARTS, dtype=np.int64)
    for p in range(1, N_PARTS + 1):
        a = area2[fpart == p]
        if len(a) == 0:
            continue
        sign = 1.0 if (a > 0).sum() >= (a < 0).sum() else -1.0
        out[p - 1] = int((a * sign <= 0).sum())
    return out


def _validate(t: BodyTemplate) -> None:
    """Shape, range and consistency checks; errors name the template source."""
    where = t.source or t.id

    def fail(msg: str) -> None:
        raise TemplateError(f"{where}: {msg}")

    v, f = t.vertices, t.faces
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        fail(f"vertices must have shape (V, 3) with V > 0, got {v.shape}")
    if not np.all(np.isfinite(v)):
        fail("vertices hold non-finite values")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        fail(f"faces must have shape (F, 3) with F > 0, got {f.shape}")
    if f.dtype.kind not in "iu":
        fail(f"faces must be integers, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= len(v):
        fail(f"face vertex ids must lie in 0..{len(v) - 1}, got {f.min()}..{f.max()}")
    c = len(t.chart_part)
    if t.chart_uv.shape != (c, 2):
        fail(f"chart_uv must have shape ({c}, 2) like chart_part, got {t.chart_uv.shape}")
    if t.chart_vertex.shape != (c,):
        fail(f"chart_vertex must have shape ({c},), got {t.chart_vertex.shape}")
    if c == 0:
        fail("the chart is empty")
    if t.chart_part.min() < 1 or t.chart_part.max() > N_PARTS:
        fail(f"chart part ids must lie in 1..24, got {t.chart_part.min()}..{t.chart_part.max()}")
    if not np.all(np.isfinite(t.chart_uv)):
        fail("chart (U, V) hold non-finite values")
    if t.chart_uv.min() < 0 or t.chart_uv.max() > 1:
        fail(f"chart (U, V) must lie in [0, 1], got {t.chart_uv.min()}..{t.chart_uv.max()}")
    if t.chart_vertex.min() < 0 or t.chart_vertex.max() >= len(v):
        fail(
            f"chart_vertex ids must lie in 0..{len(v) - 1}, got "
            f"{t.chart_vertex.min()}..{t.chart_vertex.max()}"
        )
    if t.chart_faces is not None:
        cf = t.chart_faces
        if cf.shape != f.shape:
            fail(f"chart_faces must have the shape of faces {f.shape}, got {cf.shape}")
        if cf.min() < 0 or cf.max() >= c:
            fail(f"chart_faces ids must lie in 0..{c - 1}")
        if not np.array_equal(t.chart_vertex[cf], f):
            fail("chart_faces do not map onto faces through chart_vertex")
        parts = t.chart_part[cf]
        if not np.all(parts == parts[:, :1]):
            fail("a chart face mixes chart vertices of different parts")
    if t.face_part is not None and t.face_part.shape != (len(f),):
        fail(f"face_part must have shape ({len(f)},), got {t.face_part.shape}")
    if t.mirror is not None and t.mirror.shape != (len(v),):
        fail(f"mirror must have shape ({len(v)},), got {t.mirror.shape}")
