"""Stage 2 (geodesic): the Numba kernels of the geodesic engine.

Kernels trust their input: the public wrappers in :mod:`dpeval.geodesic.solver`
validate it and pass C-contiguous arrays of the documented dtypes. Each kernel has a
slow pure-Python twin of the same name in :mod:`dpeval.geodesic._reference`, used by
the tests.

The propagation (:func:`geodesic_field` and its hot loop ``_expand``) is written as
small ``inline="always"`` helpers (queue operations, window unfolding, cone
narrowing, distances through a window); Numba inlines them at IR level, so the
compiled loop and its numbers are those of the former single 200-line kernel
(bit-identical fields and tables on the open template). Three helpers that several
call sites share (``_dist``, ``_window``, ``_cone_side``) are ordinary compiled
functions instead (LLVM still inlines them): inlined at IR level they cost 0.6 CPU-s
more on a first-ever compile, for no measurable speed. Helpers that only kernels
call are compiled without a CPython wrapper (``no_cpython_wrapper=True``: 0.3 s less
of a first-ever compile), and every helper is called with one set of argument types,
so each compiles once. :func:`geodesic_field` (full fields: the table and
``GeodesicSolver.field``) and :func:`geodesic_targets` (early-stopped fields: grouped
pairs) are separate kernels over the same propagation, so a command compiles only the
one it runs. The hot loop prefetches the data of the next face in its bucket
(``_prefetch``, LLVM's ``llvm.prefetch``): ``perf`` showed a quarter of the loop's time
stalled on loading half-edge data and neighbours' keys (the mesh arrays are about 10 MB,
beyond the L2 cache); with the prefetch a full field takes 15-17 % less, with the
same values. The module is longer than
500 lines because it holds the whole engine: propagation, the parallel pair and table
drivers and the table lookup, beside their twins.

Geodesic mesh arrays shared by the kernels, for V vertices, F faces and
H = 3F half-edges (half-edge ``h = 3 f + i`` runs from ``faces[f, i]`` to
``faces[f, (i + 1) % 3]``):

- ``corners`` : (F, 3, 2) float64, the corners of each face laid out in the
  face's own plane frame (corner 0 at the origin, corner 1 on the +x axis,
  corner 2 above it).
- ``hnbr`` : (H,) int32, the face on the other side of each half-edge, -1 on a
  boundary edge; ``htwin`` : (H,) int32, the opposite half-edge (-1 on a
  boundary).
- ``hdat`` : (H, 10) float64, for each half-edge ``h`` of face ``f`` with
  neighbour face ``g``: the rigid motion from ``f``'s frame to ``g``'s frame
  (``x' = c x - s y + tx``, ``y' = s x + c y + ty``; columns 0-3: c, s, tx, ty),
  then, in ``g``'s frame, the shared edge seen from ``g`` (columns 4-7: A, B,
  with ``g``'s third corner on the left of A -> B) and ``g``'s centroid
  (columns 8-9).
- ``hopq`` : (H,) uint8, bit 0 / bit 1 set when the neighbour-frame edge end A /
  B is "opaque" (may bound a window's cone): saddle and convex interior
  vertices, reflex boundary vertices; flat ones let windows pass.
- ``vf_off`` (V+1,) int64, ``vf_face`` / ``vf_corner`` (3F,) int32: the faces
  around each vertex and the vertex's corner index in them.

Face state (``state``, (F, 8) float64) during a propagation: virtual source
(x, y), the path length travelled before it (sigma), the queue key, and the two
points bounding the cone of valid directions from the virtual source (left
point, right point). ``link`` ((F, 4) int32) holds the bucket-queue links and,
in column 3, the cone flags (bit 0: has a left bound, bit 1: has a right
bound) and, from bit 2, the entry edge + 1.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

# Accept a new virtual source only if it improves the face key by more than this
# relative amount (stops endless 1-ulp re-updates in the label-correcting loop).
_IMPROVE = 1.0 + 1e-12
# squared sine below which three points count as collinear for cone narrowing
_COLINEAR = 1e-18


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Ask the CPU to bring ``arr[i, j]`` (a 2D C array) into its caches: LLVM's
    ``llvm.prefetch`` (read, high locality). No effect on any value."""
    sig = types.void(arr, i, j)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


