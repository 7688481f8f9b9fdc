"""Horizontal-flip augmentation with DensePose's left/right symmetry.

In: a training sample (image, image-level IUV map, boxes, instance masks, dense points,
coarse ``dp_masks``). Out: its mirror image, relabelled so the flipped picture's labels
are right: a left hand seen in a mirror is a right hand, with that hand's chart
coordinates.

The tables come from the open template (:mod:`dpeval.template`): part ids are swapped
with :data:`~dpeval.template.MIRROR_PART`; the chart coordinates (U, V) of a point on
part ``p`` become those of its mirror vertex (``BodyTemplate.mirror``) on part
``MIRROR_PART[p]``. On the open template the limbs and the head keep their (U, V); the
torso, hands and feet do not. :func:`uv_mirror_lut` tabulates the map on the 8-bit (U, V)
grid of the IUV maps, face by face.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "COARSE_MIRROR",
    "build_uv_mirror_lut",
    "flip_dense_points",
    "flip_item",
    "flip_iuv",
    "uv_mirror_lut",
]

COARSE_MIRROR = np.array([0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14], dtype=np.int64)
"""Mirror of each coarse ``dp_masks`` label 0..14 (2/3 hands, 4/5 feet, 6-13 limb pairs)."""


CACHE = Path("~/.cache/dpeval/baselines")
"""Where the tabulated map is kept between runs (``uv_mirror_<template checksum>.npy``)."""


@lru_cache(maxsize=2)
def uv_mirror_lut(template: str = "open") -> np.ndarray:
    """The (25, 256, 256, 2) uint8 mirror table of :func:`build_uv_mirror_lut`, read from
    (or written to) the cache directory; a damaged cache file is rebuilt."""
    from dpeval.template import load_template

    path = (CACHE / f"uv_mirror_{load_template(template).checksum}.npy").expanduser()
    with contextlib.suppress(OSError, ValueError):
        lut = np.load(path)
        if lut.shape == (25, 256, 256, 2) and lut.dtype == np.uint8:
            return lut
    lut = build_uv_mirror_lut(template)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
        np.save(tmp, lut)
        os.replace(tmp, path)
    return lut


def build_uv_mirror_lut(template: str = "open") -> np.ndarray:
    """(25, 256, 256, 2) uint8: ``lut[p, U8, V8]`` = the mirror point's (U8, V8) on part
    ``MIRROR_PART[p]`` (row 0 unused).

    Each chart face of part ``p`` is matched to its mirror face (the face whose 3D
    vertices are the mirrors of its own); grid points inside the face take the
    barycentric blend of the mirror face's chart coordinates. Grid points outside every
    face (off the chart) copy the nearest covered grid point.

    Parameters
    ----------
    template : str
        Template name for :func:`dpeval.template.load_template` (needs a mirror map and
        chart faces).
    """
    from scipy import ndimage

    from dpeval.template import MIRROR_PART, load_template

    t = load_template(template)
    if t.mirror is None or t.chart_faces is None or t.face_part is None:
        raise ValueError(f"template {template!r} lacks a mirror map or chart faces")
    faces = np.asarray(t.faces, dtype=np.int64)
    cfaces = np.asarray(t.chart_faces, dtype=np.int64)
    fpart = np.asarray(t.face_part, dtype=np.int64)
    uv = np.asarray(t.chart_uv, dtype=np.float64)
    mirror = np.asarray(t.mirror, dtype=np.int64)
    by_verts = {frozenset(f.tolist()): k for k, f in enumerate(faces)}
    ident = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)
    lut = np.zeros((25, 256, 256, 2), dtype=np.uint8)
    for p in range(1, 25):
        out = np.full((256, 256, 2), np.nan)
        same = True
        for k in np.nonzero(fpart == p)[0]:
            m = by_verts.get(frozenset(mirror[faces[k]].tolist()))
            if m is None or fpart[m] != MIRROR_PART[p]:
                continue
            src = uv[cfaces[k]]  # (3, 2)
            pos = {int(v): j for j, v in enumerate(faces[m])}
            dst = uv[cfaces[m][[pos[int(mirror[v])] for v in faces[k]]]]
            same &= bool(np.allclose(src, dst))
            _raster_face(out, src * 255.0, dst * 255.0)
        if same:
            lut[p] = ident
            continue
        hole = np.isnan(out[..., 0])
        if hole.all():
            raise ValueError(f"template {template!r}: part {p} has no mirrored chart faces")
        _, (ii, jj) = ndimage.distance_transform_edt(hole, return_indices=True)
        out = out[ii, jj]
        lut[p] = np.round(np.clip(out, 0, 255)).astype(np.uint8)
    return lut


def _raster_face(out: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Write ``dst``'s barycentric blend at the integer grid points inside triangle ``src``
    (both (3, 2) in 0..255 units; axis 0 of ``out`` is U, axis 1 is V)."""
    lo = np.clip(np.floor(src.min(0) - 0.5), 0, 255).astype(int)
    hi = np.clip(np.ceil(src.max(0) + 0.5), 0, 255).astype(int)
    gu, gv = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    (x0, y0), (x1, y1), (x2, y2) = src
    den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    if abs(den) < 1e-12:
        return
    a = ((y1 - y2) * (gu - x2) + (x2 - x1) * (gv - y2)) / den
    b = ((y2 - y0) * (gu - x2) + (x0 - x2) * (gv - y2)) / den
    c = 1.0 - a - b
    eps = -0.02
    inside = (a >= eps) & (b >= eps) & (c >= eps)
    if not inside.any():
        return
    val = a[..., None] * dst[0] + b[..., None] * dst[1] + c[..., None] * dst[2]
    out[gu[inside], gv[inside]] = val[inside]


