"""Slow twin of :mod:`dpeval.formats._kernels`, for tests: the PNG row filters undone
one byte at a time in plain Python, as the PNG specification (section 9.2) writes them.
"""

from __future__ import annotations

import numpy as np


def png_unfilter(raw, height, stride, bpp, out):
    """Same contract as :func:`dpeval.formats._kernels.png_unfilter`."""
    raw = bytes(raw)
    prev = [0] * stride
    for r in range(height):
        base = r * (stride + 1)
        ft = raw[base]
        line = raw[base + 1 : base + 1 + stride]
        cur = [0] * stride
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                return r
            cur[i] = (line[i] + pred) % 256
        out[r, :] = np.asarray(cur, dtype=np.uint8)
        prev = cur
    return -1
