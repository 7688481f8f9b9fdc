"""DensePose-RCNN (Güler et al. 2018, §3.2): ResNet-FPN, RPN, box head, DensePose head.

In: a padded image batch ``(B, 3, H, W)`` and one dict per image with ``height`` and
``width`` (unpadded size) and, in training, ``boxes (G, 4)``, ``crowd_boxes (C, 4)`` and
``dp`` (list of G: None or dict with ``x``, ``y``, ``I``, ``U``, ``V``, ``dp_masks``), as
produced by :func:`baselines.common.data.collate`.
Out: in training, a dict of scalar losses (``rpn_cls``, ``rpn_reg``, ``box_cls``,
``box_reg``, ``dp_part``, ``dp_uv``, ``dp_coarse``); in eval mode, one dict per image
with ``boxes (D, 4)`` xyxy, ``scores (D,)`` and ``dp`` (the DensePose head outputs,
``(D, ch, 4S, 4S)`` each, see :class:`~baselines.rcnn.heads.DensePoseHead`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.common.backbones import ResNetFPN
from baselines.common.ops import batched_nms, box_iou, multiscale_roi_align

from .boxes import IGNORE, NEGATIVE, POSITIVE, BoxCoder, clip_boxes, ioa, match, sample
from .config import RCNNConfig
from .heads import BoxHead, DensePoseHead, densepose_losses
from .rpn import RPN


class DensePoseRCNN(nn.Module):
    """The whole detector.

    Parameters
    ----------
    cfg : RCNNConfig
    """

    def __init__(self, cfg: RCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNetFPN(cfg.depth, cfg.width, cfg.fpn_channels, norm=cfg.norm)
        c = self.backbone.out_channels
        self.strides = tuple(self.backbone.strides)
        self.use_p6 = len(cfg.anchor_sizes) == len(self.strides) + 1
        rpn_strides = (*self.strides, 2 * self.strides[-1]) if self.use_p6 else self.strides
        self.rpn = RPN(cfg, c, rpn_strides)
        self.box_head = BoxHead(c, cfg.box_pooler, cfg.fc_dim)
        self.dp_head = DensePoseHead(c, cfg.head_width, cfg.head_convs, cfg.coarse_classes,
                                     cfg.norm)  # fmt: skip
        self.box_coder = BoxCoder(cfg.box_reg_weights)

    # ------------------------------------------------------------------ forward

    def forward(self, images: Tensor, metas: Sequence[dict]):
        """Losses (training mode) or detections (eval mode); see the module docstring."""
        feats = self.backbone(images)
        rpn_feats = [*feats, F.max_pool2d(feats[-1], 1, stride=2)] if self.use_p6 else feats
        sizes = [(int(m["height"]), int(m["width"])) for m in metas]
        if not self.training:
            proposals, _ = self.rpn(rpn_feats, sizes)
            return self.detect(feats, proposals, sizes)
        dev = images.device
        gt = [torch.as_tensor(m["boxes"], dtype=torch.float32, device=dev).reshape(-1, 4)
              for m in metas]  # fmt: skip
        crowd = [
            torch.as_tensor(m.get("crowd_boxes", ()), dtype=torch.float32, device=dev).reshape(
                -1, 4
            )
            for m in metas
        ]
        proposals, losses = self.rpn(rpn_feats, sizes, gt, crowd)
        dps = [m["dp"] for m in metas]
        if self.cfg.dense_targets:
            dps = [_with_dense(m) for m in metas]
        losses.update(self.roi_losses(feats, proposals, gt, crowd, dps))
        return losses

    # ------------------------------------------------------------------ training

    def roi_losses(
        self,
        feats: Sequence[Tensor],
        proposals: Sequence[Tensor],
        gt: Sequence[Tensor],
        crowd: Sequence[Tensor],
        dps: Sequence[Sequence[dict | None]],
    ) -> dict[str, Tensor]:
        """Box-head and DensePose-head losses on sampled proposals (GT boxes added)."""
        cfg = self.cfg
        rois, labels, targets, dp_rois, dp_gt, dp_ann = [], [], [], [], [], []
        for i, (props, g, c) in enumerate(zip(proposals, gt, crowd, strict=True)):
            props = torch.cat([props, g])
            pos, neg, matched, iou = assign_proposals(props, g, c, cfg)
            sel = torch.cat([pos, neg])
            rois.append(_with_index(props[sel], i))
            labels.append(torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]))
            t = torch.zeros((len(sel), 4), device=props.device)
            if len(pos):
                t[: len(pos)] = self.box_coder.encode(props[pos], g[matched[pos]])
            targets.append(t)
            # DensePose ROIs: the GT boxes with DensePose points, then random proposals
            # with a high IoU to such a GT (not only the box head's sampled positives).
            has_dp = torch.tensor([d is not None for d in dps[i]], dtype=torch.bool,
                                  device=props.device)  # fmt: skip
            if has_dp.any():
                n_prop = len(props) - len(g)
                gt_idx = n_prop + torch.nonzero(has_dp).flatten()
                cand = torch.nonzero((iou[:n_prop] >= cfg.dp_iou) & has_dp[matched[:n_prop]])
                cand = cand.flatten()[torch.randperm(len(cand)).to(cand.device)]
                ok = torch.cat([gt_idx, cand])[: cfg.dp_max_rois_per_image]
                dp_rois.append(_with_index(props[ok], i))
                dp_gt.append(g[matched[ok]])
                dp_ann.extend(dps[i][int(j)] for j in matched[ok])
        rois_t = torch.cat(rois)
        labels_t = torch.cat(labels)
        box_x = multiscale_roi_align(feats, rois_t, cfg.box_pooler, self.strides)
        logits, deltas = self.box_head(box_x)
        n = max(1, len(labels_t))
        losses = {"box_cls": F.cross_entropy(logits.float(), labels_t, reduction="sum") / n}
        pos_mask = labels_t == 1
        losses["box_reg"] = (
            F.smooth_l1_loss(deltas[pos_mask].float(), torch.cat(targets)[pos_mask],
                             beta=1.0, reduction="sum") / n
        )  # fmt: skip
        if dp_rois:
            dp_rois_t = torch.cat(dp_rois)
            x = multiscale_roi_align(feats, dp_rois_t, cfg.dp_pooler, self.strides)
            out = self.dp_head(x)
            losses.update(densepose_losses(out, dp_rois_t[:, 1:], torch.cat(dp_gt), dp_ann, cfg))
        else:
            zero = sum(p.sum() for p in self.dp_head.parameters()) * 0.0
            losses.update({"dp_part": zero, "dp_uv": zero, "dp_coarse": zero})
        return losses

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def detect(
        self, feats: Sequence[Tensor], proposals: Sequence[Tensor], sizes: Sequence[tuple]
    ) -> list[dict]:
        """Box head, NMS and the DensePose head on the kept boxes, per image."""
        cfg = self.cfg
        rois = torch.cat([_with_index(p, i) for i, p in enumerate(proposals)])
        logits, deltas = self.box_head(multiscale_roi_align(feats, rois, cfg.box_pooler,
                                                            self.strides))  # fmt: skip
        scores = logits.float().softmax(1)[:, 1]
        boxes = self.box_coder.decode(rois[:, 1:], deltas.float())
        results, kept = [], []
        for i, (h, w) in enumerate(sizes):
            sel = rois[:, 0] == i
            b = clip_boxes(boxes[sel], h, w)
            s = scores[sel]
            ok = (s > cfg.test_score_thresh) & ((b[:, 2:] - b[:, :2]) > 1e-3).all(1)
            b, s = b[ok], s[ok]
            keep = batched_nms(b, s, torch.zeros_like(s, dtype=torch.int64), cfg.test_nms)
            keep = keep[: cfg.max_dets]
            bi = integer_boxes(b[keep], h, w)
            results.append({"boxes": bi, "scores": s[keep]})
            kept.append(_with_index(bi, i))
        dp_rois = torch.cat(kept)
        out = self.dp_head(multiscale_roi_align(feats, dp_rois, cfg.dp_pooler, self.strides))
        start = 0
        for r in results:
            n = len(r["boxes"])
            r["dp"] = {k: v[start : start + n] for k, v in out.items()}
            start += n
        return results


def integer_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Round xyxy boxes to whole pixels inside the image, at least 1 px wide and high.

    The evaluator pastes a detection's box-sized IUV map at ``(int(x), int(y))``; with
    sub-pixel boxes the map would sit up to a pixel off the region the head was run on
    (small people lost 0.15-0.2 mask IoU). The DensePose head therefore runs on these
    rounded boxes, which are also the exported ones, so map and box agree exactly.
    """
    b = boxes.round()
    x1 = b[:, 0].clamp(0, max(width - 1, 0))
    y1 = b[:, 1].clamp(0, max(height - 1, 0))
    x2 = torch.maximum(b[:, 2].clamp(max=width), x1 + 1)
    y2 = torch.maximum(b[:, 3].clamp(max=height), y1 + 1)
    return torch.stack([x1, y1, x2, y2], dim=1)


