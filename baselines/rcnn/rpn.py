"""Region proposal network: anchors per FPN level, objectness and box deltas, proposals.

In: FPN features ``[P2, P3, P4, P5]`` (plus P6, max-pooled from P5, when the config has
five anchor sizes), the unpadded image sizes, and in training the ground-truth boxes.
Out: per image, proposals ``(R, 4)`` (xyxy pixels, score-sorted, after NMS) and in
training the losses ``rpn_cls`` (BCE on sampled anchors) and ``rpn_reg`` (smooth-L1 on
the positives' deltas), both normalised by the number of sampled anchors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.common.ops import batched_nms, box_iou

from .boxes import (
    IGNORE,
    NEGATIVE,
    POSITIVE,
    BoxCoder,
    clip_boxes,
    grid_anchors,
    ioa,
    match,
    nonempty,
    sample,
)


class RPNHead(nn.Module):
    """Shared 3x3 conv + ReLU, then 1x1 convs for ``A`` logits and ``4 A`` deltas per cell."""

    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.logits = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * num_anchors, 1)
        for m in (self.conv, self.logits, self.deltas):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: logits ``(B, H*W*A)`` and deltas ``(B, H*W*A, 4)``."""
        logits, deltas = [], []
        for f in feats:
            t = F.relu(self.conv(f))
            lg = self.logits(t)
            b, a, h, w = lg.shape
            logits.append(lg.permute(0, 2, 3, 1).reshape(b, -1))
            d = self.deltas(t).view(b, a, 4, h, w).permute(0, 3, 4, 1, 2)
            deltas.append(d.reshape(b, -1, 4))
        return logits, deltas


