"""Slow, obvious NumPy twins of :mod:`dpeval.synth._kernels` (same names and
arguments), used by the tests only.

``rasterize`` here is a brute-force ray caster: one ray per pixel centre, tested
against every triangle (Moller-Trumbore), nearest hit wins, the first face on ties.
"""

from __future__ import annotations

import numpy as np

from ._kernels import NEAR_Z


def skin_vertices(rest, skin_joint, skin_weight, mats, out):
    """Twin of ``_kernels.skin_vertices``."""
    lin = mats[skin_joint][..., :3]  # (V, 4, 3, 3)
    t = mats[skin_joint][..., 3]  # (V, 4, 3)
    moved = np.einsum("vkij,vj->vki", lin, rest) + t
    out[:] = np.einsum("vk,vki->vi", skin_weight, moved)


def vertex_normals(verts, faces, out):
    """Twin of ``_kernels.vertex_normals``."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = np.cross(b - a, c - a)
    out[:] = 0.0
    for k in range(3):
        np.add.at(out, faces[:, k], fn)
    n = np.linalg.norm(out, axis=1)
    ok = n > 0
    out[ok] /= n[ok, None]


def rasterize(verts, faces, fx, fy, cx, cy, face_offset, zbuf, fid, bary):
    """Twin of ``_kernels.rasterize`` by ray casting (exact ray-triangle tests)."""
    h, w = zbuf.shape
    px, py = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d = np.stack([(px - cx) / fx, (py - cy) / fy, np.ones_like(px)], axis=-1).reshape(-1, 3)
    best_t = zbuf.reshape(-1).copy()
    best_f = fid.reshape(-1).copy()
    best_b = bary.reshape(-1, 3).copy()
    for f in range(len(faces)):
        p0, p1, p2 = verts[faces[f]]
        if min(p0[2], p1[2], p2[2]) <= NEAR_Z:
            continue
        e1, e2 = p1 - p0, p2 - p0
        pv = np.cross(d, e2)
        det = pv @ e1
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = -p0  # ray origin is the camera centre
            u = (pv @ s) * inv
            qv = np.cross(s, e1)
            v = (d @ qv) * inv
            t = (qv @ e2) * inv  # ray parameter = camera depth, since d_z = 1
        hit = (det != 0) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t < best_t)
        best_t[hit] = t[hit]
        best_f[hit] = face_offset + f
        best_b[hit] = np.stack([1 - u[hit] - v[hit], u[hit], v[hit]], axis=1)
    zbuf[:] = best_t.reshape(h, w)
    fid[:] = best_f.reshape(h, w)
    bary[:] = best_b.reshape(h, w, 3)


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
    """Twin of ``_kernels.shade`` (vectorised over the covered pixels)."""
    yy, xx = np.nonzero(fid >= 0)
    g = fid[yy, xx].astype(np.int64)
    p, f = g // n_faces, g % n_faces
    b = bary[yy, xx]
    uv = _interp(b, chart_uv[chart_faces[f]])
    q = np.clip(np.floor(uv * 255.0 + 0.5), 0, 255).astype(np.uint8)
    part = face_part[f]
    iuv[yy, xx, 0] = part
    iuv[yy, xx, 1:] = q
    person[yy, xx] = p
    r = _interp(b, rest[faces[f]])
    n = _interp(b, normals[faces[f] + (p * n_verts)[:, None]])
    nn = np.linalg.norm(n, axis=1)
    n[nn > 0] /= nn[nn > 0, None]
    m = material[p]
    slot = np.array(
        [_albedo_slot(part[i], r[i, 0], r[i, 1], r[i, 2], m[i]) for i in range(len(part))],
        dtype=np.int64,
    )
    col = m[np.arange(len(p))[:, None], 3 * slot[:, None] + np.arange(3)]
    per = m[:, 21]
    stripes = np.floor(r[:, 1] / per) % 2.0 == 0.0
    cells = np.floor(r[:, 0] / per) + np.floor(r[:, 1] / per) + np.floor(r[:, 2] / per)
    on = np.where(m[:, 20] < 1.5, stripes, cells % 2.0 == 0.0)
    pat = (slot == 1) & (m[:, 20] > 0.5) & on
    col[pat] = m[pat, 6:9]
    head = part >= 23
    d_eye = (np.abs(r[:, 0]) - 0.031) ** 2 + (r[:, 1] - 0.727) ** 2 + (r[:, 2] - 0.135) ** 2
    d_mouth = r[:, 0] ** 2 + 4.0 * (r[:, 1] - 0.676) ** 2 + (r[:, 2] - 0.150) ** 2
    eye = head & (d_eye < 0.009**2)
    mouth = head & ~eye & (d_mouth < 0.018**2)
    col[eye] = (0.08, 0.06, 0.05)
    col[mouth] = col[mouth] * (0.55, 0.45, 0.45) + (0.25, 0.0, 0.0)
    n[n[:, 2] > 0] *= -1
    lam = np.maximum(n @ light[:3], 0.0)
    s = light[3] + light[4] * lam
    image[yy, xx] = np.minimum((255.0 * col * s[:, None]).astype(np.int64), 255)


def _interp(b, corner):
    """Barycentric interpolation summed left to right, as the kernel does."""
    return b[:, 0:1] * corner[:, 0] + b[:, 1:2] * corner[:, 1] + b[:, 2:3] * corner[:, 2]


def _albedo_slot(part, rx, ry, rz, m):
    """Twin of ``_kernels._albedo_slot``."""
    if part in (5, 6):
        return 4
    if part in (3, 4):
        return 0
    if part >= 23:
        return 5 if ry > m[22] or (ry > 0.66 and rz < m[23]) else 0
    if part <= 2:
        return 3 if ry < 0.09 else 1
    if part <= 14:
        return 3 if ry > m[19] else 0
    return 1 if abs(rx) < m[18] else 0


def draw_background(image, horizon, sky0, sky1, ground0, ground1, tile, noise, fx, cx):
    """Twin of ``_kernels.draw_background``."""
    h, w = image.shape[:2]
    gh, gw = noise.shape[:2]
    y = np.arange(h) + 0.5
    x = np.arange(w) + 0.5
    gy = y / h * (gh - 1)
    iy = np.minimum(gy.astype(np.int64), gh - 2)
    ty = (gy - iy)[:, None, None]
    gx = x / w * (gw - 1)
    ix = np.minimum(gx.astype(np.int64), gw - 2)
    tx = (gx - ix)[None, :, None]
    a = noise[iy][:, ix] * (1 - ty) + noise[iy + 1][:, ix] * ty
    b = noise[iy][:, ix + 1] * (1 - ty) + noise[iy + 1][:, ix + 1] * ty
    nz = a * (1 - tx) + b * tx
    t = (y / max(horizon, 1.0))[:, None]
    sky = sky0 + (sky1 - sky0) * t  # (h, 3)
    base = np.broadcast_to(sky[:, None, :], (h, w, 3)).copy()
    ground = y >= horizon
    base[ground] = ground0
    if tile > 0.0:
        depth = fx / np.maximum(y - horizon, 0.5)
        gx_m = (x[None, :] - cx) / fx * depth[:, None]
        k = np.floor(gx_m / tile) + np.floor(depth / tile)[:, None]
        alt = ground[:, None] & (k % 2.0 == 0.0)
        base[alt] = ground1
    image[:] = np.clip((255.0 * base * nz).astype(np.int64), 0, 255)


def add_noise(image, sigma, seed):
    """Twin of ``_kernels.add_noise`` (Python integers, masked to 64 bits)."""
    full = (1 << 64) - 1
    s = (seed * 2654435761 + 88172645463325252) & full
    scale = sigma / np.sqrt(4.0 / 12.0) / 65536.0
    flat = image.reshape(-1)
    for i in range(flat.size):
        s ^= (s << 13) & full
        s ^= s >> 7
        s ^= (s << 17) & full
        acc = sum(float((s >> sh) & 0xFFFF) for sh in (0, 16, 32, 48)) - 2.0 * 65535.0
        flat[i] = min(max(int(np.floor(flat[i] + acc * scale + 0.5)), 0), 255)


def kmeans_lloyd(points, centres, iters):
    """Twin of ``_kernels.kmeans_lloyd``."""
    for _ in range(iters):
        d = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = np.argmin(d, axis=1)
        for j in range(len(centres)):
            sel = lab == j
            if sel.any():
                centres[j] = points[sel].mean(axis=0)


def nearest_point(points, queries):
    """Twin of ``_kernels.nearest_point``."""
    d = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return np.argmin(d, axis=1).astype(np.int64)
