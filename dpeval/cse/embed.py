"""CSE stage: per-pixel embeddings -> mesh vertices.

In: a detection's head-resolution maps (``coarse_segm`` (K, S, S), ``embedding``
(D, S, S), float32), its box, pixels to read, and a mesh's vertex embeddings (V, D).
Out: predicted coarse labels and vertex ids at those pixels.

Rules (detectron2 ``densepose_coco_evaluation.py``, CSE path):

- maps are resized to the box, ``(max(int(h), 1), max(int(w), 1))``, exactly like
  ``F.interpolate(x, size, mode="bilinear", align_corners=False)``: source coordinate
  ``scale * (i + 0.5) - 0.5`` with ``scale = in / out`` (float32, the coordinate rounded
  once as PyTorch's fused multiply-add does; checked against torch), clamped at 0, the
  upper neighbour clamped to the last row/column, float32 arithmetic, the width
  interpolated first. :func:`sample_bilinear` evaluates the same formula only at the
  pixels a metric reads (a box-sized 16-channel map is never built);
- a pixel's coarse label is the argmax over the resized ``coarse_segm`` channels (first
  channel on ties, as ``torch.argmax``); label 0 = background;
- its vertex is the argmin over mesh vertices of the squared Euclidean distance between
  the (unnormalised) pixel embedding and the L2-normalised vertex embeddings, ties to
  the lowest index (:func:`nearest_vertices`). detectron2 evaluates
  ``-2 p.e + |p|^2 + |e|^2`` in float32 on a GPU; dpeval screens candidates with the
  same float32 product (BLAS) and decides among them with the exact float64 distance,
  so near-ties within float32 rounding may resolve differently from a GPU run.
"""

from __future__ import annotations

import numpy as np

from . import _kernels

__all__ = [
    "NORM_EPS",
    "box_size",
    "coarse_labels",
    "nearest_vertices",
    "normalize_embeddings",
    "resize_bilinear",
    "sample_bilinear",
    "spectral_embeddings",
]

NORM_EPS = 1e-6
"""detectron2's ``normalize_embeddings`` floor on the row norm."""

_CHUNK = 256  # queries per BLAS screen: (256, V) float32 = 28 MB at V = 27,554


def box_size(bbox: np.ndarray) -> tuple[int, int]:
    """``(max(int(h), 1), max(int(w), 1))``: the size maps are resized to."""
    return max(int(bbox[3]), 1), max(int(bbox[2]), 1)