def _mirror_part() -> Tensor:
    from dpeval.template import MIRROR_PART

    return torch.tensor(MIRROR_PART, dtype=torch.int64)


def flip_iuv(iuv: Tensor) -> Tensor:
    """Mirror an image-level ``(3, H, W) uint8`` IUV map left/right, relabelled."""
    f = iuv.flip(-1)
    i = f[0].long()
    lut = torch.from_numpy(uv_mirror_lut())
    uv = lut[i, f[1].long(), f[2].long()]  # (H, W, 2)
    fg = i > 0
    out = torch.zeros_like(f)
    out[0] = _mirror_part()[i].to(f.dtype)
    out[1] = torch.where(fg, uv[..., 0], 0).to(f.dtype)
    out[2] = torch.where(fg, uv[..., 1], 0).to(f.dtype)
    return out


def flip_dense_points(dp: dict, width: int) -> dict:
    """Mirror one person's dense points (``x`` in pixels, ``I``, ``U``, ``V`` in [0, 1])
    and ``dp_masks`` labels in an image ``width`` pixels wide."""
    lut = uv_mirror_lut()
    i = dp["I"].long()
    u8 = (dp["U"].clamp(0, 1) * 255).round().long().numpy()
    v8 = (dp["V"].clamp(0, 1) * 255).round().long().numpy()
    uv = lut[i.numpy(), u8, v8].astype(np.float32) / 255.0
    out = dict(dp)
    out["x"] = float(width) - dp["x"]
    out["I"] = _mirror_part()[i]
    out["U"] = torch.from_numpy(uv[:, 0].copy())
    out["V"] = torch.from_numpy(uv[:, 1].copy())
    if dp.get("dp_masks") is not None:
        out["dp_masks"] = torch.from_numpy(COARSE_MIRROR)[dp["dp_masks"].long().flip(-1)].to(
            dp["dp_masks"].dtype
        )
    return out


def _flip_boxes(boxes: Tensor, width: int) -> Tensor:
    if not len(boxes):
        return boxes
    b = boxes.clone()
    b[:, 0] = width - boxes[:, 2]
    b[:, 2] = width - boxes[:, 0]
    return b


def flip_item(item: dict) -> dict:
    """Mirror a :class:`~baselines.common.data.SynthDataset` item (all of its labels)."""
    w = int(item["width"])
    out = dict(item)
    out["image"] = item["image"].flip(-1)
    if item.get("iuv") is not None:
        out["iuv"] = flip_iuv(item["iuv"])
    out["boxes"] = _flip_boxes(item["boxes"], w)
    out["crowd_boxes"] = _flip_boxes(item["crowd_boxes"], w)
    out["masks"] = item["masks"].flip(-1)
    out["dp"] = [None if d is None else flip_dense_points(d, w) for d in item["dp"]]
    return out
