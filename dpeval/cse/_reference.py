"""Slow, obvious NumPy twins of the CSE kernels (tests and benchmarks compare them)."""

from __future__ import annotations

import numpy as np

__all__ = ["nearest_vertices", "resize_bilinear"]


def nearest_vertices(pix: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """(N,) int64: per pixel embedding, the vertex with the smallest exact squared
    Euclidean distance (float64), ties to the lowest index (``np.argmin``)."""
    p = np.asarray(pix, dtype=np.float64)
    e = np.asarray(verts, dtype=np.float64)
    out = np.empty(len(p), dtype=np.int64)
    for i in range(len(p)):
        out[i] = int(np.argmin(((e - p[i]) ** 2).sum(axis=1)))
    return out


def resize_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Pixel-by-pixel bilinear resize, ``align_corners=False``, float32 arithmetic,
    written from PyTorch's definition (source index ``scale * (i + 0.5) - 0.5`` clamped
    at 0, ``scale = in / out``, the index computed as one fused multiply-add)."""
    src = np.asarray(src, dtype=np.float32)
    c, h, w = src.shape
    out = np.zeros((c, out_h, out_w), dtype=np.float32)
    sh, sw = np.float32(h) / np.float32(out_h), np.float32(w) / np.float32(out_w)

    def coord(scale: np.float32, i: int) -> np.float32:  # fused multiply-add, one rounding
        return max(np.float32(float(scale) * (i + 0.5) - 0.5), np.float32(0))

    for y in range(out_h):
        fy = coord(sh, y)
        y0 = min(int(np.floor(fy)), h - 1)
        ly = np.float32(min(max(fy - np.float32(y0), 0), 1))
        y1 = y0 + (1 if y0 < h - 1 else 0)
        for x in range(out_w):
            fx = coord(sw, x)
            x0 = min(int(np.floor(fx)), w - 1)
            lx = np.float32(min(max(fx - np.float32(x0), 0), 1))
            x1 = x0 + (1 if x0 < w - 1 else 0)
            top = (np.float32(1) - lx) * src[:, y0, x0] + lx * src[:, y0, x1]
            bot = (np.float32(1) - lx) * src[:, y1, x0] + lx * src[:, y1, x1]
            out[:, y, x] = (np.float32(1) - ly) * top + ly * bot
    return out