@njit(cache=True, inline="always")
def _sq(x):
    return x * x


@njit(cache=True, no_cpython_wrapper=True)
def _dist(ax, ay, bx, by):
    """Distance between the points (ax, ay) and (bx, by)."""
    return math.sqrt(_sq(ax - bx) + _sq(ay - by))


@njit(cache=True, inline="always")
def _window_dist(x, y, sig, lb, lx, ly, rb, rx, ry, px, py):
    """Path length to point (px, py) through a window: source (x, y) after ``sig``,
    around the left bound (lx, ly) or the right bound (rx, ry) when the point lies
    outside the cone (flags ``lb``/``rb``: the bound exists)."""
    if lb and _cross(lx - x, ly - y, px - x, py - y) > 0.0:
        return sig + _dist(x, y, lx, ly) + _dist(px, py, lx, ly)
    if rb and _cross(px - x, py - y, rx - x, ry - y) > 0.0:
        return sig + _dist(x, y, rx, ry) + _dist(px, py, rx, ry)
    return sig + _dist(px, py, x, y)


@njit(cache=True, inline="always")
def _corner_dist(f, i, state, link, corners):
    """Distance to corner ``i`` of face ``f`` through the face's window (around the
    cone bound when the corner lies outside the cone).

    :func:`_window_dist` for a stored window, reading the bounds only when they exist
    (the early stop calls it for every target, often).
    """
    x = state[f, 0]
    y = state[f, 1]
    sig = state[f, 2]
    px = corners[f, i, 0]
    py = corners[f, i, 1]
    if (link[f, 3] & 1) != 0:
        lx = state[f, 4]
        ly = state[f, 5]
        if _cross(lx - x, ly - y, px - x, py - y) > 0.0:
            return sig + _dist(x, y, lx, ly) + _dist(px, py, lx, ly)
    if (link[f, 3] & 2) != 0:
        rx = state[f, 6]
        ry = state[f, 7]
        if _cross(px - x, py - y, rx - x, ry - y) > 0.0:
            return sig + _dist(x, y, rx, ry) + _dist(px, py, rx, ry)
    return sig + _dist(px, py, x, y)


@njit(cache=True, inline="always")
def _straight(vertices, v, sx, sy, sz):
    """Straight-line distance from vertex ``v`` to the point (sx, sy, sz)."""
    return math.sqrt(_sq(vertices[v, 0] - sx) + _sq(vertices[v, 1] - sy) + _sq(vertices[v, 2] - sz))


@njit(cache=True, no_cpython_wrapper=True)
def _vertex_estimate(v, state, link, corners, vf_off, vf_face, vf_corner):
    """Smallest distance to vertex ``v`` over the windows of its faces (inf if none)."""
    best = np.inf
    for q in range(vf_off[v], vf_off[v + 1]):
        f = vf_face[q]
        if state[f, 3] == np.inf or state[f, 2] >= best:
            continue
        dd = _corner_dist(f, vf_corner[q], state, link, corners)
        if dd < best:
            best = dd
    return best


@njit(cache=True, no_cpython_wrapper=True)
def _targets_settled(floor, stop_t, margin, state, link, corners, vf_off, vf_face, vf_corner):
    """True when every target has a finite estimate and the queue floor has passed the
    largest of them by ``margin`` (plus 1 %): no later window can improve them."""
    top = 0.0
    for k in range(stop_t.shape[0]):
        e = _vertex_estimate(stop_t[k], state, link, corners, vf_off, vf_face, vf_corner)
        if e == np.inf:
            return False
        if e > top:
            top = e
    return floor > top * 1.01 + margin


