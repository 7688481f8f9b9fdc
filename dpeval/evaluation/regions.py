"""PoseTrack image ignore regions: which GTs and detections the evaluation drops.

In: :class:`~dpeval.formats.model.GroundTruth` (``ImageInfo.ignore_regions``, polygons
from ``ignore_regions_x`` / ``ignore_regions_y``) and instance
:class:`~dpeval.formats.model.Predictions`. Out: one keep flag per GT annotation and per
detection, applied by :func:`~dpeval.evaluation.prepare.prepare` before
anything else (before the top-``max_dets`` cut, like the official ``_prepare``).

The official rule (DensePose ``_getIgnoreRegion`` / ``_checkIgnore``, spec §4 "Prepare"),
only on images that have ignore regions:

- the polygons are rasterised with pycocotools (``frPyObjects`` on the interleaved
  x, y lists, ``merge``, ``decode``) into one image-sized mask;
- the box is cast to integers component by component (``int(x), int(y), int(w),
  int(h)``, truncation toward zero); a box with ``int(w) * int(h) == 0`` is dropped;
- the region is cropped as ``mask[y1:y2, x1:x2]`` with ``x2 = min(x1 + w, W)``,
  ``y2 = min(y1 + h, H)`` and **Python slice semantics** (a negative ``x1`` counts from
  the right edge, as in the official code); an empty crop keeps the box;
- box rule (GTs in both protocols; detections in ``challenge2019``, whose code checks
  them before decoding the IUV map): dropped when ``crop.sum() / w / h >= 0.7``;
- UV rule (detections in ``detectron2``, whose in-memory results carry the IUV map):
  dropped when the crowd-style IoU of the detection's foreground (I > 0 of the box map,
  ``(int(h), int(w))``) with the crop, i.e. |foreground in region| / |foreground|, is
  ``>= 0.9``; an empty foreground keeps the detection.

The 2019 code crashes on a detection in an image that has no GT and detectron2 skips
the check there; dpeval applies the regions wherever the image has them. The numbers
cannot differ: every detection of an image without a regular GT is ignored anyway.
"""

from __future__ import annotations

import numpy as np

from ..formats.model import Detection, GroundTruth, ImageInfo, Predictions
from ..params import IGNORE_REGION_BOX_THR, IGNORE_REGION_UV_THR
from .masks import decode_rle

__all__ = ["ignore_region_mask", "keep_box", "keep_detection", "region_filter"]


def ignore_region_mask(info: ImageInfo) -> np.ndarray | None:
    """The merged ignore mask of an image, or None when it has no ignore region.

    Parameters
    ----------
    info : ImageInfo

    Returns
    -------
    (H, W) uint8 or None
        1 inside any polygon (pycocotools rasterisation).

    Example
    -------
    >>> info = ImageInfo(1, 4, 6, ignore_regions=(np.array([[0, 0], [3, 0], [3, 4], [0, 4]]),))
    >>> int(ignore_region_mask(info).sum())
    12
    """
    from pycocotools import mask as mask_utils

    if not info.ignore_regions:
        return None
    polys = [np.asarray(r, dtype=np.float64).reshape(-1).tolist() for r in info.ignore_regions]
    rles = mask_utils.frPyObjects(polys, int(info.height), int(info.width))
    return np.asarray(decode_rle(mask_utils.merge(rles)), dtype=np.uint8)


def _int_box(bbox: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = (int(float(t)) for t in bbox)  # numpy astype(int): truncation toward zero
    return x, y, w, h


def _crop(region: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, w, h = box
    x2 = min(x1 + w, region.shape[1])
    y2 = min(y1 + h, region.shape[0])
    return region[y1:y2, x1:x2]  # Python slicing on purpose: negative starts wrap


def keep_box(bbox: np.ndarray, region: np.ndarray | None) -> bool:
    """Box rule: False when the integer box has >= 70 % of its area in the region.

    Parameters
    ----------
    bbox : (4,) float
        [x, y, w, h].
    region : (H, W) uint8 or None
        From :func:`ignore_region_mask`; None keeps everything.

    Returns
    -------
    bool

    Example
    -------
    >>> region = np.zeros((10, 10), np.uint8); region[:, :5] = 1
    >>> keep_box(np.array([0.0, 0.0, 6.9, 4.0]), region), keep_box(np.array([0, 0, 8, 4]), region)
    (False, True)
    """
    if region is None:
        return True
    box = _int_box(bbox)
    if box[2] * box[3] == 0:
        return False
    inside = int(_crop(region, box).sum())
    if inside == 0:
        return True
    return inside / box[2] / box[3] < IGNORE_REGION_BOX_THR


def keep_detection(det: Detection, region: np.ndarray | None, protocol: str) -> bool:
    """Whether a detection survives the ignore regions under ``protocol``.

    ``challenge2019``: the box rule (:func:`keep_box`). ``detectron2``: the zero-area
    rule, then the UV rule (foreground share inside the region < 0.9).
    """
    if region is None:
        return True
    if protocol == "challenge2019":
        return keep_box(det.bbox, region)
    box = _int_box(det.bbox)
    if box[2] * box[3] == 0:
        return False
    crop = _crop(region, box)
    if int(crop.sum()) == 0:
        return True
    fg = det.load_iuv()[0, : max(box[3], 0), : max(box[2], 0)] > 0
    area = int(np.count_nonzero(fg))
    if area == 0:
        return True
    h, w = min(fg.shape[0], crop.shape[0]), min(fg.shape[1], crop.shape[1])
    inter = int(np.count_nonzero(fg[:h, :w] & (crop[:h, :w] > 0)))
    return inter / area < IGNORE_REGION_UV_THR


def region_filter(
    gt: GroundTruth, preds: Predictions, protocol: str
) -> tuple[np.ndarray, np.ndarray]:
    """Keep flags for every GT annotation and every detection.

    Parameters
    ----------
    gt : GroundTruth
    preds : Predictions
        Instance predictions.
    protocol : {"challenge2019", "detectron2"}

    Returns
    -------
    keep_gt : (A,) bool
        In ``gt.annotations`` order.
    keep_det : (D,) bool
        In ``preds.detections`` order.
    """
    keep_gt = np.ones(len(gt.annotations), dtype=bool)
    keep_det = np.ones(len(preds.detections), dtype=bool)
    regions: dict[int, np.ndarray | None] = {}
    for i, info in gt.images.items():
        if info.ignore_regions:
            regions[i] = ignore_region_mask(info)
    if not regions:
        return keep_gt, keep_det
    for k, a in enumerate(gt.annotations):
        keep_gt[k] = keep_box(a.bbox, regions.get(a.image_id))
    for k, d in enumerate(preds.detections):
        keep_det[k] = keep_detection(d, regions.get(d.image_id), protocol)
    return keep_gt, keep_det
