"""Masks for GPSm and IoU: ground-truth masks from ``dp_masks`` and detection masks.

A mask is kept box-local as a :class:`BoxMask` (top-left corner in image pixels and a
bool array), already clipped to the image, so IoUs only touch the overlap of two boxes.
The numbers equal pycocotools' ``maskUtils.iou`` on full-image masks (the counts are
integers; crowd GTs use intersection / detection area).

Protocols (spec §3):

- ``challenge2019``: the 14 part masks become a 256x256 label map (part k = k, later
  parts overwrite), resized **bilinearly on the label values** with half-pixel centres
  (OpenCV ``INTER_LINEAR``) to ``(int(w), int(h))``, thresholded at > 0.5 and pasted at
  ``(int(x), int(y))``. A GT without ``dp_masks`` has an empty mask.
- ``detectron2``: the label map is clamped to {0, 1} first, then
  ``scipy.ndimage.zoom(order=1, prefilter=False)`` by ``max(h,1)/256, max(w,1)/256``,
  > 0.5, pasted at ``(int(x), int(y))`` with columns clipped to
  ``min(int(x + w), W, int(x) + mask_w)`` (rows alike). A GT without ``dp_masks`` falls
  back to its COCO ``segmentation``.

Detections: ``I > 0`` on the box-sized IUV map, cropped to ``(int(h), int(w))`` and
pasted at ``(int(x), int(y))``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._io import cache_dir, content_key, load_npy, save_npy_atomic
from .._kernel_turn import KernelAfter
from ._kernels import resize_above

__all__ = [
    "BoxMask",
    "decode_rle",
    "detection_mask",
    "gt_mask",
    "gt_masks",
    "mask_iou",
    "resize_linear_halfpixel",
]

_GRID = 256


@dataclass(frozen=True)
class BoxMask:
    """A bool mask placed at (x0, y0) of the image; ``area`` = number of set pixels."""

    x0: int
    y0: int
    mask: np.ndarray
    area: int

    @staticmethod
    def empty() -> BoxMask:
        return BoxMask(0, 0, np.zeros((0, 0), dtype=bool), 0)


def _place(
    mask: np.ndarray,
    x0: int,
    y0: int,
    img_w: int,
    img_h: int,
    x_stop: int | None = None,
    y_stop: int | None = None,
) -> BoxMask:
    """Paste ``mask`` at (x0, y0), clipped to the image (and to x_stop/y_stop)."""
    h, w = mask.shape
    xe = min(x0 + w, img_w if x_stop is None else min(x_stop, img_w))
    ye = min(y0 + h, img_h if y_stop is None else min(y_stop, img_h))
    xs, ys = max(x0, 0), max(y0, 0)
    if xe <= xs or ye <= ys:
        return BoxMask.empty()
    sub = mask[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return BoxMask(xs, ys, sub, int(np.count_nonzero(sub)))


def resize_linear_halfpixel(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres and clamped borders (OpenCV INTER_LINEAR).

    Coefficients are float64, as OpenCV uses for float64 input: the scale is
    ``1 / (out / in)``, the source position ``(d + 0.5) * scale - 0.5`` and the weights
    ``fx``, ``1 - fx`` stay in double. The result agrees with ``cv2.resize`` to about
    1e-13 (OpenCV's SIMD summation order differs in the last bits), so the > 0.5 mask
    threshold gives the same pixels; float32 weights (an earlier version) moved values
    by up to 1e-6 and flipped pixels that OpenCV puts just below 0.5.
    """

    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = 1.0 / (n_out / n_in)
        f = (np.arange(n_out) + 0.5) * scale - 0.5
        i0 = np.floor(f).astype(np.int64)
        w1 = f - i0
        low = i0 < 0
        i0[low], w1[low] = 0, 0.0
        high = i0 >= n_in - 1
        i0[high], w1[high] = n_in - 1, 0.0
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, w1

    src = np.asarray(src, dtype=np.float64)
    r0, r1, wr = axis(out_h, src.shape[0])
    c0, c1, wc = axis(out_w, src.shape[1])
    rows = src[:, c0] * (1 - wc)[None, :] + src[:, c1] * wc[None, :]
    return rows[r0] * (1 - wr)[:, None] + rows[r1] * wr[:, None]