# ------------------------------------------------------------------ bucket queue


@njit(cache=True, inline="always")
def _push(g, key, cur, inv_width, nbuckets, head, link):
    """Insert face ``g`` at the front of the bucket of ``key`` (clamped to the cyclic
    range ``cur .. cur + nbuckets - 1``; ``nbuckets`` is a power of two)."""
    bk = int(key * inv_width)
    if bk < cur:
        bk = cur
    elif bk >= cur + nbuckets:
        bk = cur + nbuckets - 1
    slot = bk & (nbuckets - 1)
    link[g, 1] = head[slot]
    link[g, 2] = -1
    if head[slot] >= 0:
        link[head[slot], 2] = g
    head[slot] = g
    link[g, 0] = slot


@njit(cache=True, inline="always")
def _pop(slot, head, link):
    """Remove and return the first face of bucket ``slot`` (which is not empty)."""
    f = np.int64(head[slot])  # int64 like the face loops: _window compiles once
    head[slot] = link[f, 1]
    if link[f, 1] >= 0:
        link[link[f, 1], 2] = -1
    link[f, 0] = -1
    return f


# ------------------------------------------------------------------ window unfolding


@njit(cache=True, inline="always")
def _move(c, s, tx, ty, x, y):
    """Rigid motion of a half-edge (``hdat`` columns 0-3) applied to (x, y)."""
    return c * x - s * y + tx, s * x + c * y + ty


@njit(cache=True, inline="always")
def _around(x, y, px, py, lb, lx, ly, rb, rx, ry):
    """Distance from the source (x, y) to (px, py), around a cone bound the point lies
    beyond (the right bound wins when both apply)."""
    d = _dist(x, y, px, py)
    if lb and _cross(lx - x, ly - y, px - x, py - y) > 0.0:
        d = _dist(x, y, lx, ly) + _dist(px, py, lx, ly)
    if rb and _cross(px - x, py - y, rx - x, ry - y) > 0.0:
        d = _dist(x, y, rx, ry) + _dist(px, py, rx, ry)
    return d


@njit(cache=True, inline="always")
def _bend_behind(x, y, sig, lb, lx, ly, rb, rx, ry, ax, ay, bx, by, cx, cy):
    """The source lies on the neighbour's side of the shared edge A -> B: bend at the
    endpoint that gives the shorter route to the centroid (cx, cy), reaching it around
    the cone bounds if it is outside the cone. Returns the new source and sigma."""
    da = _around(x, y, ax, ay, lb, lx, ly, rb, rx, ry)
    db = _around(x, y, bx, by, lb, lx, ly, rb, rx, ry)
    if da + _dist(cx, cy, ax, ay) <= db + _dist(cx, cy, bx, by):
        nx = ax
        ny = ay
        nsig = sig + da
    else:
        nx = bx
        ny = by
        nsig = sig + db
    return nx, ny, nsig


@njit(cache=True, inline="always")
def _old_bound_tighter(x, y, ux, uy, vx, vy):
    """True when direction (v - source) lies strictly clockwise of (u - source), beyond
    collinearity (a bound in line with the source never closes the cone)."""
    t = _cross(ux - x, uy - y, vx - x, vy - y)
    return t < 0.0 and t * t > _COLINEAR * (_sq(ux - x) + _sq(uy - y)) * (_sq(vx - x) + _sq(vy - y))