class RPN(nn.Module):
    """Anchors, head, proposal selection and the RPN losses.

    Parameters
    ----------
    cfg : RCNNConfig
    channels : int
        FPN channels.
    strides : sequence of int
        Strides of the levels the RPN sees (P2..P5, plus 64 for P6).
    """

    def __init__(self, cfg, channels: int, strides: Sequence[int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.strides = tuple(strides)
        if len(cfg.anchor_sizes) != len(self.strides):
            raise ValueError(
                f"rpn: {len(cfg.anchor_sizes)} anchor sizes for {len(self.strides)} levels"
            )
        self.head = RPNHead(channels, len(cfg.anchor_ratios))
        self.coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self._anchor_cache: dict[tuple, Tensor] = {}

    def anchors(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Anchors per level, ``(H*W*A, 4)`` each, cached per feature size."""
        out = []
        for f, stride, size in zip(feats, self.strides, self.cfg.anchor_sizes, strict=True):
            key = (f.shape[-2], f.shape[-1], stride, size, str(f.device))
            if key not in self._anchor_cache:
                a = grid_anchors(tuple(f.shape[-2:]), stride, size, self.cfg.anchor_ratios)
                self._anchor_cache[key] = a.to(f.device)
            out.append(self._anchor_cache[key])
        return out

    def forward(
        self,
        feats: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
        gt_boxes: Sequence[Tensor] | None = None,
        crowd_boxes: Sequence[Tensor] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals per image and, when ``gt_boxes`` is given, the losses.

        Parameters
        ----------
        feats : list of (B, C, H_l, W_l)
        image_sizes : list of (height, width)
            Unpadded size of each image (proposals are clipped to it).
        gt_boxes, crowd_boxes : list of (G, 4), optional
            Ground truth per image; anchors mostly inside a crowd box are not negatives.

        Returns
        -------
        proposals : list of (R, 4) float32
        losses : dict
            ``rpn_cls`` and ``rpn_reg`` (empty in inference).
        """
        anchors = self.anchors(feats)
        logits, deltas = self.head(feats)
        training = gt_boxes is not None
        with torch.no_grad():
            proposals = self._proposals(anchors, logits, deltas, image_sizes, training)
        losses: dict[str, Tensor] = {}
        if training:
            losses = self.losses(
                torch.cat(anchors), torch.cat(logits, 1), torch.cat(deltas, 1),
                gt_boxes, crowd_boxes,
            )  # fmt: skip
        return proposals, losses

    def _proposals(self, anchors, logits, deltas, image_sizes, training) -> list[Tensor]:
        cfg = self.cfg
        pre = cfg.rpn_pre_nms_train if training else cfg.rpn_pre_nms_test
        post = cfg.rpn_post_nms_train if training else cfg.rpn_post_nms_test
        out = []
        for i, (h, w) in enumerate(image_sizes):
            boxes, scores, levels = [], [], []
            for lvl, (a, lg, d) in enumerate(zip(anchors, logits, deltas, strict=True)):
                s = lg[i].detach().float()
                k = min(pre, s.numel())
                s, idx = s.topk(k)
                b = clip_boxes(self.coder.decode(a[idx], d[i, idx].detach().float()), h, w)
                keep = nonempty(b, cfg.rpn_min_size) & torch.isfinite(b).all(dim=1)
                boxes.append(b[keep])
                scores.append(s[keep])
                levels.append(torch.full((int(keep.sum()),), lvl, device=b.device))
            boxes_i, scores_i, levels_i = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
            keep = batched_nms(boxes_i, scores_i, levels_i, cfg.rpn_nms)[:post]
            out.append(boxes_i[keep])
        return out

    def losses(
        self,
        anchors: Tensor,
        logits: Tensor,
        deltas: Tensor,
        gt_boxes: Sequence[Tensor],
        crowd_boxes: Sequence[Tensor] | None,
    ) -> dict[str, Tensor]:
        """Objectness BCE and box smooth-L1 (beta 1/9) on sampled anchors.

        Parameters
        ----------
        anchors : (N, 4)
            All levels concatenated.
        logits : (B, N)
        deltas : (B, N, 4)
        gt_boxes, crowd_boxes : list of (G, 4)

        Returns
        -------
        dict with ``rpn_cls`` and ``rpn_reg``.
        """
        labels_all, targets_all = [], []
        for i, gt in enumerate(gt_boxes):
            labels, targets = assign_anchors(
                anchors, gt, None if crowd_boxes is None else crowd_boxes[i], self.cfg,
                self.coder,
            )  # fmt: skip
            labels_all.append(labels)
            targets_all.append(targets)
        labels = torch.stack(labels_all)
        targets = torch.stack(targets_all)
        n_sampled = max(1, int((labels >= 0).sum()))
        valid = labels >= 0
        cls = F.binary_cross_entropy_with_logits(
            logits[valid].float(), labels[valid].float(), reduction="sum"
        )
        pos = labels == POSITIVE
        reg = F.smooth_l1_loss(deltas[pos].float(), targets[pos], beta=1 / 9, reduction="sum")
        return {"rpn_cls": cls / n_sampled, "rpn_reg": reg / n_sampled}


def assign_anchors(
    anchors: Tensor,
    gt: Tensor,
    crowd: Tensor | None,
    cfg,
    coder: BoxCoder,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """RPN targets for one image.

    Parameters
    ----------
    anchors : (N, 4)
    gt : (G, 4)
    crowd : (C, 4) or None
        Anchors with more than half their area inside a crowd box are ignored unless
        positive.
    cfg : RCNNConfig
        ``rpn_fg_iou``, ``rpn_bg_iou``, ``rpn_batch_per_image``, ``rpn_pos_fraction``.
    coder : BoxCoder
    generator : torch.Generator, optional

    Returns
    -------
    labels : (N,) int64
        1 sampled positive, 0 sampled negative, -1 not sampled.
    targets : (N, 4) float32
        Regression targets (meaningful for positives only).
    """
    gt = gt.to(anchors)
    matched, labels = match(
        box_iou(gt, anchors), cfg.rpn_fg_iou, cfg.rpn_bg_iou, allow_low_quality=True
    )
    if crowd is not None and len(crowd):
        in_crowd = (ioa(anchors, crowd.to(anchors)) > 0.5).any(dim=1)
        labels[in_crowd & (labels == NEGATIVE)] = IGNORE
    pos, neg = sample(labels, cfg.rpn_batch_per_image, cfg.rpn_pos_fraction, generator)
    out = torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    out[pos] = 1
    out[neg] = 0
    targets = torch.zeros_like(anchors)
    if len(gt) and len(pos):
        targets[pos] = coder.encode(anchors[pos], gt[matched[pos]])
    return out, targets
