"""Stage 2 (geodesic): slow pure-Python/NumPy/SciPy twins of
:mod:`dpeval.geodesic._kernels` (used by the tests).

Each function here has the name of the kernel it mirrors and follows the same
steps in the same order, so on the same input it gives the same numbers
(bit-for-bit for :func:`geodesic_field`: both use IEEE double arithmetic without
reassociation). They are written for clarity, not speed: a field on the 13k
template takes seconds here and milliseconds in the kernel.

Also: :func:`edge_dijkstra`, shortest paths along mesh edges with
``scipy.sparse.csgraph`` (an upper bound of the geodesic distance).
"""

from __future__ import annotations

import math

import numpy as np

_IMPROVE = 1.0 + 1e-12
_COLINEAR = 1e-18


def _cross(ax: float, ay: float, bx: float, by: float) -> float:
    return ax * by - ay * bx


def _sq(x: float) -> float:
    return x * x


Point = tuple[float, float]


def _dist(p: Point, q: Point) -> float:
    return math.sqrt(_sq(p[0] - q[0]) + _sq(p[1] - q[1]))


def _beyond(s: Point, bound: Point | None, p: Point, side: str) -> bool:
    """Seen from the source ``s``, ``p`` lies outside the cone past its ``side`` bound
    (``"left"``: counter-clockwise of it, ``"right"``: clockwise); never without one."""
    if bound is None:
        return False
    u = (bound[0] - s[0], bound[1] - s[1])
    w = (p[0] - s[0], p[1] - s[1])
    return (_cross(*u, *w) if side == "left" else _cross(*w, *u)) > 0.0


def _window_dist(s: Point, sig: float, left: Point | None, right: Point | None, p: Point):
    """Path length to ``p`` through a window (source ``s`` after ``sig``; cone bounds
    ``left`` / ``right`` or None): around the first bound it lies beyond, else straight."""
    for bound, side in ((left, "left"), (right, "right")):
        if _beyond(s, bound, p, side):
            return sig + _dist(s, bound) + _dist(p, bound)
    return sig + _dist(p, s)


def _around(s: Point, p: Point, left: Point | None, right: Point | None) -> float:
    """Distance from ``s`` to ``p``, around a bound it lies beyond (the right one when
    both apply)."""
    d = _dist(s, p)
    for bound, side in ((left, "left"), (right, "right")):
        if _beyond(s, bound, p, side):
            d = _dist(s, bound) + _dist(p, bound)
    return d


def _clockwise(s: Point, u: Point, v: Point) -> bool:
    """Direction ``v - s`` lies strictly clockwise of ``u - s``, beyond collinearity."""
    t = _cross(u[0] - s[0], u[1] - s[1], v[0] - s[0], v[1] - s[1])
    nu = _sq(u[0] - s[0]) + _sq(u[1] - s[1])
    nv = _sq(v[0] - s[0]) + _sq(v[1] - s[1])
    return t < 0.0 and t * t > _COLINEAR * nu * nv


class _BucketQueue:
    """The kernel's bucket queue: LIFO within a bucket, absolute bucket numbers."""

    def __init__(self, width: float, nbuckets: int) -> None:
        self.inv_width = 1.0 / width
        self.nbuckets = nbuckets
        self.cur = 0
        self.buckets: dict[int, list[int]] = {}
        self.where: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.where)

    def push(self, f: int, key: float) -> None:
        if f in self.where:
            self.buckets[self.where.pop(f)].remove(f)
        bk = int(key * self.inv_width)
        if bk < self.cur:
            bk = self.cur
        elif bk >= self.cur + self.nbuckets:
            bk = self.cur + self.nbuckets - 1
        self.buckets.setdefault(bk, []).insert(0, f)
        self.where[f] = bk

    def pop(self) -> int:
        while not self.buckets.get(self.cur):
            self.cur += 1
        f = self.buckets[self.cur].pop(0)
        del self.where[f]
        return f