@njit(cache=True, no_cpython_wrapper=True)
def _cone_side(x, y, old, opaque, ux, uy, vx, vy, ox, oy, ex, ey):
    """One side of the cone through a shared edge: ``U -> V`` is that side's edge end
    and incoming bound in clockwise order (left side: A, then the left bound; right
    side: the right bound, then B); ``O`` is the incoming bound (which exists when
    ``old``) and ``E`` the edge end, i.e. ``(O, E)`` is ``(V, U)`` on the left side
    and ``(U, V)`` on the right (passed as points rather than as a literal flag, so
    that the function compiles once).

    The incoming bound is kept unless the edge end is ``opaque`` and at least as tight;
    the side is bounded when it had a bound or its edge end is opaque. Returns
    ``(bounded, px, py, at_end)``: the bounding point and whether it is the edge end.
    """
    px = ex
    py = ey
    bounded = opaque
    at_end = True
    if old:
        bounded = True
        if not opaque or _old_bound_tighter(x, y, ux, uy, vx, vy):
            px = ox
            py = oy
            at_end = False
    return bounded, px, py, at_end


@njit(cache=True, inline="always")
def _through_edge(x, y, sig, lb, lx, ly, rb, rx, ry, ax, ay, bx, by, cx, cy, opq):
    """Window through the shared edge A -> B: the edge's cone narrowed by the incoming
    one (flat vertices and convex boundary vertices, ``opq`` bit clear, never narrow
    it); when the cone comes out empty the path bends at the vertex that blocks it.

    Returns ``(x, y, sigma, has_left, lx, ly, has_right, rx, ry)`` of the new window.
    """
    nlb, plx, ply, lin = _cone_side(x, y, lb, (opq & 1) != 0, ax, ay, lx, ly, lx, ly, ax, ay)
    nrb, prx, pry, rin = _cone_side(x, y, rb, (opq & 2) != 0, rx, ry, bx, by, rx, ry, bx, by)
    if nlb and nrb and _cross(plx - x, ply - y, prx - x, pry - y) >= 0.0:
        # empty cone: the window misses the edge, bend at the earlier vertex that
        # blocks it
        use_left = not lin
        if (not lin) and (not rin):
            dl = _dist(x, y, plx, ply) + _dist(cx, cy, plx, ply)
            dr = _dist(x, y, prx, pry) + _dist(cx, cy, prx, pry)
            use_left = dl <= dr
        if use_left:
            nx = plx
            ny = ply
        else:
            nx = prx
            ny = pry
        nsig = sig + _dist(x, y, nx, ny)
        # the new window starts at the bend, bounded by the edge's opaque ends
        nlb = (opq & 1) != 0
        nrb = (opq & 2) != 0
        plx = ax
        ply = ay
        prx = bx
        pry = by
    else:
        nx = x
        ny = y
        nsig = sig
    # one return: tuples from several returns can stay LLVM aggregates (slower)
    return nx, ny, nsig, nlb, plx, ply, nrb, prx, pry


@njit(cache=True, no_cpython_wrapper=True)
def _window(state, link, f):
    """The window stored in face ``f``: ``(x, y, sigma, has_left, lx, ly, has_right, rx,
    ry)``, as :func:`_set_window` stores it."""
    meta = link[f, 3]
    return (
        state[f, 0],
        state[f, 1],
        state[f, 2],
        (meta & 1) != 0,
        state[f, 4],
        state[f, 5],
        (meta & 2) != 0,
        state[f, 6],
        state[f, 7],
    )


@njit(cache=True, inline="always")
def _set_window(state, link, g, x, y, sig, key, lb, lx, ly, rb, rx, ry, entry):
    """Store a window in face ``g`` (``entry``: the edge it came through, 0..2)."""
    state[g, 0] = x
    state[g, 1] = y
    state[g, 2] = sig
    state[g, 3] = key
    state[g, 4] = lx
    state[g, 5] = ly
    state[g, 6] = rx
    state[g, 7] = ry
    link[g, 3] = int(lb) | (int(rb) << 1) | ((entry + 1) << 2)


# ------------------------------------------------------------------ propagation


