"""Detection ops in plain PyTorch: RoIAlign, multi-scale RoIAlign, box IoU, NMS.

In: feature maps and boxes as torch tensors (any device). Out: torch tensors on the
input's device.

No torchvision needed. :func:`roi_align` reproduces the Detectron2/torchvision C++
kernel (``aligned`` half-pixel shift, ``sampling_ratio`` x ``sampling_ratio`` samples per
bin, the kernel's clamping, samples beyond one pixel outside the map zeroed) with
``F.grid_sample``; :func:`nms` runs a numba greedy kernel on CPU. When torchvision is
importable *and* its compiled ops load (``torchvision.extension._has_ops()``), the
torchvision ops are used instead (``roi_align`` always, ``nms`` on CUDA tensors);
:func:`set_use_torchvision` turns that off (the tests force the pure path with it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import _kernels

__all__ = [
    "batched_nms",
    "box_iou",
    "map_levels",
    "multiscale_roi_align",
    "nms",
    "roi_align",
    "set_use_torchvision",
    "torchvision_ops_available",
]

_USE_TORCHVISION = True


@functools.lru_cache(maxsize=1)
def _torchvision_ops():
    """The ``torchvision.ops`` module when its compiled ops load, else None."""
    try:
        import torchvision  # noqa: F401
        from torchvision import extension, ops

        return ops if extension._has_ops() else None
    except Exception:  # ImportError, or RuntimeError from a CUDA build on CPU torch
        return None


def torchvision_ops_available() -> bool:
    """True when torchvision imports and its compiled ops are loaded."""
    return _torchvision_ops() is not None


def set_use_torchvision(enabled: bool) -> bool:
    """Allow (True, the default) or forbid (False) the torchvision fast path.

    Returns the previous setting, so callers can restore it.
    """
    global _USE_TORCHVISION
    previous = _USE_TORCHVISION
    _USE_TORCHVISION = bool(enabled)
    return previous


def _tv():
    return _torchvision_ops() if _USE_TORCHVISION else None


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    oh, ow = size
    return int(oh), int(ow)


def _check_rois(rois: Tensor) -> None:
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"rois must be (K, 5) (batch_index, x1, y1, x2, y2), got shape {tuple(rois.shape)}"
        )


def _sample_coords(start: Tensor, bin_size: Tensor, pooled: int, grid: int) -> Tensor:
    """(K, pooled * grid) sample positions along one axis, as the C++ kernel places them."""
    steps = torch.arange(pooled * grid, dtype=start.dtype, device=start.device)
    ph = torch.div(steps, grid, rounding_mode="floor")
    i = steps - ph * grid
    return (
        start[:, None] + ph[None] * bin_size[:, None] + (i[None] + 0.5) * (bin_size[:, None] / grid)
    )


def _roi_align_image(
    fmap: Tensor,
    rois: Tensor,
    pooled: tuple[int, int],
    scale: float,
    grid: tuple[int, int],
    aligned: bool,
) -> Tensor:
    """RoIAlign of K rois on one (C, H, W) map with a fixed sample grid -> (K, C, oh, ow)."""
    channels, height, width = fmap.shape
    pooled_h, pooled_w = pooled
    grid_h, grid_w = grid
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * scale - offset
    y1 = rois[:, 2] * scale - offset
    roi_w = rois[:, 3] * scale - offset - x1
    roi_h = rois[:, 4] * scale - offset - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    ys = _sample_coords(y1, roi_h / pooled_h, pooled_h, grid_h)  # (K, SH)
    xs = _sample_coords(x1, roi_w / pooled_w, pooled_w, grid_w)  # (K, SW)
    # the kernel returns 0 for samples beyond one pixel outside the map...
    valid = ((ys >= -1.0) & (ys <= height))[:, :, None] & ((xs >= -1.0) & (xs <= width))[:, None]
    # ...and clamps the rest to [0, size - 1], where bilinear sampling with
    # align_corners=True / border padding gives exactly its weights
    yn = ys.clamp(0.0, height - 1) * (2.0 / max(height - 1, 1)) - 1.0
    xn = xs.clamp(0.0, width - 1) * (2.0 / max(width - 1, 1)) - 1.0
    k, sh, sw = len(rois), ys.shape[1], xs.shape[1]
    sample_grid = torch.stack(
        (xn[:, None, :].expand(k, sh, sw), yn[:, :, None].expand(k, sh, sw)), dim=-1
    ).reshape(1, k * sh, sw, 2)
    samples = F.grid_sample(
        fmap[None],
        sample_grid.to(fmap.dtype),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )  # (1, C, K*SH, SW)
    samples = samples.reshape(channels, k, sh, sw).transpose(0, 1)
    samples = samples * valid[:, None].to(samples.dtype)
    return F.avg_pool2d(samples, kernel_size=(grid_h, grid_w), stride=(grid_h, grid_w))


def _roi_align_pure(
    features: Tensor,
    rois: Tensor,
    pooled: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    n_rois = len(rois)
    out = features.new_zeros((n_rois, features.shape[1], *pooled))
    if n_rois == 0:
        return out
    coords = rois.to(dtype=torch.float64 if features.dtype == torch.float64 else torch.float32)
    batch_index = rois[:, 0].round().long()
    if sampling_ratio > 0:
        # one grid_sample per image
        for b in torch.unique(batch_index).tolist():
            sel = torch.nonzero(batch_index == b).squeeze(1)
            out = out.index_copy(
                0,
                sel,
                _roi_align_image(
                    features[b],
                    coords[sel],
                    pooled,
                    spatial_scale,
                    (sampling_ratio, sampling_ratio),
                    aligned,
                ),
            )
        return out
    # adaptive sampling (ceil(roi_size / pooled) per bin side): one call per roi
    offset = 0.5 if aligned else 0.0
    widths = (coords[:, 3] * spatial_scale - offset) - (coords[:, 1] * spatial_scale - offset)
    heights = (coords[:, 4] * spatial_scale - offset) - (coords[:, 2] * spatial_scale - offset)
    if not aligned:
        widths = widths.clamp(min=1.0)
        heights = heights.clamp(min=1.0)
    rows = []
    for r in range(n_rois):
        # the kernel's count = max(grid_h * grid_w, 1): an empty grid averages to 0
        grid_h = math.ceil(float(heights[r]) / pooled[0])
        grid_w = math.ceil(float(widths[r]) / pooled[1])
        if grid_h <= 0 or grid_w <= 0:
            rows.append(out[r : r + 1])
            continue
        rows.append(
            _roi_align_image(
                features[int(batch_index[r])],
                coords[r : r + 1],
                pooled,
                spatial_scale,
                (grid_h, grid_w),
                aligned,
            )
        )
    return torch.cat(rows, dim=0)


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> Tensor:
    """RoIAlign with the Detectron2/torchvision C++ kernel's semantics.

    Parameters
    ----------
    features : (N, C, H, W) float tensor
    rois : (K, 5) float tensor
        (batch_index, x1, y1, x2, y2) in input-image pixels.
    output_size : int or (oh, ow)
    spatial_scale : float
        Feature-map size / image size (1 / stride).
    sampling_ratio : int, default 2
        Bilinear samples per bin side; <= 0 means adaptive (slow in the pure path: one
        ``grid_sample`` call per roi).
    aligned : bool, default True
        Shift the box by -0.5 px so pixel centres line up (Detectron2's ``aligned``).

    Returns
    -------
    (K, C, oh, ow) tensor, same dtype and device as ``features``; differentiable with
    respect to ``features``. Empty ``rois`` give an empty output.

    Examples
    --------
    >>> f = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> roi_align(f, torch.tensor([[0.0, 0, 0, 4, 4]]), 1, 1.0).shape
    torch.Size([1, 1, 1, 1])
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    _check_rois(rois)
    pooled = _pair(output_size)
    tv = _tv()
    if tv is not None and len(rois) > 0:
        return tv.roi_align(
            features, rois.to(features.dtype), pooled, spatial_scale, sampling_ratio, aligned
        )
    return _roi_align_pure(features, rois, pooled, spatial_scale, sampling_ratio, aligned)


def map_levels(
    rois: Tensor,
    min_level: int,
    max_level: int,
    canonical_size: int = 224,
    canonical_level: int = 4,
) -> Tensor:
    """FPN level of each roi: ``floor(canonical_level + log2(sqrt(area) / canonical_size))``.

    As in Detectron2 (``assign_boxes_to_levels``), with ``1e-8`` added inside the log so
    that exact powers of two do not round down, clamped to [min_level, max_level].

    Parameters
    ----------
    rois : (K, 5) or (K, 4)
        Boxes (with or without the leading batch index), xyxy.

    Returns
    -------
    (K,) int64 levels.
    """
    boxes = rois[:, -4:]
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0)
    sizes = torch.sqrt(area.to(torch.float64))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_size + 1e-8))
    return levels.clamp(min_level, max_level).long()