def _with_dense(meta: dict) -> list[dict]:
    """Each person's DensePose target with the image's IUV map and the person's mask."""
    if meta.get("iuv") is None:
        raise ValueError(
            f"image {meta.get('image_id')}: dense_targets needs the image-level IUV map "
            "(DensePose-Synth iuv/ directory); none was loaded"
        )
    return [
        {**(d or {}), "iuv": meta["iuv"], "mask": meta["masks"][k]}
        for k, d in enumerate(meta["dp"])
    ]


def _with_index(boxes: Tensor, i: int) -> Tensor:
    """``(K, 4)`` boxes -> ``(K, 5)`` rois with batch index ``i`` first."""
    return torch.cat([boxes.new_full((len(boxes), 1), float(i)), boxes], dim=1)


def assign_proposals(
    proposals: Tensor,
    gt: Tensor,
    crowd: Tensor | None,
    cfg: RCNNConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Box-head targets for one image: sampled positives and negatives.

    Parameters
    ----------
    proposals : (P, 4)
        Proposals (usually with the GT boxes appended).
    gt : (G, 4)
    crowd : (C, 4) or None
        Negatives with more than half their area in a crowd box are not sampled.
    cfg : RCNNConfig
        ``roi_iou``, ``roi_batch_per_image``, ``roi_pos_fraction``.
    generator : torch.Generator, optional

    Returns
    -------
    pos, neg : int64 indices into ``proposals``
    matched : (P,) int64
        Best GT per proposal.
    iou : (P,) float
        Its IoU (0 without GT).
    """
    if len(gt):
        iou_m = box_iou(gt, proposals)
        matched, labels = match(iou_m, cfg.roi_iou, cfg.roi_iou, allow_low_quality=False)
        best = iou_m.max(dim=0).values
    else:
        matched = torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
        labels = torch.full((len(proposals),), NEGATIVE, dtype=torch.int8,
                            device=proposals.device)  # fmt: skip
        best = torch.zeros(len(proposals), device=proposals.device)
    if crowd is not None and len(crowd):
        in_crowd = (ioa(proposals, crowd) > 0.5).any(dim=1)
        labels[in_crowd & (labels == NEGATIVE)] = IGNORE
    pos, neg = sample(labels, cfg.roi_batch_per_image, cfg.roi_pos_fraction, generator)
    assert bool((labels[pos] == POSITIVE).all())
    return pos, neg, matched, best
