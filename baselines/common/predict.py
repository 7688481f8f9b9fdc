"""Model outputs -> dpeval records -> prediction files (the baselines' output stage).

In: per-part logits and U/V maps (torch), or finished IUV maps (``(3, H, W) uint8``: I,
U*255, V*255). Out: :class:`dpeval.formats.Predictions` and the files ``dpeval score``
reads: the COCO challenge results JSON (instances) and a directory of image-level IUV
PNGs (dense maps).

Quantisation follows detectron2: ``uint8(clamp(U * 255, 0, 255))`` (truncation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dpeval.formats import DenseMap, Detection, ImageInfo, Predictions, save_predictions

__all__ = [
    "box_iuv_size",
    "dense_to_predictions",
    "instances_to_predictions",
    "iuv_from_outputs",
    "write_dense",
    "write_instances",
]


def iuv_from_outputs(
    part_logits: Tensor,
    u: Tensor,
    v: Tensor,
    size: tuple[int, int] | None = None,
    fg_threshold: float | None = None,
) -> np.ndarray:
    """One prediction's outputs -> a ``(3, H, W) uint8`` IUV map.

    Parameters
    ----------
    part_logits : (25, h, w)
    u, v : (24, h, w)
        Per-part U and V in [0, 1] (after the sigmoid, if the model uses one).
    size : (H, W), optional
        Resize (bilinear, ``align_corners=False``) the logits and U/V to this size first,
        e.g. a box's :func:`box_iuv_size`.
    fg_threshold : float, optional
        None: I = argmax over the 25 classes. Else a pixel is foreground when its
        foreground probability ``1 - softmax(part_logits)[0]`` exceeds this, and I is then
        the most likely of the 24 parts.

    Returns
    -------
    (3, H, W) uint8
        I (0 background), U, V of that part times 255, 0 on background.
    """
    with torch.no_grad():
        stack = torch.cat([part_logits, u, v], dim=0).float()[None]
        if size is not None and tuple(stack.shape[-2:]) != tuple(size):
            stack = F.interpolate(stack, size=tuple(size), mode="bilinear", align_corners=False)
        stack = stack[0]
        if fg_threshold is None:
            labels = stack[:25].argmax(0)
        else:
            fg_prob = 1.0 - torch.softmax(stack[:25], dim=0)[0]
            labels = (stack[1:25].argmax(0) + 1) * (fg_prob > fg_threshold)
        index = (labels.clamp(min=1) - 1)[None]
        fg = labels > 0
        uu = stack[25:49].gather(0, index)[0]
        vv = stack[49:73].gather(0, index)[0]
        iuv = torch.stack(
            [
                labels.float(),
                (uu * 255).clamp(0, 255) * fg,
                (vv * 255).clamp(0, 255) * fg,
            ]
        ).to(torch.uint8)
    return iuv.cpu().numpy()


def box_iuv_size(box_xyxy: Any) -> tuple[int, int]:
    """(H, W) of the IUV map for a box: ``max(1, floor(side))``, as dpeval expects.

    The evaluator reads the map at integer offsets up to the truncated box size; a map
    between ``floor`` and ``ceil`` of the box size is accepted without warning.
    """
    x1, y1, x2, y2 = (float(t) for t in box_xyxy)
    return max(1, math.floor(y2 - y1)), max(1, math.floor(x2 - x1))


def instances_to_predictions(
    instances: Iterable[tuple[int, Any, float, np.ndarray]], category_id: int = 1
) -> Predictions:
    """(image_id, box_xyxy, score, iuv) tuples -> instance :class:`Predictions`.

    Parameters
    ----------
    instances : iterable of (int, (4,) xyxy, float, (3, h, w) uint8)
        The IUV map covers the box: (h, w) between floor and ceil of the box size (use
        :func:`box_iuv_size`).
    category_id : int, default 1 (person)

    Raises
    ------
    ValueError
        A map that is not (3, h, w) uint8 or does not fit its box.
    """
    dets = []
    for k, (image_id, box, score, iuv) in enumerate(instances):
        x1, y1, x2, y2 = (float(t) for t in np.asarray(box, dtype=np.float64).reshape(4))
        w, h = x2 - x1, y2 - y1
        iuv = np.ascontiguousarray(np.asarray(iuv))
        if iuv.ndim != 3 or iuv.shape[0] != 3 or iuv.dtype != np.uint8:
            raise ValueError(
                f"instance {k} (image_id={image_id}): IUV map must be (3, h, w) uint8, got "
                f"{iuv.shape} {iuv.dtype}"
            )
        _, ih, iw = iuv.shape
        if not (
            math.floor(h) <= ih <= max(math.ceil(h), 1)
            and math.floor(w) <= iw <= max(math.ceil(w), 1)
        ):
            raise ValueError(
                f"instance {k} (image_id={image_id}): IUV map is {ih}x{iw} (HxW) but the box "
                f"is {h:.2f}x{w:.2f}; resize it to box_iuv_size(box)"
            )
        dets.append(
            Detection(
                image_id=int(image_id),
                category_id=int(category_id),
                bbox=np.array([x1, y1, w, h], dtype=np.float64),
                score=float(score),
                iuv_shape=(3, int(ih), int(iw)),
                index=k,
                _iuv=iuv,
            )
        )
    return Predictions("instances", detections=tuple(dets), format="challenge-json")


def write_instances(preds: Predictions, path: str | Path) -> Path:
    """Write instance predictions as the COCO challenge results JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_predictions(preds, path, format="challenge-json")
    return path


def dense_to_predictions(maps: Mapping[int, np.ndarray]) -> Predictions:
    """{image_id: (3, H, W) uint8 image-level IUV map} -> dense :class:`Predictions`."""
    dense = []
    for k, (image_id, iuv) in enumerate(sorted(maps.items())):
        iuv = np.ascontiguousarray(iuv, dtype=np.uint8)
        if iuv.ndim != 3 or iuv.shape[0] != 3:
            raise ValueError(f"image {image_id}: dense IUV map must be (3, H, W), got {iuv.shape}")
        dense.append(
            DenseMap(image_id=int(image_id), iuv_shape=tuple(iuv.shape), index=k, _iuv=iuv)
        )
    return Predictions("dense", dense=tuple(dense), format="iuv-png-dir")


def write_dense(
    maps: Mapping[int, np.ndarray] | Predictions,
    images: Mapping[int, ImageInfo] | None,
    out_dir: str | Path,
) -> Path:
    """Write image-level IUV maps as one PNG per image (``iuv-png-dir``); returns the dir.

    Files are named after the image's ``file_name`` stem when ``images`` (e.g.
    ``GroundTruth.images``) is given, else after the image id.
    """
    preds = maps if isinstance(maps, Predictions) else dense_to_predictions(maps)
    out_dir = Path(out_dir)
    save_predictions(preds, out_dir, format="iuv-png-dir", images=images)
    return out_dir