def multiscale_roi_align(
    features: Sequence[Tensor],
    rois: Tensor,
    output_size: int | tuple[int, int],
    strides: Sequence[int] = (4, 8, 16, 32),
    sampling_ratio: int = 2,
    canonical_size: int = 224,
    canonical_level: int = 4,
) -> Tensor:
    """RoIAlign over FPN levels, each roi pooled from the level :func:`map_levels` picks.

    Parameters
    ----------
    features : sequence of (N, C, H_l, W_l)
        One map per level (P2..P5 by default), finest first.
    rois : (K, 5)
        (batch_index, x1, y1, x2, y2) in input-image pixels.
    output_size : int or (oh, ow)
    strides : sequence of int
        Stride of each level; level ``l = log2(stride)`` (4 -> 2 ... 32 -> 5).
    sampling_ratio, canonical_size, canonical_level
        As in Detectron2's ``ROIPooler`` (aligned=True).

    Returns
    -------
    (K, C, oh, ow), rows in the order of ``rois``.
    """
    _check_rois(rois)
    if len(features) != len(strides):
        raise ValueError(f"got {len(features)} feature maps but {len(strides)} strides")
    pooled = _pair(output_size)
    first = features[0]
    out = first.new_zeros((len(rois), first.shape[1], *pooled))
    if len(rois) == 0:
        return out
    level_ids = [round(math.log2(s)) for s in strides]
    levels = map_levels(rois, min(level_ids), max(level_ids), canonical_size, canonical_level)
    for fmap, stride, level in zip(features, strides, level_ids, strict=True):
        sel = torch.nonzero(levels == level).squeeze(1)
        if len(sel) == 0:
            continue
        pooled_rois = roi_align(fmap, rois[sel], pooled, 1.0 / stride, sampling_ratio, True)
        out = out.index_copy(0, sel.to(out.device), pooled_rois.to(out.dtype))
    return out


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M) (0 where the union is 0)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(
        union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter)
    )


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : (N, 4) xyxy
    scores : (N,)
    iou_threshold : float
        Boxes with IoU strictly above it with a higher-scored kept box are dropped.

    Returns
    -------
    (K,) int64 tensor on the input device: kept indices, by decreasing score (ties in
    score broken by lower index).
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(
            f"nms needs boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} and "
            f"{tuple(scores.shape)}"
        )
    device = boxes.device
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    tv = _tv()
    if tv is not None and boxes.is_cuda:
        return tv.nms(boxes, scores.to(boxes.dtype), float(iou_threshold))
    b = np.ascontiguousarray(boxes.detach().cpu().double().numpy())
    s = scores.detach().cpu().double().numpy()
    order = np.ascontiguousarray(np.argsort(-s, kind="stable"), dtype=np.int64)
    keep = _kernels.nms(b, order, float(iou_threshold))
    return torch.from_numpy(keep).to(device)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS done independently per category ``idxs`` (coordinate-offset trick).

    Each category's boxes are shifted by ``idx * (max_coordinate + 1)`` so boxes of
    different categories never overlap; then one :func:`nms`.

    Returns
    -------
    (K,) int64 kept indices, by decreasing score.
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    tv = _tv()
    if tv is not None and boxes.is_cuda:
        return tv.batched_nms(boxes, scores.to(boxes.dtype), idxs, float(iou_threshold))
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)
