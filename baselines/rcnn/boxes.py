"""Box utilities of the R-CNN: anchors, the box coder, the IoU matcher, the sampler.

In: feature-map sizes and strides (anchors), boxes ``(N, 4) float32`` as x1, y1, x2, y2
in image pixels (continuous coordinates: pixel ``i`` covers ``[i, i + 1)``), IoU
matrices ``(G, N)``.
Out: anchors per level, regression deltas ``(N, 4)`` and decoded boxes, per-box match
indices and labels, sampled positive / negative indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

#: ``exp`` of a width/height delta is clamped at this value (Detectron's choice).
DELTA_CLAMP = math.log(1000.0 / 16)


def cell_anchors(size: float, ratios: Sequence[float]) -> Tensor:
    """Anchors of one size centred on the origin.

    Parameters
    ----------
    size : float
        Square root of the anchor area, in pixels.
    ratios : sequence of float
        Aspect ratios ``h / w``.

    Returns
    -------
    (A, 4) float32
        ``[-w/2, -h/2, w/2, h/2]`` with ``w = size / sqrt(r)``, ``h = size * sqrt(r)``.
    """
    out = []
    for r in ratios:
        w = size / math.sqrt(r)
        h = size * math.sqrt(r)
        out.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(out, dtype=torch.float32)


def grid_anchors(
    feat_hw: tuple[int, int], stride: int, size: float, ratios: Sequence[float]
) -> Tensor:
    """All anchors of one pyramid level.

    Anchor centres sit at the centres of the feature cells, ``((j + 0.5) * stride,
    (i + 0.5) * stride)``, the same convention as ``roi_align(aligned=True)``.

    Parameters
    ----------
    feat_hw : (int, int)
        Feature map height and width.
    stride : int
    size : float
    ratios : sequence of float

    Returns
    -------
    (H * W * A, 4) float32
        Ordered position-major (row, column), then ratio: the layout of a
        ``(A, H, W)`` head output permuted to ``(H, W, A)``.
    """
    h, w = feat_hw
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
    return (shifts + cell_anchors(size, ratios)[None]).reshape(-1, 4)


class BoxCoder:
    """Encode boxes as deltas ``(dx, dy, dw, dh)`` relative to reference boxes.

    ``dx = wx * (gx - px) / pw``, ``dy = wy * (gy - py) / ph``, ``dw = ww * log(gw / pw)``,
    ``dh = wh * log(gh / ph)`` with centres ``g*, p*`` and sizes ``w = x2 - x1``.

    Parameters
    ----------
    weights : (wx, wy, ww, wh)
        ``(1, 1, 1, 1)`` for the RPN, ``(10, 10, 5, 5)`` for the box head.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> None:
        self.weights = tuple(float(w) for w in weights)

    def encode(self, ref: Tensor, boxes: Tensor) -> Tensor:
        """Deltas ``(N, 4)`` that turn ``ref (N, 4)`` into ``boxes (N, 4)``."""
        wx, wy, ww, wh = self.weights
        pw = ref[:, 2] - ref[:, 0]
        ph = ref[:, 3] - ref[:, 1]
        px = ref[:, 0] + 0.5 * pw
        py = ref[:, 1] + 0.5 * ph
        gw = boxes[:, 2] - boxes[:, 0]
        gh = boxes[:, 3] - boxes[:, 1]
        gx = boxes[:, 0] + 0.5 * gw
        gy = boxes[:, 1] + 0.5 * gh
        return torch.stack(
            [
                wx * (gx - px) / pw,
                wy * (gy - py) / ph,
                ww * torch.log(gw / pw),
                wh * torch.log(gh / ph),
            ],
            dim=1,
        )

    def decode(self, ref: Tensor, deltas: Tensor) -> Tensor:
        """Boxes ``(N, 4)`` from ``ref (N, 4)`` and ``deltas (N, 4)`` (size deltas clamped)."""
        wx, wy, ww, wh = self.weights
        ref = ref.to(deltas.dtype)
        pw = ref[:, 2] - ref[:, 0]
        ph = ref[:, 3] - ref[:, 1]
        px = ref[:, 0] + 0.5 * pw
        py = ref[:, 1] + 0.5 * ph
        dx = deltas[:, 0] / wx
        dy = deltas[:, 1] / wy
        dw = (deltas[:, 2] / ww).clamp(max=DELTA_CLAMP)
        dh = (deltas[:, 3] / wh).clamp(max=DELTA_CLAMP)
        cx = px + dx * pw
        cy = py + dy * ph
        w = pw * torch.exp(dw)
        h = ph * torch.exp(dh)
        return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