_kernel_turn = KernelAfter(64)
"""GT masks resized with NumPy in a process before the Numba kernel takes over: a small
set (the bundled example has 14) is not worth the kernel's first compilation (~0.8
CPU-s); a large one gains ~1 ms per mask. Both give the same pixels (tested)."""


def _resize_above(src: np.ndarray, out_h: int, out_w: int, threshold: float) -> np.ndarray:
    """``resize_linear_halfpixel(src, out_h, out_w) > threshold``, by NumPy or the kernel."""
    if not _kernel_turn():
        return resize_linear_halfpixel(src, out_h, out_w) > threshold
    return resize_above(src, out_h, out_w, threshold)


def decode_rle(rle: Any) -> np.ndarray:
    """pycocotools decode, without its NumPy 2 ``copy=False`` deprecation noise."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*copy keyword")
        return mask_utils.decode(rle)


def _label_map(dp_masks: tuple[Any, ...]) -> np.ndarray:
    """256x256 float64 part labels: part k = k, a later part overwrites an earlier one."""
    present = [(k, rle) for k, rle in enumerate(dp_masks, start=1) if rle]
    if not present:
        return np.zeros((_GRID, _GRID), dtype=np.float64)
    stack = decode_rle([rle for _, rle in present])  # (256, 256, n) uint8, one call
    ids = np.array([k for k, _ in present], dtype=np.uint8)  # increasing: max = last
    return np.ascontiguousarray(np.max(np.minimum(stack, 1) * ids, axis=2), dtype=np.float64)


def gt_mask(
    bbox: np.ndarray,
    dp_masks: tuple[Any, ...] | None,
    segmentation: Any,
    img_h: int,
    img_w: int,
    protocol: str,
) -> BoxMask:
    """The ground-truth mask of one person, box-local, clipped to the image."""
    x, y, w, h = (float(t) for t in bbox)
    if protocol == "challenge2019":
        if not dp_masks:
            return BoxMask.empty()
        iw, ih = int(w), int(h)
        if iw <= 0 or ih <= 0:
            return BoxMask.empty()
        m = _resize_above(_label_map(dp_masks), ih, iw, 0.5)
        return _place(m, int(x), int(y), img_w, img_h)
    if dp_masks:
        from scipy.ndimage import zoom

        binary = np.minimum(_label_map(dp_masks), 1.0)
        m = zoom(binary, (max(h, 1.0) / _GRID, max(w, 1.0) / _GRID), order=1, prefilter=False)
        m = m > 0.5
        return _place(m, int(x), int(y), img_w, img_h, x_stop=int(x + w), y_stop=int(y + h))
    if segmentation:
        from pycocotools import mask as mask_utils

        if isinstance(segmentation, list):
            rles = mask_utils.frPyObjects(segmentation, img_h, img_w)
            rle = mask_utils.merge(rles)
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(segmentation, img_h, img_w)
        else:
            rle = segmentation
        full = decode_rle(rle).astype(bool)
        ys, xs = np.nonzero(full)
        if len(xs) == 0:
            return BoxMask.empty()
        x0, y0 = int(xs.min()), int(ys.min())
        sub = full[y0 : ys.max() + 1, x0 : xs.max() + 1]
        return BoxMask(x0, y0, sub, int(np.count_nonzero(sub)))
    return BoxMask.empty()


def gt_masks(gt: Any, protocol: str) -> list[BoxMask]:
    """:func:`gt_mask` of every annotation of ``gt`` (file order), remembered across runs.

    The masks depend on the ground truth alone, so a content-addressed entry in
    ``cache_dir()/gt`` (kind ``gt`` of ``dpeval cache``) keeps them, bit-packed, for every
    later run on the same ground truth, whatever the predictions; its key hashes every
    input of :func:`gt_mask` (boxes, image sizes, the ``dp_masks`` RLE strings and, for
    ``detectron2``, the segmentations it falls back to), so a changed annotation misses.
    A cache that cannot be written only costs the recomputation.
    """
    anns = gt.annotations
    sizes = np.array([_image_size(gt, a.image_id) for a in anns], dtype=np.int64).reshape(
        len(anns), 2
    )
    key = _gt_masks_key(anns, sizes, protocol)[:40]
    base = cache_dir() / "gt"
    head = load_npy(base / f"{key}-masks.npy", (len(anns), 5), np.dtype(np.int64))
    if head is not None:
        n_bytes = int(((head[:, 2] * head[:, 3] + 7) // 8).sum())
        bits = load_npy(base / f"{key}-bits.npy", (n_bytes,), np.dtype(np.uint8))
        if bits is not None:
            return _unpack_masks(head, bits)
    masks = [
        gt_mask(a.bbox, a.dp_masks, a.segmentation, int(h), int(w), protocol)
        for a, (h, w) in zip(anns, sizes, strict=True)
    ]
    head = np.array(
        [(m.x0, m.y0, m.mask.shape[0], m.mask.shape[1], m.area) for m in masks], dtype=np.int64
    ).reshape(len(masks), 5)
    packed = [np.packbits(m.mask, axis=None) for m in masks]
    bits = np.concatenate(packed) if packed else np.zeros(0, dtype=np.uint8)
    if save_npy_atomic(base / f"{key}-bits.npy", bits):  # bits first: a head means both
        save_npy_atomic(base / f"{key}-masks.npy", head)
    return masks


def _image_size(gt: Any, image_id: int) -> tuple[int, int]:
    info = gt.images.get(image_id)
    return (info.height, info.width) if info is not None else (0, 0)


def _gt_masks_key(anns: Any, sizes: np.ndarray, protocol: str) -> str:
    boxes = np.array([a.bbox for a in anns], dtype=np.float64).reshape(len(anns), 4)
    rles: list[bytes] = []
    for a in anns:
        for rle in a.dp_masks or ():
            counts = rle.get("counts", b"") if rle else b""
            rles.append(counts.encode() if isinstance(counts, str) else bytes(counts))
            rles.append(repr(rle.get("size")).encode() if rle else b"-")
        rles.append(b"|" if a.dp_masks else b"|none|")
        if protocol != "challenge2019" and not a.dp_masks and a.segmentation:
            rles.append(repr(a.segmentation).encode())
    lengths = np.fromiter((len(r) for r in rles), dtype=np.int64, count=len(rles))
    return content_key(["gt-masks-v1", protocol, boxes, sizes, lengths, b"".join(rles)])


def _unpack_masks(head: np.ndarray, bits: np.ndarray) -> list[BoxMask]:
    out, pos = [], 0
    for x0, y0, h, w, area in head.tolist():
        n = (h * w + 7) // 8
        flat = np.unpackbits(bits[pos : pos + n], count=h * w).view(bool)
        out.append(BoxMask(x0, y0, flat.reshape(h, w), area))
        pos += n
    return out


def detection_mask(iuv: np.ndarray, bbox: np.ndarray, img_h: int, img_w: int) -> BoxMask:
    """Foreground (I > 0) of a box-sized IUV map, placed at the box, clipped."""
    x, y, w, h = (float(t) for t in bbox)
    m = iuv[0, : max(int(h), 0), : max(int(w), 0)] > 0
    return _place(m, int(x), int(y), img_w, img_h)


def mask_iou(dt: BoxMask, gt: BoxMask, crowd: bool) -> float:
    """IoU of two placed masks (intersection / dt area for a crowd GT); 0 if empty."""
    if dt.area == 0 and gt.area == 0:
        return 0.0
    inter = 0
    xs, ys = max(dt.x0, gt.x0), max(dt.y0, gt.y0)
    xe = min(dt.x0 + dt.mask.shape[1], gt.x0 + gt.mask.shape[1])
    ye = min(dt.y0 + dt.mask.shape[0], gt.y0 + gt.mask.shape[0])
    if xe > xs and ye > ys:
        a = dt.mask[ys - dt.y0 : ye - dt.y0, xs - dt.x0 : xe - dt.x0]
        b = gt.mask[ys - gt.y0 : ye - gt.y0, xs - gt.x0 : xe - gt.x0]
        inter = int(np.count_nonzero(a & b))
    union = dt.area if crowd else dt.area + gt.area - inter
    return inter / union if union > 0 else 0.0
