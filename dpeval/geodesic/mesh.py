"""Stage 2 (geodesic), internal: mesh preparation for the face-window kernels.

Turns ``vertices``/``faces`` into the arrays the face-window kernels read: each face
unfolded into its own 2D frame (``corners``), per half-edge the rigid map into the
neighbouring face's frame (``hdat``), twins, vertex-face incidences, which vertices
bound windows (``hopq``), and the queue settings. Validation errors name what was
expected.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .._typing import ArrayLike
from ..errors import GeodesicError

_FLAT_TOL = 1e-9  # radians: vertices this close to flat let windows pass
_BUCKET_WIDTH = 0.125  # queue bucket width, in mean edge lengths
_STOP_EDGES = 4.0  # early-stop margin, in mean edge lengths


class Mesh:
    """Validated mesh plus the derived arrays the kernels need (read-only)."""

    def __init__(self, vertices: ArrayLike, faces: ArrayLike) -> None:
        v, f = _validate_mesh(vertices, faces)
        nv = v.shape[0]
        nf = f.shape[0]
        p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        e01 = p1 - p0
        e02 = p2 - p0
        l01 = np.linalg.norm(e01, axis=1)
        u = e01 / l01[:, None]
        x2 = np.einsum("ij,ij->i", e02, u)
        y2 = np.linalg.norm(np.cross(u, e02), axis=1)
        corners = np.zeros((nf, 3, 2))
        corners[:, 1, 0] = l01
        corners[:, 2, 0] = x2
        corners[:, 2, 1] = y2

        twin = _twins(f, nv)
        h = np.arange(3 * nf)
        hf, hi = h // 3, h % 3
        has = twin >= 0
        g = np.where(has, twin // 3, 0)
        j = np.where(has, twin % 3, 0)
        a_f = corners[hf, hi]
        b_f = corners[hf, (hi + 1) % 3]
        a_g = corners[g, (j + 1) % 3]  # same vertex as a_f
        b_g = corners[g, j]
        d_f = b_f - a_f
        d_g = b_g - a_g
        n2 = np.einsum("ij,ij->i", d_f, d_f)
        c = np.einsum("ij,ij->i", d_f, d_g) / n2
        s = (d_f[:, 0] * d_g[:, 1] - d_f[:, 1] * d_g[:, 0]) / n2
        tx = a_g[:, 0] - (c * a_f[:, 0] - s * a_f[:, 1])
        ty = a_g[:, 1] - (s * a_f[:, 0] + c * a_f[:, 1])
        cen = corners.mean(axis=1)
        hdat = np.column_stack([c, s, tx, ty, corners[g, j], corners[g, (j + 1) % 3], cen[g]])
        hdat[~has] = 0.0

        flat = f.reshape(-1)
        order = np.argsort(flat, kind="stable")
        vf_off = np.zeros(nv + 1, np.int64)
        np.cumsum(np.bincount(flat, minlength=nv), out=vf_off[1:])

        edge_len = np.concatenate(
            [l01, np.linalg.norm(p2 - p1, axis=1), np.linalg.norm(e02, axis=1)]
        )
        self.vertices = v
        self.faces = f
        self.corners = corners
        self.hnbr = np.where(has, g, -1).astype(np.int32)
        self.hdat = np.ascontiguousarray(hdat)
        self.htwin = twin.astype(np.int32)
        # angle sum per vertex; "opaque" vertices narrow windows: saddles and
        # convex interior vertices, and reflex boundary vertices; flat interior
        # and convex boundary vertices let windows pass (exact on planar parts)
        ang = _corner_angles(corners)
        theta = np.bincount(f.reshape(-1), weights=ang.reshape(-1), minlength=nv)
        on_bnd = np.zeros(nv, bool)
        on_bnd[f.reshape(-1)[~has]] = True
        on_bnd[f[:, [1, 2, 0]].reshape(-1)[~has]] = True
        opaque = np.where(
            on_bnd, theta > np.pi + _FLAT_TOL, np.abs(theta - 2.0 * np.pi) > _FLAT_TOL
        )
        va = f[:, [1, 2, 0]].reshape(-1)  # hdat's A is the half-edge's end vertex
        vb = f.reshape(-1)  # ... and B its start
        self.hopq = opaque[va].astype(np.uint8) | (opaque[vb].astype(np.uint8) << 1)
        self.theta = theta
        self.vf_off = vf_off
        self.vf_face = (order // 3).astype(np.int32)
        self.vf_corner = (order % 3).astype(np.int32)
        # bucket queue: narrow buckets keep re-expansions rare (about 7 %); the
        # cyclic range covers the largest key jump between neighbouring faces
        self.width = float(_BUCKET_WIDTH * edge_len.mean())
        span = int(np.ceil(4.0 * edge_len.max() / self.width)) + 8
        self.nbuckets = 1 << max(span - 1, 1).bit_length()
        # early stop for grouped pairs: the queue floor must pass the farthest target
        # by a few edge lengths and 1 % (keys are centroid distances and can step back
        # a little between neighbours). On the open template, 12,000 targets of 500
        # sources gave values identical to full fields already at a 1 cm margin (11
        # differed by < 3e-17 m with no margin); tests check identity
        self.stop_margin = float(_STOP_EDGES * edge_len.mean())
        for arr in self.kernel_args()[:-2]:
            arr.flags.writeable = False

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def kernel_args(self) -> tuple[Any, ...]:
        return (
            self.vertices,
            self.faces,
            self.corners,
            self.hnbr,
            self.hdat,
            self.htwin,
            self.hopq,
            self.vf_off,
            self.vf_face,
            self.vf_corner,
            self.width,
            self.nbuckets,
        )

    def checksum(self) -> str:
        h = hashlib.sha256(b"dpeval-geodesic-mesh-v1")
        h.update(np.ascontiguousarray(self.vertices, "<f8").tobytes())
        h.update(np.ascontiguousarray(self.faces, "<i8").tobytes())
        return h.hexdigest()


def _corner_angles(corners: np.ndarray) -> np.ndarray:
    """(F, 3) interior angle at each corner of the planar face layouts."""
    out = np.empty(corners.shape[:2])
    for i in range(3):
        u = corners[:, (i + 1) % 3] - corners[:, i]
        w = corners[:, (i + 2) % 3] - corners[:, i]
        out[:, i] = np.arctan2(np.abs(u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0]), (u * w).sum(1))
    return out


def _validate_mesh(vertices: ArrayLike, faces: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    try:
        v = np.asarray(vertices)
        f = np.asarray(faces)
    except Exception as exc:  # ragged lists and the like
        raise GeodesicError(f"mesh: could not read vertices/faces as arrays ({exc}).") from exc
    if v.ndim != 2 or v.shape[1] != 3:
        raise GeodesicError(f"mesh: vertices have shape {v.shape}; expected (V, 3) coordinates.")
    if f.ndim != 2 or f.shape[1] != 3:
        raise GeodesicError(
            f"mesh: faces have shape {f.shape}; expected (F, 3) vertex ids (triangles)."
        )
    if v.dtype.kind not in "fiu":
        raise GeodesicError(f"mesh: vertices have dtype {v.dtype}; expected a float array.")
    if f.dtype.kind not in "iu":
        raise GeodesicError(f"mesh: faces have dtype {f.dtype}; expected an integer array.")
    if f.shape[0] == 0:
        raise GeodesicError("mesh: no faces; expected at least one triangle.")
    v = np.ascontiguousarray(v, dtype=np.float64)
    if not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
        raise GeodesicError(
            f"mesh: vertex {bad} has a non-finite coordinate; expected finite numbers."
        )
    nv = v.shape[0]
    fmin, fmax = int(f.min()), int(f.max())
    if fmin < 0 or fmax >= nv:
        raise GeodesicError(
            f"mesh: face vertex ids span [{fmin}, {fmax}]; expected ids in [0, {nv - 1}]."
        )
    f = np.ascontiguousarray(f, dtype=np.int32)
    rep = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    if rep.any():
        bad = int(np.flatnonzero(rep)[0])
        raise GeodesicError(
            f"mesh: face {bad} {f[bad].tolist()} repeats a vertex; expected 3 distinct ids."
        )
    used = np.zeros(nv, bool)
    used[f.reshape(-1)] = True
    if not used.all():
        bad = int(np.flatnonzero(~used)[0])
        raise GeodesicError(
            f"mesh: vertex {bad} belongs to no face; expected every vertex in a face "
            "(drop unreferenced vertices first)."
        )
    e = np.linalg.norm(v[f[:, [1, 2, 0]]] - v[f], axis=2)
    if not (e > 0).all():
        bad = int(np.flatnonzero(~(e > 0).all(axis=1))[0])
        raise GeodesicError(
            f"mesh: face {bad} has a zero-length edge (coincident vertices); "
            "expected distinct positions."
        )
    _twins(f, nv)  # raises on non-manifold or inconsistently oriented edges
    return v, f


def _twins(f: np.ndarray, nv: int) -> np.ndarray:
    """Opposite half-edge of each half-edge (-1 on the boundary); checks manifoldness."""
    src = f.reshape(-1).astype(np.int64)
    dst = f[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    key = src * nv + dst
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        k = int(sk[dup[0]])
        faces_at = sorted(int(x) // 3 for x in order[dup[0] : dup[0] + 2])
        raise GeodesicError(
            f"mesh: edge {k // nv}->{k % nv} is used in the same direction by faces "
            f"{faces_at}; expected an edge-manifold, consistently oriented mesh "
            "(each edge shared by at most two faces with opposite orientation)."
        )
    rkey = dst * nv + src
    pos = np.minimum(np.searchsorted(sk, rkey), sk.size - 1)
    return np.where(sk[pos] == rkey, order[pos], -1)