#: Matcher labels.
NEGATIVE, IGNORE, POSITIVE = 0, -1, 1


def match(
    iou: Tensor, fg_thresh: float, bg_thresh: float, *, allow_low_quality: bool
) -> tuple[Tensor, Tensor]:
    """Assign every candidate box to its best ground truth.

    Parameters
    ----------
    iou : (G, N) float
        IoU of each ground-truth box with each candidate (anchor or proposal).
    fg_thresh, bg_thresh : float
        Candidates with best IoU ``>= fg_thresh`` are positive, ``< bg_thresh`` negative,
        in between ignored.
    allow_low_quality : bool
        Also make positive, for each GT, the candidates that reach its highest IoU (if
        that IoU is > 0), so that every GT has at least one positive (RPN only).

    Returns
    -------
    matched : (N,) int64
        Index of the best GT per candidate (0 when there is no GT).
    labels : (N,) int8
        ``POSITIVE`` (1), ``NEGATIVE`` (0) or ``IGNORE`` (-1).
    """
    n = iou.shape[1]
    if iou.shape[0] == 0:
        return (
            torch.zeros(n, dtype=torch.int64, device=iou.device),
            torch.full((n,), NEGATIVE, dtype=torch.int8, device=iou.device),
        )
    best, matched = iou.max(dim=0)
    labels = torch.full((n,), IGNORE, dtype=torch.int8, device=iou.device)
    labels[best < bg_thresh] = NEGATIVE
    labels[best >= fg_thresh] = POSITIVE
    if allow_low_quality:
        per_gt = iou.max(dim=1, keepdim=True).values
        hits = (iou == per_gt) & (per_gt > 0)
        labels[hits.any(dim=0)] = POSITIVE
    return matched, labels


def sample(
    labels: Tensor, batch_size: int, pos_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Random positives (up to ``batch_size * pos_fraction``) and negatives to fill up.

    Parameters
    ----------
    labels : (N,) int8
        From :func:`match`.
    batch_size : int
    pos_fraction : float
    generator : torch.Generator, optional

    Returns
    -------
    pos, neg : (P,) and (Q,) int64
        Indices into ``labels``; ``P + Q <= batch_size``.
    """
    pos = torch.nonzero(labels == POSITIVE).flatten()
    neg = torch.nonzero(labels == NEGATIVE).flatten()
    n_pos = min(pos.numel(), int(batch_size * pos_fraction))
    n_neg = min(neg.numel(), batch_size - n_pos)
    dev = labels.device
    pos = pos[torch.randperm(pos.numel(), generator=generator).to(dev)[:n_pos]]
    neg = neg[torch.randperm(neg.numel(), generator=generator).to(dev)[:n_neg]]
    return pos, neg


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boxes ``(N, 4)`` clipped to ``[0, width] x [0, height]``."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def nonempty(boxes: Tensor, min_size: float) -> Tensor:
    """Mask ``(N,) bool`` of boxes whose width and height are both > ``min_size``."""
    return ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)


def ioa(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over the area of ``a``: ``(len(a), len(b))`` (crowd overlap)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return inter / area_a[:, None].clamp(min=1e-12)