def geodesic_field(
    source: int,
    vertices: np.ndarray,
    faces: np.ndarray,
    corners: np.ndarray,
    hnbr: np.ndarray,
    hdat: np.ndarray,
    htwin: np.ndarray,
    hopq: np.ndarray,
    vf_off: np.ndarray,
    vf_face: np.ndarray,
    vf_corner: np.ndarray,
    width: float,
    nbuckets: int,
) -> tuple[np.ndarray, int]:
    """Twin of :func:`dpeval.geodesic._kernels.geodesic_field` (face-window propagation).

    Parameters
    ----------
    source : int
    vertices, faces, corners, hnbr, hdat, htwin, hopq, vf_off, vf_face, vf_corner
        Mesh arrays as described in :mod:`dpeval.geodesic._kernels`.
    width : float
    nbuckets : int

    Returns
    -------
    out : (V,) float64
        Distances from ``source``.
    nexp : int
        Number of face expansions.
    """
    nf = faces.shape[0]
    nv = vertices.shape[0]
    inf = math.inf
    # face state: [x, y, sigma, key, lx, ly, rx, ry], cone flag, entry edge
    state = [[0.0, 0.0, 0.0, inf, 0.0, 0.0, 0.0, 0.0] for _ in range(nf)]
    bounds = [(False, False)] * nf  # (left bounded, right bounded)
    entry = [-1] * nf
    queue = _BucketQueue(width, nbuckets)
    for q in range(vf_off[source], vf_off[source + 1]):
        f = int(vf_face[q])
        c = int(vf_corner[q])
        x = float(corners[f, c, 0])
        y = float(corners[f, c, 1])
        cx = (float(corners[f, 0, 0]) + float(corners[f, 1, 0]) + float(corners[f, 2, 0])) / 3.0
        cy = (float(corners[f, 0, 1]) + float(corners[f, 1, 1]) + float(corners[f, 2, 1])) / 3.0
        key = _dist((cx, cy), (x, y))
        state[f][:4] = [x, y, 0.0, key]
        bounds[f] = (False, False)
        entry[f] = -1
        queue.push(f, key)
    nexp = 0
    while len(queue):
        f = queue.pop()
        nexp += 1
        sx0, sy0, sig, _, lx0, ly0, rx0, ry0 = state[f]
        lb, rb = bounds[f]
        for i in range(3):
            h = 3 * f + i
            g = int(hnbr[h])
            if g < 0 or i == entry[f]:
                continue
            c, s, tx, ty, ax, ay, bx, by, cx, cy = (float(t) for t in hdat[h])
            x = c * sx0 - s * sy0 + tx
            y = s * sx0 + c * sy0 + ty
            room = state[g][3] - sig
            if room <= 0.0 or _sq(x - cx) + _sq(y - cy) >= room * room:
                continue
            lx = ly = rx = ry = 0.0
            if lb:
                lx = c * lx0 - s * ly0 + tx
                ly = s * lx0 + c * ly0 + ty
            if rb:
                rx = c * rx0 - s * ry0 + tx
                ry = s * rx0 + c * ry0 + ty
            nlb = nrb = False
            nlx = nly = nrx = nry = 0.0
            src = (x, y)
            left = (lx, ly) if lb else None
            right = (rx, ry) if rb else None
            if _cross(bx - ax, by - ay, x - ax, y - ay) >= 0.0:
                # source behind the edge: bend at A or B
                da = _around(src, (ax, ay), left, right)
                db = _around(src, (bx, by), left, right)
                if da + _dist((cx, cy), (ax, ay)) <= db + _dist((cx, cy), (bx, by)):
                    nx, ny, nsig = ax, ay, sig + da
                else:
                    nx, ny, nsig = bx, by, sig + db
                key = nsig + _dist((cx, cy), (nx, ny))
            else:
                opq = int(hopq[h])
                # each side keeps its incoming bound unless the edge end there is opaque
                # and at least as tight; it is bounded if it was or the end is opaque
                keep_l = lb and (not opq & 1 or _clockwise(src, (ax, ay), (lx, ly)))
                keep_r = rb and (not opq & 2 or _clockwise(src, (rx, ry), (bx, by)))
                nlb, nrb = lb or bool(opq & 1), rb or bool(opq & 2)
                plx, ply = (lx, ly) if keep_l else (ax, ay)
                prx, pry = (rx, ry) if keep_r else (bx, by)
                lin, rin = not keep_l, not keep_r
                if nlb and nrb and _cross(plx - x, ply - y, prx - x, pry - y) >= 0.0:
                    use_left = not lin
                    if (not lin) and (not rin):
                        dl = _dist(src, (plx, ply)) + _dist((cx, cy), (plx, ply))
                        dr = _dist(src, (prx, pry)) + _dist((cx, cy), (prx, pry))
                        use_left = dl <= dr
                    nx, ny = (plx, ply) if use_left else (prx, pry)
                    nsig = sig + _dist(src, (nx, ny))
                    nlb, nrb = bool(opq & 1), bool(opq & 2)
                    nlx, nly, nrx, nry = ax, ay, bx, by
                else:
                    nx, ny, nsig = x, y, sig
                    nlx, nly, nrx, nry = plx, ply, prx, pry
                nleft = (nlx, nly) if nlb else None
                nright = (nrx, nry) if nrb else None
                key = _window_dist((nx, ny), nsig, nleft, nright, (cx, cy))
            if key * _IMPROVE < state[g][3]:
                state[g] = [nx, ny, nsig, key, nlx, nly, nrx, nry]
                bounds[g] = (nlb, nrb)
                entry[g] = int(htwin[h]) - 3 * g
                queue.push(g, key)
    out = np.full(nv, inf)
    for f in range(nf):
        x, y, sig, key, lx, ly, rx, ry = state[f]
        if key == inf:
            continue
        lb, rb = bounds[f]
        left = (lx, ly) if lb else None
        right = (rx, ry) if rb else None
        for i in range(3):
            v = int(faces[f, i])
            if sig >= out[v]:
                continue
            corner = (float(corners[f, i, 0]), float(corners[f, i, 1]))
            dd = _window_dist((x, y), sig, left, right, corner)
            if dd < out[v]:
                out[v] = dd
    eu = np.sqrt(((vertices - vertices[source]) ** 2).sum(axis=1))
    out = np.maximum(out, eu)
    out[source] = 0.0
    return out, nexp