@njit(cache=True, error_model="numpy", no_cpython_wrapper=True)
def _expand(
    corners, hnbr, hdat, htwin, hopq, width, nbuckets, state, link, head, cur, count, nexp, until
):
    """Pop and expand faces from the bucket queue until it is empty or its next
    non-empty bucket index reaches ``until``; returns ``(cur, count, nexp)``.

    The hot loop of :func:`geodesic_field`, kept free of the early-stop test so that
    full fields compile as tightly as before.
    """
    inv_width = 1.0 / width
    mask = nbuckets - 1
    while count > 0:
        while head[cur & mask] < 0:
            cur += 1
        if cur >= until:
            break
        f = _pop(cur & mask, head, link)
        count -= 1
        nexp += 1
        # warm the next face of the bucket: its half-edge data and its neighbours' keys
        # miss the caches otherwise (perf: a quarter of the loop's time stalled on them)
        nf = head[cur & mask]
        if nf >= 0:
            _prefetch(hdat, 3 * nf, 0)
            _prefetch(hdat, 3 * nf + 1, 0)
            _prefetch(hdat, 3 * nf + 2, 0)
            _prefetch(hdat, 3 * nf + 2, 9)  # the rows are 80 bytes: the last line too
            _prefetch(state, nf, 0)
            for k in range(3):
                gg = hnbr[3 * nf + k]
                if gg >= 0:
                    _prefetch(state, gg, 0)
                    _prefetch(link, gg, 0)
        # source (sx0, sy0) after sig; the cone's left bound (lx0, ly0) if lb, right if rb
        sx0, sy0, sig, lb, lx0, ly0, rb, rx0, ry0 = _window(state, link, f)
        back = (link[f, 3] >> 2) - 1
        for i in range(3):
            h = 3 * f + i
            g = hnbr[h]
            if g < 0 or i == back:
                # boundary, or the edge this window came through
                continue
            c = hdat[h, 0]
            s = hdat[h, 1]
            tx = hdat[h, 2]
            ty = hdat[h, 3]
            cx = hdat[h, 8]
            cy = hdat[h, 9]
            # virtual source in g's frame
            x, y = _move(c, s, tx, ty, sx0, sy0)
            # every candidate key is at least sig + |source - centroid|
            room = state[g, 3] - sig
            if room <= 0.0 or _sq(x - cx) + _sq(y - cy) >= room * room:
                continue
            lx = 0.0
            ly = 0.0
            rx = 0.0
            ry = 0.0
            if lb:
                lx, ly = _move(c, s, tx, ty, lx0, ly0)
            if rb:
                rx, ry = _move(c, s, tx, ty, rx0, ry0)
            # the shared edge seen from g (g's third corner on the left of A -> B)
            ax = hdat[h, 4]
            ay = hdat[h, 5]
            bx = hdat[h, 6]
            by = hdat[h, 7]
            if _cross(bx - ax, by - ay, x - ax, y - ay) >= 0.0:
                nx, ny, nsig = _bend_behind(
                    x, y, sig, lb, lx, ly, rb, rx, ry, ax, ay, bx, by, cx, cy
                )
                key = nsig + _dist(cx, cy, nx, ny)
                nlb = False
                nlx = 0.0
                nly = 0.0
                nrb = False
                nrx = 0.0
                nry = 0.0
            else:
                nx, ny, nsig, nlb, nlx, nly, nrb, nrx, nry = _through_edge(
                    x, y, sig, lb, lx, ly, rb, rx, ry, ax, ay, bx, by, cx, cy, hopq[h]
                )
                # key: distance to g's centroid, around the cone if needed
                key = _window_dist(nx, ny, nsig, nlb, nlx, nly, nrb, nrx, nry, cx, cy)
            if key * _IMPROVE < state[g, 3]:
                _set_window(
                    state,
                    link,
                    g,
                    nx,
                    ny,
                    nsig,
                    key,
                    nlb,
                    nlx,
                    nly,
                    nrb,
                    nrx,
                    nry,
                    htwin[h] - 3 * g,
                )
                # unlink g from its current bucket (written out here: as an inlined
                # helper it made the hot loop 10-20 % slower, measured in
                # benchmarks of this loop against the single-kernel version)
                slot = link[g, 0]
                if slot >= 0:
                    p = link[g, 2]
                    q = link[g, 1]
                    if p >= 0:
                        link[p, 1] = q
                    else:
                        head[slot] = q
                    if q >= 0:
                        link[q, 2] = p
                    count -= 1
                _push(g, key, cur, inv_width, nbuckets, head, link)
                count += 1
    return cur, count, nexp


