"""R-CNN heads: the box head and the DensePose head with its point-sampled losses.

In: RoIAlign features of proposals or detections (``(K, C, S, S)``), the ROI boxes and
their matched ground truth (boxes, DensePose points in image pixels, ``dp_masks``).
Out: box-head logits and deltas; DensePose outputs at ``4 S x 4 S`` (``fine`` 25 part
logits, ``coarse`` 15 or 2 coarse-mask logits, ``u`` and ``v`` 24 regressors each); the
losses ``dp_part`` (25-way CE at the annotated points), ``dp_uv`` (smooth-L1 on the
point's own part's U and V channel) and ``dp_coarse`` (CE on the ``dp_masks`` labels
resampled into each ROI).

Points are sampled bilinearly at their position inside the ROI, as in the DensePose
paper: the output grid covers the ROI box with ``M x M`` cells whose centres are at
``x1 + (j + 0.5) (x2 - x1) / M``, and a point is interpolated between the four nearest
cell centres (clamped at the border), the rule of ``grid_sample(align_corners=False,
padding_mode="border")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.common.backbones import make_norm

#: Part channels of the fine head: background + 24 charts.
N_PARTS = 25
#: U and V regressors, one per chart (channel ``I - 1`` for part ``I``).
N_CHARTS = 24


class BoxHead(nn.Module):
    """RoIAlign features -> 2 FC (+ReLU) -> person logit pair and class-agnostic deltas.

    Parameters
    ----------
    in_channels, pooler, fc_dim : int
    """

    def __init__(self, in_channels: int, pooler: int, fc_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels * pooler * pooler, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)
        self.cls = nn.Linear(fc_dim, 2)
        self.reg = nn.Linear(fc_dim, 4)
        for m in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.zeros_(m.bias)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.reg.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(K, C, S, S)`` -> logits ``(K, 2)`` (background, person), deltas ``(K, 4)``."""
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.cls(x), self.reg(x)


