"""Stage 3 (formats): the Numba kernel of :mod:`dpeval.formats`.

:func:`png_unfilter` undoes the PNG row filters (None, Sub, Up, Average, Paeth; PNG
specification section 9) of an inflated, non-interlaced 8-bit image. With ISA-L's
inflate in front of it, :func:`dpeval.formats.iuv_png.decode_iuv` decodes a challenge
IUV map in about a fifth of Pillow's time (the warm minival run's largest cost); Pillow
stays the decoder of every other PNG kind and of a process's first maps (no compilation
for small runs). Its slow twin of the same name is in :mod:`dpeval.formats._reference`;
both return the same bytes as Pillow (tested on every filter type).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def png_unfilter(raw, height, stride, bpp, out):
    """Unfilter ``height`` rows of ``stride`` bytes into ``out``.

    Parameters
    ----------
    raw : (height * (stride + 1),) uint8
        The inflated IDAT stream: per row one filter-type byte, then ``stride`` bytes.
    height, stride, bpp : int
        Rows, bytes per row (width x bytes per pixel), bytes per pixel (>= 1).
    out : (height, stride) uint8, C-contiguous
        Receives the pixels.

    Returns
    -------
    int
        -1 on success, else the first row whose filter type is not 0..4.
    """
    # flat indices, the first ``bpp`` bytes of a row (no left neighbour) and the first
    # row (no upper one) outside the inner loops: the loops carry no branch per byte
    # other than Paeth's own
    for r in range(height):
        src = r * (stride + 1) + 1
        ft = raw[src - 1]
        cur = out[r]
        if ft == 0:
            cur[:] = raw[src : src + stride]
            continue
        if ft > 4:
            return r
        if r == 0:
            prev = np.zeros(stride, np.uint8)
        else:
            prev = out[r - 1]
        if ft == 1:
            for i in range(min(bpp, stride)):
                cur[i] = raw[src + i]
            for i in range(bpp, stride):
                cur[i] = raw[src + i] + cur[i - bpp]
        elif ft == 2:
            for i in range(stride):
                cur[i] = raw[src + i] + prev[i]
        elif ft == 3:
            for i in range(min(bpp, stride)):
                cur[i] = raw[src + i] + (prev[i] >> 1)
            for i in range(bpp, stride):
                cur[i] = raw[src + i] + ((np.uint16(cur[i - bpp]) + prev[i]) >> 1)
        elif bpp == 3 and stride % 3 == 0:
            _paeth3(raw, src, stride, prev, cur)
        else:
            for i in range(min(bpp, stride)):
                cur[i] = raw[src + i] + prev[i]  # Paeth with a = c = 0 predicts b
            for i in range(bpp, stride):
                cur[i] = raw[src + i] + _paeth(
                    np.int32(cur[i - bpp]), np.int32(prev[i]), np.int32(prev[i - bpp])
                )
    return -1


@njit(cache=True, inline="always")
def _paeth(a, b, c):
    """The Paeth predictor of left ``a``, up ``b`` and upper-left ``c`` (as uint8)."""
    pa = abs(b - c)
    pb = abs(a - c)
    pc = abs(a + b - c - c)
    if pa <= pb and pa <= pc:
        return np.uint8(a)
    if pb <= pc:
        return np.uint8(b)
    return np.uint8(c)


@njit(cache=True)
def _paeth3(raw, src, stride, prev, cur):
    """A Paeth row of 3-byte pixels, the three channels' chains interleaved and carried in
    registers (RGB maps: the common case)."""
    a0 = a1 = a2 = np.int32(0)
    c0 = c1 = c2 = np.int32(0)
    for i in range(0, stride, 3):
        b0 = np.int32(prev[i])
        b1 = np.int32(prev[i + 1])
        b2 = np.int32(prev[i + 2])
        a0 = np.int32(np.uint8(raw[src + i] + _paeth(a0, b0, c0)))
        a1 = np.int32(np.uint8(raw[src + i + 1] + _paeth(a1, b1, c1)))
        a2 = np.int32(np.uint8(raw[src + i + 2] + _paeth(a2, b2, c2)))
        cur[i] = a0
        cur[i + 1] = a1
        cur[i + 2] = a2
        c0, c1, c2 = b0, b1, b2