@njit(cache=True, inline="always")
def _seed(source, corners, vf_off, vf_face, vf_corner, width, nbuckets, state, link, head):
    """Empty the queue and the face states, then queue the faces around ``source``
    (source at their corner, no bound, no entry edge); returns the queue size."""
    for f in range(state.shape[0]):
        state[f, 3] = np.inf
        link[f, 0] = -1
    for b in range(nbuckets):
        head[b] = -1
    inv_width = 1.0 / width
    count = 0
    for q in range(vf_off[source], vf_off[source + 1]):
        f = vf_face[q]
        c = vf_corner[q]
        x = corners[f, c, 0]
        y = corners[f, c, 1]
        cx = (corners[f, 0, 0] + corners[f, 1, 0] + corners[f, 2, 0]) / 3.0
        cy = (corners[f, 0, 1] + corners[f, 1, 1] + corners[f, 2, 1]) / 3.0
        key = _dist(cx, cy, x, y)
        state[f, 0] = x
        state[f, 1] = y
        state[f, 2] = 0.0
        state[f, 3] = key
        link[f, 3] = 0  # unbounded cone, no entry edge
        _push(f, key, 0, inv_width, nbuckets, head, link)
        count += 1
    return count


@njit(cache=True, inline="always")
def _vertex_distances(faces, corners, state, link, out, nout):
    """``out[v]`` for ``v < nout``: the smallest distance to ``v`` over its faces'
    windows (inf if none); the rest of ``out`` is not written."""
    for v in range(nout):
        out[v] = np.inf
    for f in range(faces.shape[0]):
        if state[f, 3] == np.inf:
            continue
        x, y, sig, lb, lx, ly, rb, rx, ry = _window(state, link, f)
        for i in range(3):
            v = faces[f, i]
            if v >= nout or sig >= out[v]:
                continue
            dd = _window_dist(x, y, sig, lb, lx, ly, rb, rx, ry, corners[f, i, 0], corners[f, i, 1])
            if dd < out[v]:
                out[v] = dd


@njit(cache=True, error_model="numpy", nogil=True)
def geodesic_field(
    source,
    vertices,
    faces,
    corners,
    hnbr,
    hdat,
    htwin,
    hopq,
    vf_off,
    vf_face,
    vf_corner,
    width,
    nbuckets,
    out,
    state,
    link,
    head,
    nout,
):
    """Geodesic distances from one vertex to every vertex (face-window propagation).

    Each face keeps one virtual source (a point in the face's unfolded plane, plus
    the length ``sigma`` travelled before it) and the cone of directions from it
    that passed through every edge crossed so far. Faces are expanded in order of
    their key (distance of the centroid, respecting the cone) from a bucket
    queue; a face adopts a neighbour's unfolded window when that lowers its key
    (label-correcting). When the cone misses the next edge, or the source lies
    behind it, the path bends at the blocking vertex, which becomes the new
    virtual source. A vertex's distance is the smallest over its faces, and at
    least the straight-line distance.

    Parameters
    ----------
    source : int
    vertices : (V, 3) float64
    faces : (F, 3) int32
    corners, hnbr, hdat, htwin, hopq, vf_off, vf_face, vf_corner
        Mesh arrays (see module docstring).
    width : float
        Bucket width of the queue (same unit as ``vertices``).
    nbuckets : int
        Number of cyclic buckets (a power of two).
    out : (V,) float64
        Receives the distances.
    state : (F, 8) float64, link : (F, 4) int32, head : (nbuckets,) int32
        Work arrays (contents on entry are ignored); ``link`` holds the queue
        links (bucket, next, previous) and the cone flags plus entry edge.
    nout : int
        Write ``out[:nout]`` only (V for a whole field; the table's row ``a`` needs
        the vertices below ``a``, which saves up to a quarter of a field). The values
        do not depend on it.

    Returns
    -------
    int
        Number of face expansions.
    """
    count = _seed(source, corners, vf_off, vf_face, vf_corner, width, nbuckets, state, link, head)
    cur = 0
    nexp = 0
    until = np.iinfo(np.int64).max  # no early stop; same argument types as geodesic_targets
    args = (corners, hnbr, hdat, htwin, hopq, width, nbuckets, state, link, head)
    _, _, nexp = _expand(*args, cur, count, nexp, until)
    # vertex distances: smallest over the faces, each respecting its cone
    _vertex_distances(faces, corners, state, link, out, nout)
    # never shorter than the straight line; exactly 0 at the source
    sx = vertices[source, 0]
    sy = vertices[source, 1]
    sz = vertices[source, 2]
    for v in range(nout):
        eu = _straight(vertices, v, sx, sy, sz)
        if out[v] < eu:
            out[v] = eu
    if source < nout:
        out[source] = 0.0
    return nexp