def group_by_source(hi: np.ndarray, lo: np.ndarray, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """Twin of :func:`dpeval.geodesic._kernels.group_by_source` (stable argsort)."""
    keep = np.flatnonzero(hi != lo)
    perm = keep[np.argsort(hi[keep], kind="stable")].astype(np.int64)
    ptr = np.zeros(nv + 1, np.int64)
    np.cumsum(np.bincount(hi[keep], minlength=nv), out=ptr[1:])
    return ptr, perm


def lookup_condensed(
    table: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float, unreachable: int
) -> np.ndarray:
    """Twin of :func:`dpeval.geodesic._kernels.lookup_condensed` (official index rule)."""
    i = np.maximum(a, b).astype(np.int64)
    j = np.minimum(a, b).astype(np.int64)
    out = np.zeros(i.shape[0])
    m = i != j
    q = np.asarray(table)[i[m] * (i[m] - 1) // 2 + j[m]]
    vals = q.astype(np.float64) * scale
    vals[q == unreachable] = np.inf
    out[m] = vals
    return out


def fill_condensed(mesh_args: tuple, scale: float) -> np.ndarray:
    """Twin of :func:`dpeval.geodesic._kernels.fill_condensed` for the whole table.

    Parameters
    ----------
    mesh_args : tuple
        ``(vertices, faces, corners, hnbr, hdat, htwin, hopq, vf_off, vf_face,
        vf_corner, width, nbuckets)``.
    scale : float

    Returns
    -------
    (V (V - 1) / 2,) uint16
    """
    nv = mesh_args[0].shape[0]
    table = np.zeros(nv * (nv - 1) // 2, np.uint16)
    for a in range(1, nv):
        d, _ = geodesic_field(a, *mesh_args)
        q = np.minimum(np.floor(d[:a] / scale + 0.5), 65534.0)
        q[~np.isfinite(d[:a])] = 65535
        table[a * (a - 1) // 2 : a * (a - 1) // 2 + a] = q.astype(np.uint16)
    return table


def edge_dijkstra(vertices: np.ndarray, faces: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Shortest paths along mesh edges (scipy), an upper bound of the geodesic.

    Parameters
    ----------
    vertices : (V, 3) float
    faces : (F, 3) int
    sources : (S,) int

    Returns
    -------
    (S, V) float64
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    w = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    n = v.shape[0]
    g = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    g = g.maximum(g.T)
    return dijkstra(g, directed=False, indices=np.asarray(sources))
