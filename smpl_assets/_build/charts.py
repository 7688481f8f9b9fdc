"""Stage 3 kernels: flattening one disc-shaped part into a 2D chart.

Input: a part's submesh (local vertices (n, 3) float64, triangles (f, 3) int64).
Output: (n, 2) float64 chart coordinates and a small stats dict. Methods:
geodesic classical MDS (+ fold repair), mean-value (Floater) disc map, and the
helpers to count folds and measure distortion.
"""

from __future__ import annotations

import numpy as np
import potpourri3d as pp3d
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .mesh import boundary_loops, edges_of

DEGENERATE_AREA = 1e-12  # |2 x signed area| below this (normalised chart units) counts as a fold


def signed_area2(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(f,) twice the signed area of each chart triangle."""
    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def folded(uv: np.ndarray, faces: np.ndarray, eps: float = DEGENERATE_AREA) -> np.ndarray:
    """(f,) bool: triangle against the majority orientation, or (near) degenerate."""
    s = signed_area2(uv, faces)
    sign = 1.0 if (s > 0).sum() >= (s < 0).sum() else -1.0
    return (s * sign) <= eps


def normalise(uv: np.ndarray) -> np.ndarray:
    """Per-axis min-max scaling to [0, 1] (as ``All_U_norm``/``All_V_norm``)."""
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    return (uv - lo) / (hi - lo)


def orient_positive(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip the second axis if most triangles are clockwise."""
    s = signed_area2(uv, faces)
    if (s < 0).sum() > (s > 0).sum():
        uv = uv.copy()
        uv[:, 1] = -uv[:, 1]
    return uv


def mean_value_weights(points: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    """(n, n) Floater mean-value weights w_ij = (tan(a/2) + tan(b/2)) / |x_i - x_j|.

    All weights are positive, so a Tutte solve with a convex boundary is an embedding.
    """
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, l = faces[:, k], faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        eij = points[j] - points[i]
        eil = points[l] - points[i]
        nij = np.linalg.norm(eij, axis=1)
        nil = np.linalg.norm(eil, axis=1)
        cos = np.clip(np.einsum("ij,ij->i", eij, eil) / (nij * nil), -1.0, 1.0)
        half_tan = np.tan(0.5 * np.arccos(cos))
        # angle at i lies between edges (i,j) and (i,l): it contributes to both
        rows += [i, i]
        cols += [j, l]
        vals += [half_tan / nij, half_tan / nil]
    n = len(points)
    w = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return w.tocsr()


def _tutte_solve(weights: sp.csr_matrix, uv: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Place the ``free`` vertices at the weighted mean of their neighbours; others fixed."""
    out = uv.copy()
    idx = np.where(free)[0]
    fixed = np.where(~free)[0]
    w_ff = weights[idx][:, idx]
    w_fx = weights[idx][:, fixed]
    deg = np.asarray(weights[idx].sum(axis=1)).ravel()
    system = (sp.diags(deg) - w_ff).tocsc()
    rhs = w_fx @ uv[fixed]
    out[idx] = spla.splu(system).solve(np.ascontiguousarray(rhs))
    return out


def disc_map(points: np.ndarray, faces: np.ndarray):
    """Mean-value disc map: boundary on the unit circle by arc length, counter-clockwise."""
    loops = boundary_loops(faces)
    if loops is None or len(loops) != 1:
        raise ValueError("disc_map needs a triangle set with exactly one boundary loop")
    loop = loops[0]
    seg = np.linalg.norm(points[np.roll(loop, -1)] - points[loop], axis=1)
    angle = 2.0 * np.pi * np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    uv = np.zeros((len(points), 2))
    uv[loop] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    free = np.ones(len(points), dtype=bool)
    free[loop] = False
    return _tutte_solve(mean_value_weights(points, faces), uv, free)


def geodesic_matrix(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(n, n) symmetrised heat-method geodesic distances inside the submesh."""
    solver = pp3d.MeshHeatMethodDistanceSolver(points, faces)
    dist = np.stack([solver.compute_distance(i) for i in range(len(points))])
    return 0.5 * (dist + dist.T)


def classical_mds(dist: np.ndarray):
    """Top-2 classical MDS embedding of a distance matrix.

    Returns
    -------
    xy : (n, 2) float64
    stats : dict with ``stress`` (normalised) and ``eig_ratio_3_2`` (lambda3/lambda2)
    """
    n = len(dist)
    sq = dist**2
    centred = sq - sq.mean(axis=0) - sq.mean(axis=1)[:, None] + sq.mean()
    gram = -0.5 * centred
    vals, vecs = scipy.linalg.eigh(gram, subset_by_index=[n - 3, n - 1])
    vals, vecs = vals[::-1], vecs[:, ::-1]
    for k in range(3):  # deterministic sign: largest |entry| positive
        if vecs[np.argmax(np.abs(vecs[:, k])), k] < 0:
            vecs[:, k] = -vecs[:, k]
    xy = vecs[:, :2] * np.sqrt(np.maximum(vals[:2], 0.0))
    emb = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    stress = float(np.sqrt(((dist - emb) ** 2).sum() / (dist**2).sum()))
    return xy, {"stress": stress, "eig_ratio_3_2": float(vals[2] / vals[1])}


def _vertex_rings(faces: np.ndarray, n: int) -> sp.csr_matrix:
    e = edges_of(faces)
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    return ((adj + adj.T) > 0).astype(np.int8)


def _runs(loop: np.ndarray, free: np.ndarray):
    """Maximal runs of consecutive free vertices of a boundary loop, with their fixed ends."""
    k = len(loop)
    flags = free[loop]
    if flags.all() or not flags.any():
        return []
    shift = int(np.argmin(flags))  # start the scan at a fixed vertex
    order = np.roll(loop, -shift)
    runs, current = [], []
    for i in range(1, k + 1):
        v = order[i % k]
        if free[v]:
            current.append(v)
        elif current:
            runs.append((order[i - len(current) - 1], np.asarray(current), v))
            current = []
    return runs


def _bulge_runs(uv, points, loops, free, bulge: float = 0.15):
    """Put each free boundary run on a slightly outward arc between its fixed ends.

    The arc's sagitta is ``bulge`` times the chord; positions follow 3D arc length.
    Assumes counter-clockwise charts (interior on the left of the loop).
    """
    for loop in loops:
        for a, run, b in _runs(loop, free):
            chain = np.concatenate([[a], run, [b]])
            seg = np.linalg.norm(np.diff(points[chain], axis=0), axis=1)
            t = np.cumsum(seg)[:-1] / seg.sum()
            p, q = uv[a], uv[b]
            chord = q - p
            outward = np.array([chord[1], -chord[0]])  # right of the chord = outside
            uv[run] = p + t[:, None] * chord + (4.0 * bulge * t * (1.0 - t))[:, None] * outward
    return uv


def repair_folds(uv: np.ndarray, points: np.ndarray, faces: np.ndarray, max_rounds: int = 40):
    """Relax folded regions by local mean-value (Tutte) solves.

    Each round takes the vertices of folded or degenerate triangles, grows them by
    ``1 + round // 3`` vertex rings and re-solves the interior ones as mean-value
    averages of their neighbours, everything outside the region fixed. Part-boundary
    vertices inside the region are first placed on a slightly convex arc between
    the nearest fixed boundary vertices, so the local problem has a convex rim.
    ``uv`` must be oriented counter-clockwise (see :func:`orient_positive`).

    Returns
    -------
    uv : (n, 2) float64, or None when folds remain after ``max_rounds``
    rounds : int, rounds used
    """
    n = len(points)
    loops = boundary_loops(faces)
    on_boundary = np.zeros(n, dtype=bool)
    for loop in loops:
        on_boundary[loop] = True
    weights = mean_value_weights(points, faces)
    rings = _vertex_rings(faces, n)
    uv = uv.copy()
    for rounds in range(max_rounds + 1):
        bad = folded(uv, faces)
        if not bad.any():
            return uv, rounds
        if rounds == max_rounds:
            break
        region = np.zeros(n, dtype=bool)
        region[np.unique(faces[bad])] = True
        for _ in range(1 + rounds // 3):
            region = region | (rings @ region.astype(np.int8) > 0)
        if (region & on_boundary).any():
            uv = _bulge_runs(uv, points, loops, region & on_boundary)
        free = region & ~on_boundary
        if free.any():
            uv = _tutte_solve(weights, uv, free)
    return None, max_rounds


def distortion(uv: np.ndarray, points: np.ndarray, faces: np.ndarray) -> dict:
    """Area ratio (chart share / surface share) and conformal ratio sigma1/sigma2 per triangle."""
    p0, p1, p2 = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    e1, e2 = p1 - p0, p2 - p0
    a3 = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    a2 = 0.5 * np.abs(signed_area2(uv, faces))
    ratio = (a2 / a2.sum()) / (a3 / a3.sum())
    # local orthonormal frame of each 3D triangle
    x_axis = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    normal = np.cross(e1, e2)
    y_axis = np.cross(normal / np.linalg.norm(normal, axis=1, keepdims=True), x_axis)
    src = np.stack(
        [np.stack([np.einsum("ij,ij->i", e, x_axis), np.einsum("ij,ij->i", e, y_axis)], axis=1) for e in (e1, e2)],
        axis=2,
    )  # (f, 2, 2) columns = edges in the 3D frame
    dst = np.stack([uv[faces[:, 1]] - uv[faces[:, 0]], uv[faces[:, 2]] - uv[faces[:, 0]]], axis=2)
    jac = dst @ np.linalg.inv(src)
    sv = np.linalg.svd(jac, compute_uv=False)
    conformal = sv[:, 0] / np.maximum(sv[:, 1], 1e-300)
    q = [1, 50, 99]
    return {
        "area_ratio_p1_p50_p99": [float(x) for x in np.percentile(ratio, q)],
        "conformal_ratio_p50_p99": [float(x) for x in np.percentile(conformal, q[1:])],
    }