@njit(cache=True, error_model="numpy", nogil=True)
def geodesic_targets(
    source,
    vertices,
    faces,
    corners,
    hnbr,
    hdat,
    htwin,
    hopq,
    vf_off,
    vf_face,
    vf_corner,
    width,
    nbuckets,
    out,
    state,
    link,
    head,
    stop_t,
    margin,
):
    """:func:`geodesic_field` stopped early: distances to the targets ``stop_t`` only.

    The propagation stops once the queue floor has passed the largest target estimate
    by ``margin`` (+1 %), or when the queue is empty; only ``out[stop_t]`` and
    ``out[source]`` are written, by the per-corner rule of the full field (smallest
    over the vertex's faces, at least the straight line), so they equal the full
    field's values (see solver.py; the tests check identity). A kernel of its own, so
    that a command that needs only grouped pairs (the bundled example) compiles no
    full-field pass, and the table build no early-stop test.

    Parameters
    ----------
    source ... head
        As for :func:`geodesic_field`.
    stop_t : (K,) int32
        The targets.
    margin : float
        Safety distance of the early stop (a few face sizes).

    Returns
    -------
    int
        Number of face expansions.
    """
    count = _seed(source, corners, vf_off, vf_face, vf_corner, width, nbuckets, state, link, head)
    cur = 0
    nexp = 0
    args = (corners, hnbr, hdat, htwin, hopq, width, nbuckets, state, link, head)
    while count > 0:
        cur, count, nexp = _expand(*args, cur, count, nexp, cur + 32)
        if count > 0 and _targets_settled(
            cur * width, stop_t, margin, state, link, corners, vf_off, vf_face, vf_corner
        ):
            break
    sx = vertices[source, 0]
    sy = vertices[source, 1]
    sz = vertices[source, 2]
    for k in range(stop_t.shape[0]):
        v = stop_t[k]
        d = _vertex_estimate(v, state, link, corners, vf_off, vf_face, vf_corner)
        eu = _straight(vertices, v, sx, sy, sz)
        out[v] = eu if d < eu else d
    out[source] = 0.0
    return nexp


@njit(cache=True)
def _field_work(nv, nf, nbuckets):
    out = np.empty(nv)
    state = np.empty((nf, 8))
    link = np.empty((nf, 4), np.int32)
    head = np.empty(nbuckets, np.int32)
    return out, state, link, head