class DensePoseHead(nn.Module):
    """``head_convs`` x (conv3x3 + norm + ReLU), deconv x2, bilinear x2.

    Parameters
    ----------
    in_channels : int
    width : int
        Channels of the convs (512 full, 64 tiny).
    n_convs : int
        8 in the paper.
    coarse_classes : int
        15 or 2.
    norm : str
        ``"gn"``, ``"bn"`` or ``"none"`` (as :func:`baselines.common.backbones.make_norm`).

    Notes
    -----
    The output is ``4 S x 4 S`` for an ``S x S`` pooler (56 for 14, as Detectron's
    DensePose head).
    """

    def __init__(
        self, in_channels: int, width: int, n_convs: int, coarse_classes: int, norm: str = "gn"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(n_convs):
            conv = nn.Conv2d(c, width, 3, padding=1, bias=norm == "none")
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            layers += [conv]
            if norm != "none":
                layers.append(make_norm(norm, width))
            layers.append(nn.ReLU(inplace=True))
            c = width
        self.convs = nn.Sequential(*layers)
        self.coarse_classes = coarse_classes
        n_out = N_PARTS + coarse_classes + 2 * N_CHARTS
        self.predictor = nn.ConvTranspose2d(width, n_out, 4, stride=2, padding=1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``(K, C, S, S)`` -> dict of ``(K, ch, 4S, 4S)``: fine, coarse, u, v."""
        y = self.predictor(self.convs(x))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        k = self.coarse_classes
        fine, coarse, u, v = torch.split(y, [N_PARTS, k, N_CHARTS, N_CHARTS], dim=1)
        return {"fine": fine, "coarse": coarse, "u": u, "v": v}


def sample_at_points(maps: Tensor, roi_index: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """Bilinear samples of ROI maps at normalised positions.

    Parameters
    ----------
    maps : (K, C, M, M)
        One map per ROI.
    roi_index : (N,) int64
        ROI of each point.
    gx, gy : (N,) float
        Position inside the ROI box in ``[0, 1]`` (0 = left/top edge, 1 = right/bottom).

    Returns
    -------
    (N, C)
        ``grid_sample(align_corners=False, padding_mode="border")`` values, differentiable
        with respect to ``maps``.
    """
    _, _, h, w = maps.shape
    px = (gx * w - 0.5).clamp(0, w - 1)
    py = (gy * h - 0.5).clamp(0, h - 1)
    x0 = px.floor().long().clamp(max=w - 1)
    y0 = py.floor().long().clamp(max=h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    ax = (px - x0.to(px.dtype))[:, None]
    ay = (py - y0.to(py.dtype))[:, None]
    m = maps
    return (
        m[roi_index, :, y0, x0] * (1 - ax) * (1 - ay)
        + m[roi_index, :, y0, x1] * ax * (1 - ay)
        + m[roi_index, :, y1, x0] * (1 - ax) * ay
        + m[roi_index, :, y1, x1] * ax * ay
    )


def _distinct(items: Sequence) -> tuple[list, Tensor]:
    """The distinct non-None items (by identity) and each item's index among them (-1: None).

    ROIs matched to the same GT share its annotation, so it is converted once.
    """
    seen: dict[int, int] = {}
    distinct, index = [], []
    for it in items:
        if it is None:
            index.append(-1)
            continue
        if id(it) not in seen:
            seen[id(it)] = len(distinct)
            distinct.append(it)
        index.append(seen[id(it)])
    return distinct, torch.tensor(index, dtype=torch.int64)


def point_targets(
    rois: Tensor, dps: Sequence[dict | None]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gather the annotated points that fall inside each ROI.

    Parameters
    ----------
    rois : (K, 4) xyxy
    dps : list of K (dict or None)
        Each dict has ``x``, ``y`` (image pixels), ``I`` (1..24), ``U``, ``V``.

    Returns
    -------
    roi_index : (N,) int64
        Sorted by ROI, then by point order.
    gx, gy : (N,) float32
        Normalised position inside the ROI, in [0, 1].
    parts : (N,) int64
        1..24.
    u, v : (N,) float32
    """
    dev = rois.device
    anns, index = _distinct(dps)
    n_points = [len(d["x"]) for d in anns]
    if not anns or max(n_points) == 0:
        e = torch.zeros(0, device=dev)
        ei = torch.zeros(0, dtype=torch.int64, device=dev)
        return ei, e, e, ei, e, e
    p = max(n_points)

    def padded(key: str, dtype: torch.dtype) -> Tensor:
        rows = [torch.as_tensor(d[key], dtype=dtype) for d in anns]
        return torch.stack([F.pad(r, (0, p - len(r))) for r in rows]).to(dev)

    index = index.to(dev)
    rows = index.clamp(min=0)
    valid = torch.arange(p, device=dev)[None] < torch.tensor(n_points, device=dev)[:, None]
    r = rois.float()
    gx = (padded("x", torch.float32)[rows] - r[:, 0:1]) / (r[:, 2:3] - r[:, 0:1]).clamp(min=1e-6)
    gy = (padded("y", torch.float32)[rows] - r[:, 1:2]) / (r[:, 3:4] - r[:, 1:2]).clamp(min=1e-6)
    inside = valid[rows] & (index >= 0)[:, None] & (gx >= 0) & (gx <= 1) & (gy >= 0) & (gy <= 1)
    roi_index, col = torch.nonzero(inside, as_tuple=True)
    src = rows[roi_index]
    return (
        roi_index,
        gx[roi_index, col],
        gy[roi_index, col],
        padded("I", torch.int64)[src, col],
        padded("U", torch.float32)[src, col],
        padded("V", torch.float32)[src, col],
    )


def coarse_targets(
    rois: Tensor, gt_boxes: Tensor, masks: Sequence[Tensor | None], size: int, binary: bool
) -> tuple[Tensor, Tensor]:
    """``dp_masks`` labels resampled (nearest) onto each ROI's ``size x size`` output grid.

    Parameters
    ----------
    rois : (K, 4) xyxy
    gt_boxes : (K, 4) xyxy
        The matched GT box; ``dp_masks`` covers it with 256 x 256 cells.
    masks : list of K ((256, 256) uint8 or None)
    size : int
    binary : bool
        Map labels 1..14 to 1 (2-class coarse head).

    Returns
    -------
    labels : (K', size, size) int64
        For the ROIs with a mask; 0 outside the GT box.
    keep : (K',) int64
        Their indices in ``rois``.
    """
    dev = rois.device
    distinct, index = _distinct(masks)
    kt = torch.nonzero(index >= 0).flatten().to(dev)
    if not distinct:
        return torch.zeros((0, size, size), dtype=torch.int64, device=dev), kt
    stack = torch.stack([torch.as_tensor(m) for m in distinct]).to(dev)
    src = index[index >= 0].to(dev)
    r = rois[kt].float()
    g = gt_boxes[kt].float()
    t = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size
    xs = r[:, 0:1] + t[None] * (r[:, 2:3] - r[:, 0:1])  # (K', size) cell centres
    ys = r[:, 1:2] + t[None] * (r[:, 3:4] - r[:, 1:2])
    mh, mw = stack.shape[-2:]
    cx = ((xs - g[:, 0:1]) / (g[:, 2:3] - g[:, 0:1]).clamp(min=1e-6) * mw).floor().long()
    cy = ((ys - g[:, 1:2]) / (g[:, 3:4] - g[:, 1:2]).clamp(min=1e-6) * mh).floor().long()
    vx = (cx >= 0) & (cx < mw)
    vy = (cy >= 0) & (cy < mh)
    rows, cols = cy.clamp(0, mh - 1)[:, :, None], cx.clamp(0, mw - 1)[:, None, :]
    lab = stack[src[:, None, None], rows, cols].long()
    lab = lab * (vy[:, :, None] & vx[:, None, :])
    if binary:
        lab = (lab > 0).long()
    return lab, kt


def densepose_losses(
    out: dict[str, Tensor],
    rois: Tensor,
    gt_boxes: Tensor,
    dps: Sequence[dict | None],
    cfg,
) -> dict[str, Tensor]:
    """Point-sampled part CE, own-part U/V smooth-L1 and the coarse-mask CE.

    Parameters
    ----------
    out : dict from :class:`DensePoseHead`
        ``(K, ch, M, M)`` maps.
    rois : (K, 4)
        The ROIs the head ran on (xyxy pixels).
    gt_boxes : (K, 4)
        Matched GT boxes.
    dps : list of K (dict or None)
        Matched GT DensePose annotations (``x``, ``y``, ``I``, ``U``, ``V``, ``dp_masks``).
    cfg : RCNNConfig
        ``w_part``, ``w_uv``, ``w_coarse``, ``uv_beta``, ``coarse_classes``.

    Returns
    -------
    dict with ``dp_part``, ``dp_uv`` and ``dp_coarse``; each a mean over points (or
    pixels) times its weight, and a zero that keeps the graph when there is no target.
    """
    zero = sum(t.sum() for t in out.values()) * 0.0
    losses = {"dp_part": zero, "dp_uv": zero, "dp_coarse": zero}
    if any(d is not None and "iuv" in d for d in dps):
        losses.update(dense_losses(out, rois, dps, cfg))
        parts = ()
    else:
        roi_index, gx, gy, parts, u, v = point_targets(rois, dps)
    if len(parts):
        fine = sample_at_points(out["fine"].float(), roi_index, gx, gy)
        losses["dp_part"] = cfg.w_part * F.cross_entropy(fine, parts)
        ch = (parts - 1)[:, None]
        pu = sample_at_points(out["u"].float(), roi_index, gx, gy).gather(1, ch)[:, 0]
        pv = sample_at_points(out["v"].float(), roi_index, gx, gy).gather(1, ch)[:, 0]
        uv = F.smooth_l1_loss(pu, u, beta=cfg.uv_beta) + F.smooth_l1_loss(pv, v, beta=cfg.uv_beta)
        losses["dp_uv"] = cfg.w_uv * uv
    masks = [None if dp is None else dp.get("dp_masks") for dp in dps]
    size = out["coarse"].shape[-1]
    labels, keep = coarse_targets(rois, gt_boxes, masks, size, cfg.coarse_classes == 2)
    if len(keep):
        losses["dp_coarse"] = cfg.w_coarse * F.cross_entropy(out["coarse"][keep].float(), labels)
    return losses


def dense_targets(rois: Tensor, dps: Sequence[dict | None], size: int) -> tuple[Tensor, ...]:
    """I, U, V of the synthetic IUV map at the centres of each ROI's output cells.

    Parameters
    ----------
    rois : (K, 4) xyxy
    dps : list of K dicts with ``iuv`` ((3, H, W) uint8 image-level map) and ``mask``
        ((H, W) instance mask of the matched person); None gives ignored cells.
    size : int
        Output grid (cell centres at ``x1 + (j + 0.5) (x2 - x1) / size``).

    Returns
    -------
    labels : (K, size, size) int64
        The map's part where the cell centre's pixel belongs to the person, 0 elsewhere
        in the image, -1 outside the image or without a target.
    u, v : (K, size, size) float32 in [0, 1]
    """
    dev = rois.device
    k = len(rois)
    labels = torch.full((k, size, size), -1, dtype=torch.int64, device=dev)
    u = torch.zeros((k, size, size), device=dev)
    v = torch.zeros((k, size, size), device=dev)
    t = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size
    r = rois.float()
    xs = (r[:, 0:1] + t[None] * (r[:, 2:3] - r[:, 0:1])).floor().long()  # (K, size)
    ys = (r[:, 1:2] + t[None] * (r[:, 3:4] - r[:, 1:2])).floor().long()
    for j, d in enumerate(dps):
        if d is None or "iuv" not in d:
            continue
        iuv, mask = d["iuv"].to(dev), d["mask"].to(dev)
        h, w = mask.shape
        vx, vy = (xs[j] >= 0) & (xs[j] < w), (ys[j] >= 0) & (ys[j] < h)
        yy, xx = ys[j].clamp(0, h - 1)[:, None], xs[j].clamp(0, w - 1)[None, :]
        own = mask[yy, xx] > 0
        lab = iuv[0][yy, xx].long() * own
        labels[j] = torch.where(vy[:, None] & vx[None, :], lab, -1)
        u[j] = iuv[1][yy, xx].float() / 255.0
        v[j] = iuv[2][yy, xx].float() / 255.0
    return labels, u, v


def dense_losses(out: dict[str, Tensor], rois: Tensor, dps: Sequence[dict | None], cfg):
    """``dp_part`` (25-way CE on every cell, background included) and ``dp_uv`` (own-part
    smooth-L1 on the person's cells) against :func:`dense_targets`."""
    size = out["fine"].shape[-1]
    labels, u, v = dense_targets(rois, dps, size)
    fine = out["fine"].float()
    zero = fine.sum() * 0.0
    losses = {"dp_part": zero, "dp_uv": zero}
    if (labels >= 0).any():
        losses["dp_part"] = cfg.w_part * F.cross_entropy(fine, labels, ignore_index=-1)
    fg = labels > 0
    if fg.any():
        ch = (labels.clamp(min=1) - 1)[:, None]
        pu = out["u"].float().gather(1, ch)[:, 0][fg]
        pv = out["v"].float().gather(1, ch)[:, 0][fg]
        uv = F.smooth_l1_loss(pu, u[fg], beta=cfg.uv_beta) + F.smooth_l1_loss(
            pv, v[fg], beta=cfg.uv_beta
        )
        losses["dp_uv"] = cfg.w_uv * uv
    return losses


def iuv_from_outputs(out: dict[str, Tensor], height: int, width: int, index: int = 0) -> Tensor:
    """The ``(3, height, width) uint8`` IUV map of one detection.

    The head outputs are resized bilinearly (``align_corners=False``) to the box size;
    I = argmax of the fine logits where the coarse argmax is foreground, else 0; U and V
    are the winning part's channels, ``trunc(clamp(x, 0, 1) * 255)``; 0 on background.

    Parameters
    ----------
    out : dict from :class:`DensePoseHead`
    height, width : int
        Box size in pixels (>= 1).
    index : int
        Which detection of the batch.
    """
    maps = torch.cat([out[k][index : index + 1].float() for k in ("fine", "coarse", "u", "v")], 1)
    maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)[0]
    k = out["coarse"].shape[1]
    fine, coarse, u, v = torch.split(maps, [N_PARTS, k, N_CHARTS, N_CHARTS], dim=0)
    parts = fine[1:].argmax(0) + 1
    parts = parts * (coarse.argmax(0) > 0)
    ch = (parts - 1).clamp(min=0)[None]
    fg = parts > 0
    uu = (u.gather(0, ch)[0].clamp(0, 1) * 255).floor() * fg
    vv = (v.gather(0, ch)[0].clamp(0, 1) * 255).floor() * fg
    return torch.stack([parts.float(), uu, vv]).to(torch.uint8)
