"""Numba kernels of the CSE stage (nearest vertex embedding); twins in ``_reference.py``."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def refine_nearest(approx, tol, pix, verts, out, offset):
    """Exact nearest vertex per row, among the candidates of a float32 screen.

    Parameters
    ----------
    approx : (n, V) float32
        ``|e_v|^2 - 2 p.e_v`` from BLAS (the row's constant ``|p|^2`` left out).
    tol : (n,) float32
        Candidates are the vertices within ``tol`` of the row's smallest ``approx``
        (a bound on the float32 rounding of the screen).
    pix : (N, D) float64
        All queries; rows ``offset .. offset + n`` are this chunk.
    verts : (V, D) float64
    out : (N,) int64
        Written at ``offset + i``: the vertex with the smallest exact squared distance
        ``sum((p - e)^2)`` (float64), ties to the lowest index.
    """
    n, nv = approx.shape
    d = verts.shape[1]
    for i in numba.prange(n):
        row = approx[i]
        m = row[0]
        for j in range(1, nv):
            if row[j] < m:
                m = row[j]
        lim = m + tol[i]
        best = np.inf
        arg = -1
        q = offset + i
        for j in range(nv):
            if row[j] <= lim:
                s = 0.0
                for k in range(d):
                    t = pix[q, k] - verts[j, k]
                    s += t * t
                if s < best:
                    best = s
                    arg = j
        out[q] = arg


@numba.njit(cache=True, parallel=True)
def nearest_direct(pix, verts, out):
    """Brute-force nearest vertex in float64 with partial-distance early exit.

    Parameters
    ----------
    pix : (N, D) float64
    verts : (V, D) float64
    out : (N,) int64
        Vertex with the smallest ``sum((p - e)^2)``, ties to the lowest index (a later
        vertex must be strictly closer to replace the best).
    """
    n, d = pix.shape
    nv = verts.shape[0]
    for i in numba.prange(n):
        best = np.inf
        arg = -1
        for j in range(nv):
            s = 0.0
            k = 0
            while k < d and s < best:
                t = pix[i, k] - verts[j, k]
                s += t * t
                k += 1
            if k == d and s < best:
                best = s
                arg = j
        out[i] = arg


@numba.njit(cache=True, inline="always")
def _exact_best(pix, q, verts, cand, nc):
    """Lowest-index vertex of the smallest exact float64 distance among ``cand[:nc]``
    (candidates in increasing index order)."""
    best = np.inf
    arg = -1
    d = verts.shape[1]
    for c in range(nc):
        j = cand[c]
        s = 0.0
        for k in range(d):
            t = pix[q, k] - verts[j, k]
            s += t * t
        if s < best:
            best = s
            arg = j
    return arg


@numba.njit(cache=True, parallel=True)
def nearest_fused(pix32, pix64, et32, en32, verts64, tol, out, group, block, max_cand):
    """Nearest vertex per query without a distance matrix in memory.

    Queries are taken ``group`` at a time; vertices ``block`` at a time (the block of
    the transposed embeddings stays in L1 across the group). Per query and block the
    float32 screen ``|e|^2 - 2 p.e`` is accumulated dimension by dimension (vectorised
    over vertices); vertices within ``tol`` of the running minimum are kept as
    candidates (at most ``max_cand``; on overflow the query is rescanned exactly), and
    the exact float64 ``sum((p - e)^2)`` decides among them, ties to the lowest index.

    Parameters
    ----------
    pix32 : (N, D) float32
    pix64 : (N, D) float64
    et32 : (D, V) float32
        Transposed vertex embeddings.
    en32 : (V,) float32
        ``|e|^2``.
    verts64 : (V, D) float64
    tol : (N,) float32
    out : (N,) int64
    group, block, max_cand : int
    """
    n, d = pix32.shape
    nv = et32.shape[1]
    n_groups = (n + group - 1) // group
    for g in numba.prange(n_groups):
        q0 = g * group
        q1 = min(q0 + group, n)
        ng = q1 - q0
        acc = np.empty(block, np.float32)
        cand = np.empty((ng, max_cand), np.int64)
        cval = np.empty((ng, max_cand), np.float32)
        nc = np.zeros(ng, np.int64)
        over = np.zeros(ng, np.bool_)
        m = np.full(ng, np.inf, np.float32)
        for b0 in range(0, nv, block):
            w = min(block, nv - b0)
            for qi in range(ng):
                q = q0 + qi
                for j in range(w):
                    acc[j] = en32[b0 + j]
                for k in range(d):
                    qk = np.float32(-2.0) * pix32[q, k]
                    for j in range(w):
                        acc[j] += qk * et32[k, b0 + j]
                mq = m[qi]
                tq = tol[q]
                for j in range(w):
                    s = acc[j]
                    if s <= mq + tq:
                        if s < mq:
                            mq = s
                        c = nc[qi]
                        if c == max_cand:  # compact: drop candidates now out of the window
                            c2 = 0
                            for c1 in range(c):
                                if cval[qi, c1] <= mq + tq:
                                    cand[qi, c2] = cand[qi, c1]
                                    cval[qi, c2] = cval[qi, c1]
                                    c2 += 1
                            c = c2
                            if c == max_cand:
                                over[qi] = True
                                c = 0
                        cand[qi, c] = b0 + j
                        cval[qi, c] = s
                        nc[qi] = c + 1
                m[qi] = mq
        for qi in range(ng):
            q = q0 + qi
            if over[qi]:
                best = np.inf
                arg = -1
                for j in range(nv):
                    s = 0.0
                    for k in range(d):
                        t = pix64[q, k] - verts64[j, k]
                        s += t * t
                    if s < best:
                        best = s
                        arg = j
                out[q] = arg
                continue
            c2 = 0
            for c1 in range(nc[qi]):
                if cval[qi, c1] <= m[qi] + tol[q]:
                    cand[qi, c2] = cand[qi, c1]
                    c2 += 1
            out[q] = _exact_best(pix64, q, verts64, cand[qi], c2)