@njit(cache=True)
def group_by_source(hi, lo, nv):
    """Stable counting sort of pairs by source, leaving out the diagonal.

    Parameters
    ----------
    hi, lo : (N,) int32
        Source (the larger id) and target of each pair.
    nv : int
        Number of vertices V.

    Returns
    -------
    ptr : (V+1,) int64
        Pairs with source ``s`` are ``perm[ptr[s]:ptr[s+1]]``.
    perm : (M,) int64
        Pair positions grouped by source, in input order within a group; pairs
        with ``hi == lo`` are left out (their distance is 0).
    """
    n = hi.shape[0]
    ptr = np.zeros(nv + 1, np.int64)
    for k in range(n):
        if hi[k] != lo[k]:
            ptr[hi[k] + 1] += 1
    for v in range(nv):
        ptr[v + 1] += ptr[v]
    fill = ptr[:nv].copy()
    perm = np.empty(ptr[nv], np.int64)
    for k in range(n):
        if hi[k] != lo[k]:
            perm[fill[hi[k]]] = k
            fill[hi[k]] += 1
    return ptr, perm


@njit(cache=True, parallel=True)
def fill_condensed(table, scale, row_lo, row_hi, nchunks, mesh):
    """Fill rows ``row_lo:row_hi`` of the quantised condensed distance table.

    Entry ``a (a - 1) / 2 + b`` (``a > b``, 0-based) receives
    ``round(d(a, b) / scale)`` as uint16, saturated at 65534, where ``d`` is the
    field from source ``a``; 65535 marks pairs with no path between them.

    Parameters
    ----------
    table : (V (V - 1) / 2,) uint16
    scale : float
    row_lo, row_hi : int
        Source rows to fill.
    nchunks : int
        Number of contiguous row chunks (the parallel work items).
    mesh : tuple
        The mesh arrays and queue settings of :func:`geodesic_field`, in its order.

    Returns
    -------
    float
        Largest distance met (before quantisation); above ``65534 * scale``
        means some entries saturated.
    """
    nv = mesh[0].shape[0]
    nf = mesh[1].shape[0]
    nbuckets = mesh[11]
    nrow = row_hi - row_lo
    dmax = np.zeros(nchunks)
    for ck in prange(nchunks):
        lo = row_lo + ck * nrow // nchunks
        hi = row_lo + (ck + 1) * nrow // nchunks
        if lo >= hi:
            continue
        out, state, link, head = _field_work(nv, nf, nbuckets)
        m = 0.0
        for a in range(lo, hi):
            if a == 0:
                continue
            geodesic_field(a, *mesh, out, state, link, head, a)  # the row: b < a
            base = a * (a - 1) // 2
            for b in range(a):
                val = out[b]
                if val == np.inf:  # another connected component
                    table[base + b] = np.uint16(65535)
                    continue
                if val > m:
                    m = val
                qv = math.floor(val / scale + 0.5)
                if qv > 65534.0:
                    qv = 65534.0
                table[base + b] = np.uint16(qv)
        dmax[ck] = m
    return dmax.max()


@njit(cache=True, parallel=True)
def lookup_condensed(table, a, b, scale, unreachable, result):
    """Read pairs from a condensed table with the official index rule.

    ``result[k] = table[i (i - 1) / 2 + j] * scale`` with ``i = max(a[k], b[k])``,
    ``j = min(a[k], b[k])``; 0 when ``a[k] == b[k]``; ``inf`` where the stored
    value equals ``unreachable``.

    Parameters
    ----------
    table : (V (V - 1) / 2,) uint16 or float
    a, b : (N,) int32 or int64
    scale : float
        1.0 for a table stored in distance units.
    unreachable : int
        Stored code for "no path" (65535 for quantised tables; -1 for none).
    result : (N,) float64
    """
    n = a.shape[0]
    for k in prange(n):
        i = np.int64(a[k])
        j = np.int64(b[k])
        if i == j:
            result[k] = 0.0
            continue
        if i < j:
            i, j = j, i
        q = table[i * (i - 1) // 2 + j]
        if q == unreachable:
            result[k] = np.inf
        else:
            result[k] = np.float64(q) * scale
