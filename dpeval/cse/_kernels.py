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