def _axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    scale = np.float32(n_in) / np.float32(n_out)
    # PyTorch's CPU kernel evaluates scale * (i + 0.5) - 0.5 as one fused multiply-add:
    # the float64 product and difference are exact, so one rounding to float32 is an FMA
    src = (np.float64(scale) * (np.arange(n_out) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, (np.float32(1) - lam).astype(np.float32), lam


def resize_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize ``(C, H, W)`` maps like ``F.interpolate(..., mode="bilinear",
    align_corners=False)``.

    Parameters
    ----------
    src : (C, H, W) float
    out_h, out_w : int

    Returns
    -------
    (C, out_h, out_w) float32

    Example
    -------
    >>> resize_bilinear(np.array([[[0.0, 1.0]]]), 1, 4).round(2).tolist()
    [[[0.0, 0.25, 0.75, 1.0]]]
    """
    x = np.asarray(src, dtype=np.float32)
    r0, r1, rw0, rw1 = _axis(out_h, x.shape[1])
    c0, c1, cw0, cw1 = _axis(out_w, x.shape[2])
    rows = x[:, :, c0] * cw0 + x[:, :, c1] * cw1  # (C, H, out_w)
    return rows[:, r0, :] * rw0[:, None] + rows[:, r1, :] * rw1[:, None]


def sample_bilinear(
    src: np.ndarray, out_h: int, out_w: int, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Values of :func:`resize_bilinear` ``(src, out_h, out_w)`` at given pixels only.

    Parameters
    ----------
    src : (C, H, W) float
    rows, cols : (N,) int
        Pixels of the resized map (``0 <= rows < out_h``, ``0 <= cols < out_w``).

    Returns
    -------
    (N, C) float32
    """
    x = np.asarray(src, dtype=np.float32)
    r0, r1, rw0, rw1 = (a[rows] for a in _axis(out_h, x.shape[1]))
    c0, c1, cw0, cw1 = (a[cols] for a in _axis(out_w, x.shape[2]))
    top = x[:, r0, c0] * cw0 + x[:, r0, c1] * cw1
    bot = x[:, r1, c0] * cw0 + x[:, r1, c1] * cw1
    return (top * rw0 + bot * rw1).T


def coarse_labels(values: np.ndarray) -> np.ndarray:
    """``argmax`` over channels of ``(N, K)`` (or ``(K, H, W)`` with ``axis=0``) scores;
    the first channel wins ties."""
    return np.argmax(values, axis=-1)


def normalize_embeddings(e: np.ndarray) -> np.ndarray:
    """L2-normalise rows as detectron2 does: ``e / max(|e|, 1e-6)``, float32."""
    e = np.asarray(e, dtype=np.float32)
    norm = np.linalg.norm(e.astype(np.float64), axis=1, keepdims=True)
    return (e / np.maximum(norm, NORM_EPS)).astype(np.float32)


def nearest_vertices(
    pix: np.ndarray, verts: np.ndarray, *, method: str = "auto", chunk: int = _CHUNK
) -> np.ndarray:
    """Nearest vertex embedding of each pixel embedding.

    Parameters
    ----------
    pix : (N, D) float
        Pixel embeddings (not normalised).
    verts : (V, D) float
        Vertex embeddings (normalised by the caller).
    method : {"auto", "blas", "kdtree", "numba"}
        ``"blas"``: float32 ``|e|^2 - 2 p.e`` screens in chunks of ``chunk`` queries,
        then the exact float64 distance among the candidates within the screen's
        rounding bound (numba, parallel over queries); ``"kdtree"``: a k-d tree on the
        pixel directions with an exact window (:func:`_nearest_kdtree`); ``"numba"``:
        exact float64 brute force with partial-distance early exit; ``"auto"``
        (default) times ``kdtree`` and ``blas`` on a sample and runs the faster. All
        give the vertex with the smallest ``sum((p - e)^2)`` in float64, ties to the
        lowest index.

    Returns
    -------
    (N,) int64

    Example
    -------
    >>> v = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> nearest_vertices(np.array([[0.9, 0.2], [0.5, 0.5]]), v).tolist()
    [0, 0]
    """
    p64 = np.ascontiguousarray(pix, dtype=np.float64)
    e64 = np.ascontiguousarray(verts, dtype=np.float64)
    out = np.full(len(p64), -1, dtype=np.int64)
    if len(p64) == 0 or len(e64) == 0:
        return out
    if method == "auto":
        method = _pick_method(p64, e64)
    if method == "numba":
        _kernels.nearest_direct(p64, e64, out)
        return out
    if method == "kdtree":
        return _nearest_kdtree(p64, e64)
    if method != "blas":
        raise ValueError(f"method must be 'auto', 'blas', 'kdtree' or 'numba', got {method!r}")
    p32 = np.ascontiguousarray(pix, dtype=np.float32)
    e32 = np.ascontiguousarray(verts, dtype=np.float32)
    e_norm2 = np.einsum("ij,ij->i", e32, e32)
    e_max = float(np.sqrt(e_norm2.max()))
    p_norm = np.sqrt(np.einsum("ij,ij->i", p64, p64))
    # float32 rounding of |e|^2 - 2 p.e is below D * 2^-23 * (|e|^2 + 2 |p||e|) (plus the
    # product's accumulation); a 64x margin keeps every exact minimiser among candidates
    bound = 64.0 * p64.shape[1] * 2.0**-23 * (e_max**2 + 2.0 * p_norm * e_max + 1e-30)
    tol = bound.astype(np.float32)
    em2t = np.ascontiguousarray((np.float32(-2) * e32).T)  # exact: a power-of-two scale
    for s in range(0, len(p32), chunk):
        approx = p32[s : s + chunk] @ em2t
        approx += e_norm2
        _kernels.refine_nearest(approx, tol[s : s + chunk], p64, e64, out, s)
    return out


_KD_K = 8  # neighbours fetched per query before checking the window
_KD_K2 = 64  # second, batched fetch for the queries whose window holds more than _KD_K


def _pick_method(p64: np.ndarray, e64: np.ndarray, sample: int = 512) -> str:
    """The faster of ``kdtree`` and ``blas`` on a sample of the queries (both exact).

    A k-d tree wins by far when pixel embeddings lie near the vertex embeddings (a
    trained model; smooth, low-dimensional manifolds such as LBO-based embeddings) and
    loses when they are far from all of them (noise); timing a sample decides.
    """
    import time

    if len(p64) < 4 * sample:
        return "blas"
    idx = np.linspace(0, len(p64) - 1, sample).astype(np.int64)
    times = {}
    for m in ("kdtree", "blas"):
        t = time.perf_counter()
        nearest_vertices(p64[idx], e64, method=m)
        times[m] = time.perf_counter() - t
    return min(times, key=times.__getitem__)


def _nearest_kdtree(p64: np.ndarray, e64: np.ndarray) -> np.ndarray:
    """Exact nearest vertex through a k-d tree on the directions ``p / |p|``.

    With ``n_e = |e|^2 = 1 + delta_e``, ``|p - e|^2 = |p| |q - e|^2 + (1 - |p|) delta_e +
    const`` for ``q = p / |p|``; so a vertex can beat the tree's nearest only if its
    ``|q - e|^2`` lies within ``2 max|delta| |1 - |p|| / |p|`` of the smallest (plus
    float64 slack). Every vertex in that window is fetched (the k nearest, or a ball
    query when the window reaches past them) and the exact float64 ``sum((p - e)^2)``
    decides, ties to the lowest index. Queries with ``|p| < 1e-6`` use the brute force.
    """
    from scipy.spatial import cKDTree

    out = np.full(len(p64), -1, dtype=np.int64)
    norm = np.sqrt(np.einsum("ij,ij->i", p64, p64))
    tiny = norm < 1e-6
    if tiny.any():
        sub = np.full(int(tiny.sum()), -1, dtype=np.int64)
        _kernels.nearest_direct(np.ascontiguousarray(p64[tiny]), e64, sub)
        out[tiny] = sub
    rows = np.flatnonzero(~tiny)
    if not len(rows):
        return out
    q = p64[rows] / norm[rows, None]
    delta = float(np.abs(np.einsum("ij,ij->i", e64, e64) - 1.0).max())
    slack = 2.0 * delta * np.abs(1.0 - norm[rows]) / norm[rows] + 1e-12
    tree = cKDTree(e64)
    k = min(_KD_K, len(e64))
    dist, idx = tree.query(q, k=k, workers=-1)
    dist, idx = dist.reshape(len(q), k), idx.reshape(len(q), k)
    lim = dist[:, 0] ** 2 + slack
    wide = (dist[:, -1] ** 2 <= lim) & (k < len(e64))
    cand = np.where(dist**2 <= lim[:, None], idx, len(e64))
    cand.sort(axis=1)
    best = _exact_among(p64[rows], e64, cand)
    wide = np.flatnonzero(wide)
    if len(wide) and _KD_K2 < len(e64):  # windows wider than k: one batched query with k2
        d2, i2 = tree.query(q[wide], k=_KD_K2, workers=-1)
        c2 = np.where(d2**2 <= lim[wide, None], i2, len(e64))
        c2.sort(axis=1)
        best[wide] = _exact_among(p64[rows[wide]], e64, c2)
        wide = wide[d2[:, -1] ** 2 <= lim[wide]]
    elif len(wide):
        wide = wide[:0]
        best[:] = _exact_among(p64[rows], e64, np.tile(np.arange(len(e64)), (len(rows), 1)))
    for i in wide:  # still wider: a ball query
        ball = np.sort(np.asarray(tree.query_ball_point(q[i], np.sqrt(lim[i]) * (1 + 1e-12))))
        best[i] = _exact_among(p64[rows[i : i + 1]], e64, ball[None, :])[0]
    out[rows] = best
    return out


def _exact_among(p: np.ndarray, e: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per row, the candidate (sorted ids, ``len(e)`` = padding) with the smallest exact
    float64 squared distance; ties to the lowest id."""
    valid = cand < len(e)
    safe = np.where(valid, cand, 0)
    d = ((e[safe] - p[:, None, :]) ** 2).sum(axis=2)
    d[~valid] = np.inf
    return safe[np.arange(len(p)), np.argmin(d, axis=1)]


def spectral_embeddings(vertices: np.ndarray, faces: np.ndarray, dim: int = 16) -> np.ndarray:
    """Vertex embeddings of a mesh from its Laplace-Beltrami spectrum (for demos and
    tests): the first ``dim`` non-constant eigenvectors of the cotangent Laplacian
    (lumped mass), scaled by ``1 / sqrt(eigenvalue)`` and L2-normalised per vertex.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    dim : int

    Returns
    -------
    (V, dim) float32, rows of unit length
    """
    from scipy.sparse import coo_matrix, diags
    from scipy.sparse.linalg import eigsh

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(v)
    rows, cols, vals = [], [], []
    area = np.zeros(n)
    for k in range(3):
        i, j, o = f[:, k], f[:, (k + 1) % 3], f[:, (k + 2) % 3]
        a, b = v[i] - v[o], v[j] - v[o]
        cross = np.linalg.norm(np.cross(a, b), axis=1)
        cot = np.einsum("ij,ij->i", a, b) / np.maximum(cross, 1e-12)
        rows += [i, j]
        cols += [j, i]
        vals += [0.5 * cot, 0.5 * cot]
        np.add.at(area, o, cross / 6.0)
    w = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()
    lap = diags(np.asarray(w.sum(axis=1)).ravel()) - w
    mass = diags(np.maximum(area, 1e-12))
    vals_, vecs = eigsh(lap, k=dim + 1, M=mass, sigma=-1e-8, which="LM")
    order = np.argsort(vals_)
    vals_, vecs = vals_[order][1:], vecs[:, order][:, 1:]
    emb = vecs / np.sqrt(np.maximum(vals_, 1e-12))
    emb *= np.sign(emb[np.argmax(np.abs(emb), axis=0), np.arange(dim)])  # fixed signs
    return normalize_embeddings(emb)
