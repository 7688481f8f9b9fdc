"""Numba kernels of the synth package (posing, rasterising, shading, point sampling).

Every ``@njit`` function of :mod:`dpeval.synth` lives here, with ``cache=True`` and no
fastmath. Kernels trust their input: the wrappers in ``pose.py``, ``render.py`` and
``annotate.py`` pass contiguous arrays of the dtypes stated in each docstring. Each
kernel has a slow NumPy twin with the same name in :mod:`dpeval.synth._reference`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEAR_Z = 0.05  # metres; faces with a vertex closer than this are skipped (documented twin)


@njit(cache=True)
def skin_vertices(rest, skin_joint, skin_weight, mats, out):
    """Linear blend skinning.

    Parameters
    ----------
    rest : (V, 3) float64
    skin_joint : (V, 4) int64
    skin_weight : (V, 4) float64
    mats : (J, 3, 4) float64
        Per joint ``[L | t]``: a rest point ``x`` moves to ``L @ x + t``.
    out : (V, 3) float64
        Filled with the skinned vertices.
    """
    for i in range(rest.shape[0]):
        x, y, z = rest[i, 0], rest[i, 1], rest[i, 2]
        ox = 0.0
        oy = 0.0
        oz = 0.0
        for k in range(4):
            w = skin_weight[i, k]
            if w == 0.0:
                continue
            m = mats[skin_joint[i, k]]
            ox += w * (m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3])
            oy += w * (m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3])
            oz += w * (m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3])
        out[i, 0] = ox
        out[i, 1] = oy
        out[i, 2] = oz


@njit(cache=True)
def vertex_normals(verts, faces, out):
    """Area-weighted unit vertex normals.

    Parameters
    ----------
    verts : (V, 3) float64
    faces : (F, 3) int64
    out : (V, 3) float64
        Overwritten with the normals (zero vectors stay zero).
    """
    out[:] = 0.0
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x = verts[b, 0] - verts[a, 0]
        e1y = verts[b, 1] - verts[a, 1]
        e1z = verts[b, 2] - verts[a, 2]
        e2x = verts[c, 0] - verts[a, 0]
        e2y = verts[c, 1] - verts[a, 1]
        e2z = verts[c, 2] - verts[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        for v in (a, b, c):
            out[v, 0] += nx
            out[v, 1] += ny
            out[v, 2] += nz
    for i in range(out.shape[0]):
        n = np.sqrt(out[i, 0] ** 2 + out[i, 1] ** 2 + out[i, 2] ** 2)
        if n > 0.0:
            out[i, 0] /= n
            out[i, 1] /= n
            out[i, 2] /= n


@njit(cache=True)
def rasterize(verts, faces, fx, fy, cx, cy, face_offset, zbuf, fid, bary):
    """Z-buffer rasteriser of a camera-space mesh (pinhole, +z forward, +y down).

    A pixel (px, py) samples its centre (px + 0.5, py + 0.5). Screen-space edge
    functions decide coverage (inclusive, both windings), barycentrics are made
    perspective-correct, and the nearest camera depth wins (strict ``<``: the first
    face drawn keeps ties). This equals casting one ray per pixel centre.

    Parameters
    ----------
    verts : (V, 3) float64
        Camera coordinates in metres.
    faces : (F, 3) int64
    fx, fy, cx, cy : float
        Intrinsics in pixels.
    face_offset : int
        Added to the face index written to ``fid`` (one range per person).
    zbuf : (H, W) float64
        Depth buffer, updated in place (``inf`` where empty).
    fid : (H, W) int32
        Face buffer, updated in place (-1 where empty).
    bary : (H, W, 3) float64
        Perspective-correct barycentrics of the winning face, updated in place.
    """
    h, w = zbuf.shape
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        z0, z1, z2 = verts[a, 2], verts[b, 2], verts[c, 2]
        if z0 <= NEAR_Z or z1 <= NEAR_Z or z2 <= NEAR_Z:
            continue
        x0 = fx * verts[a, 0] / z0 + cx
        y0 = fy * verts[a, 1] / z0 + cy
        x1 = fx * verts[b, 0] / z1 + cx
        y1 = fy * verts[b, 1] / z1 + cy
        x2 = fx * verts[c, 0] / z2 + cx
        y2 = fy * verts[c, 1] / z2 + cy
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0:
            continue
        xs = max(int(np.ceil(min(x0, x1, x2) - 0.5)), 0)
        xe = min(int(np.floor(max(x0, x1, x2) - 0.5)), w - 1)
        ys = max(int(np.ceil(min(y0, y1, y2) - 0.5)), 0)
        ye = min(int(np.floor(max(y0, y1, y2) - 0.5)), h - 1)
        if xs > xe or ys > ye:
            continue
        inv_area = 1.0 / area
        for py in range(ys, ye + 1):
            sy = py + 0.5
            for px in range(xs, xe + 1):
                sx = px + 0.5
                w0 = ((x2 - x1) * (sy - y1) - (y2 - y1) * (sx - x1)) * inv_area
                w1 = ((x0 - x2) * (sy - y2) - (y0 - y2) * (sx - x2)) * inv_area
                w2 = ((x1 - x0) * (sy - y0) - (y1 - y0) * (sx - x0)) * inv_area
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                q0 = w0 / z0
                q1 = w1 / z1
                q2 = w2 / z2
                s = q0 + q1 + q2
                depth = 1.0 / s
                if depth < zbuf[py, px]:
                    zbuf[py, px] = depth
                    fid[py, px] = face_offset + f
                    bary[py, px, 0] = q0 / s
                    bary[py, px, 1] = q1 / s
                    bary[py, px, 2] = q2 / s


@njit(cache=True)
def shade(
    fid,
    bary,
    n_faces,
    n_verts,
    faces,
    face_part,
    chart_faces,
    chart_uv,
    rest,
    normals,
    material,
    light,
    image,
    iuv,
    person,
):
    """IUV, person ids and a shaded colour for every covered pixel.

    Parameters
    ----------
    fid : (H, W) int32
        Winning face (``person * n_faces + face``), -1 on background.
    bary : (H, W, 3) float64
    n_faces, n_verts : int
        Faces and vertices of one body.
    faces, chart_faces : (F, 3) int64
    face_part : (F,) int64
        Part ids 1..24.
    chart_uv : (C, 2) float64
    rest : (V, 3) float64
        Rest-pose template vertices (the texture is painted in rest space).
    normals : (P * V, 3) float64
        Camera-space unit vertex normals of every body, concatenated.
    material : (P, 24) float64
        Per body: skin, top, top pattern, bottom, shoes, hair colours (RGB in 0..1,
        18 values), then sleeve |x| limit, trouser y limit, pattern kind
        (0 plain, 1 stripes, 2 checker), pattern period (m), hair y limit, hair z limit.
    light : (5,) float64
        Unit light direction towards the light (camera frame), ambient, diffuse.
    image : (H, W, 3) uint8
        Background on input; bodies are painted over it.
    iuv : (H, W, 3) uint8
        Zeroed on input; receives (I, round(U * 255), round(V * 255)).
    person : (H, W) int16
        -1 on input; receives the body index.
    """
    h, w = fid.shape
    for py in range(h):
        for px in range(w):
            g = fid[py, px]
            if g < 0:
                continue
            p = g // n_faces
            f = g - p * n_faces
            b0 = bary[py, px, 0]
            b1 = bary[py, px, 1]
            b2 = bary[py, px, 2]
            part = face_part[f]
            c0, c1, c2 = chart_faces[f, 0], chart_faces[f, 1], chart_faces[f, 2]
            u = b0 * chart_uv[c0, 0] + b1 * chart_uv[c1, 0] + b2 * chart_uv[c2, 0]
            v = b0 * chart_uv[c0, 1] + b1 * chart_uv[c1, 1] + b2 * chart_uv[c2, 1]
            u8 = min(max(int(np.floor(u * 255.0 + 0.5)), 0), 255)
            v8 = min(max(int(np.floor(v * 255.0 + 0.5)), 0), 255)
            iuv[py, px, 0] = part
            iuv[py, px, 1] = u8
            iuv[py, px, 2] = v8
            person[py, px] = p
            va, vb, vc = faces[f, 0], faces[f, 1], faces[f, 2]
            rx = b0 * rest[va, 0] + b1 * rest[vb, 0] + b2 * rest[vc, 0]
            ry = b0 * rest[va, 1] + b1 * rest[vb, 1] + b2 * rest[vc, 1]
            rz = b0 * rest[va, 2] + b1 * rest[vb, 2] + b2 * rest[vc, 2]
            o = p * n_verts
            nx = b0 * normals[o + va, 0] + b1 * normals[o + vb, 0] + b2 * normals[o + vc, 0]
            ny = b0 * normals[o + va, 1] + b1 * normals[o + vb, 1] + b2 * normals[o + vc, 1]
            nz = b0 * normals[o + va, 2] + b1 * normals[o + vb, 2] + b2 * normals[o + vc, 2]
            nn = np.sqrt(nx * nx + ny * ny + nz * nz)
            if nn > 0.0:
                nx /= nn
                ny /= nn
                nz /= nn
            m = material[p]
            slot = _albedo_slot(part, rx, ry, rz, m)
            cr = m[3 * slot]
            cg = m[3 * slot + 1]
            cb = m[3 * slot + 2]
            if slot == 1 and m[20] > 0.5:
                # pattern on the top: stripes along the height or a 3D checker
                per = m[21]
                if m[20] < 1.5:
                    on = np.floor(ry / per) % 2.0 == 0.0
                else:
                    k = np.floor(rx / per) + np.floor(ry / per) + np.floor(rz / per)
                    on = k % 2.0 == 0.0
                if on:
                    cr, cg, cb = m[6], m[7], m[8]
            if part >= 23:
                # face cues (front/back, left/right): eyes and mouth on the skin
                ex = abs(rx) - 0.031
                d_eye = ex * ex + (ry - 0.727) ** 2 + (rz - 0.135) ** 2
                d_mouth = rx * rx + 4.0 * (ry - 0.676) ** 2 + (rz - 0.150) ** 2
                if d_eye < 0.009**2:
                    cr, cg, cb = 0.08, 0.06, 0.05
                elif d_mouth < 0.018**2:
                    cr, cg, cb = 0.55 * cr + 0.25, 0.45 * cg, 0.45 * cb
            # camera looks along +z: make the normal face the camera
            if nz > 0.0:
                nx, ny, nz = -nx, -ny, -nz
            lam = nx * light[0] + ny * light[1] + nz * light[2]
            lam = max(lam, 0.0)
            s = light[3] + light[4] * lam
            image[py, px, 0] = min(int(255.0 * cr * s), 255)
            image[py, px, 1] = min(int(255.0 * cg * s), 255)
            image[py, px, 2] = min(int(255.0 * cb * s), 255)


@njit(cache=True)
def _albedo_slot(part, rx, ry, rz, m):
    """Colour slot of a rest-space surface point: 0 skin, 1 top, 3 bottom, 4 shoes, 5 hair."""
    if part == 5 or part == 6:
        return 4
    if part == 3 or part == 4:
        return 0
    if part >= 23:
        if ry > m[22] or (ry > 0.66 and rz < m[23]):
            return 5
        return 0
    if part <= 2:
        return 3 if ry < 0.09 else 1
    if part <= 14:
        return 3 if ry > m[19] else 0
    return 1 if abs(rx) < m[18] else 0


@njit(cache=True)
def draw_background(image, horizon, sky0, sky1, ground0, ground1, tile, noise, fx, cx):
    """Procedural backdrop: a vertical sky gradient over a perspective tiled floor,
    modulated by bilinear value noise.

    Parameters
    ----------
    image : (H, W, 3) uint8
        Overwritten.
    horizon : float
        Image row of the horizon.
    sky0, sky1, ground0, ground1 : (3,) float64
        RGB in 0..1: sky top / horizon, floor tile colours.
    tile : float
        Floor tile size (metres at 1 m camera height); <= 0 for a plain floor.
    noise : (gh, gw, 3) float64
        Multiplicative value-noise grid (around 1).
    fx, cx : float
    """
    h, w = image.shape[0], image.shape[1]
    gh, gw = noise.shape[0], noise.shape[1]
    row = np.empty((w, 3))
    for py in range(h):
        y = py + 0.5
        gy = y / h * (gh - 1)
        iy = min(int(gy), gh - 2)
        ty = gy - iy
        for px in range(w):  # noise of this row, interpolated along y first
            gx = (px + 0.5) / w * (gw - 1)
            ix = min(int(gx), gw - 2)
            tx = gx - ix
            for ch in range(3):
                a = noise[iy, ix, ch] * (1 - ty) + noise[iy + 1, ix, ch] * ty
                b = noise[iy, ix + 1, ch] * (1 - ty) + noise[iy + 1, ix + 1, ch] * ty
                row[px, ch] = a * (1 - tx) + b * tx
        if y < horizon:
            t = y / max(horizon, 1.0)
            r0 = sky0[0] + (sky1[0] - sky0[0]) * t
            g0 = sky0[1] + (sky1[1] - sky0[1]) * t
            b0 = sky0[2] + (sky1[2] - sky0[2]) * t
            for px in range(w):
                image[py, px, 0] = min(max(int(255.0 * r0 * row[px, 0]), 0), 255)
                image[py, px, 1] = min(max(int(255.0 * g0 * row[px, 1]), 0), 255)
                image[py, px, 2] = min(max(int(255.0 * b0 * row[px, 2]), 0), 255)
            continue
        depth = fx / max(y - horizon, 0.5)
        kd = np.floor(depth / tile) if tile > 0.0 else 0.0
        for px in range(w):
            r, g, b = ground0[0], ground0[1], ground0[2]
            if tile > 0.0:
                gx_m = (px + 0.5 - cx) / fx * depth
                if (np.floor(gx_m / tile) + kd) % 2.0 == 0.0:
                    r, g, b = ground1[0], ground1[1], ground1[2]
            image[py, px, 0] = min(max(int(255.0 * r * row[px, 0]), 0), 255)
            image[py, px, 1] = min(max(int(255.0 * g * row[px, 1]), 0), 255)
            image[py, px, 2] = min(max(int(255.0 * b * row[px, 2]), 0), 255)


@njit(cache=True)
def add_noise(image, sigma, seed):
    """Add zero-mean pixel noise (sum of 4 uniforms, std ``sigma`` grey levels) in place.

    Parameters
    ----------
    image : (H, W, 3) uint8
    sigma : float
    seed : int
        Seeds a xorshift64 generator, so the noise is a pure function of the seed.
    """
    s = np.uint64(seed) * np.uint64(2654435761) + np.uint64(88172645463325252)
    # one xorshift64 draw gives four 16-bit uniforms; their sum has variance 4/12
    scale = sigma / np.sqrt(4.0 / 12.0) / 65536.0
    mask = np.uint64(0xFFFF)
    flat = image.reshape(-1)
    for i in range(flat.size):
        s ^= s << np.uint64(13)
        s ^= s >> np.uint64(7)
        s ^= s << np.uint64(17)
        acc = (
            float(s & mask)
            + float((s >> np.uint64(16)) & mask)
            + float((s >> np.uint64(32)) & mask)
            + float(s >> np.uint64(48))
            - 2.0 * 65535.0
        )
        val = flat[i] + acc * scale
        flat[i] = min(max(int(np.floor(val + 0.5)), 0), 255)


@njit(cache=True)
def kmeans_lloyd(points, centres, iters):
    """Lloyd's k-means iterations in place; empty clusters keep their centre.

    Parameters
    ----------
    points : (N, 2) float64
    centres : (K, 2) float64
        Initial centres, updated in place.
    iters : int
    """
    k = centres.shape[0]
    n = points.shape[0]
    acc = np.zeros((k, 3))
    for _ in range(iters):
        acc[:] = 0.0
        for i in range(n):
            best = 0
            bd = np.inf
            for j in range(k):
                dx = points[i, 0] - centres[j, 0]
                dy = points[i, 1] - centres[j, 1]
                d = dx * dx + dy * dy
                if d < bd:
                    bd = d
                    best = j
            acc[best, 0] += points[i, 0]
            acc[best, 1] += points[i, 1]
            acc[best, 2] += 1.0
        for j in range(k):
            if acc[j, 2] > 0.0:
                centres[j, 0] = acc[j, 0] / acc[j, 2]
                centres[j, 1] = acc[j, 1] / acc[j, 2]


@njit(cache=True)
def nearest_point(points, queries):
    """Index of the nearest of ``points`` to each query (ties: lowest index).

    Parameters
    ----------
    points : (N, 2) float64
    queries : (K, 2) float64

    Returns
    -------
    (K,) int64
    """
    out = np.zeros(queries.shape[0], dtype=np.int64)
    for j in range(queries.shape[0]):
        bd = np.inf
        for i in range(points.shape[0]):
            dx = points[i, 0] - queries[j, 0]
            dy = points[i, 1] - queries[j, 1]
            d = dx * dx + dy * dy
            if d < bd:
                bd = d
                out[j] = i
    return out
