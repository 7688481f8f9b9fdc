"""A model whose output *is* the ground truth must score exactly what the ground truth scores.

This isolates the output stage of both baselines (network outputs -> IUV maps -> boxes ->
files -> ``dpeval score``) from learning: any shift, flip, resize or quantisation slip in
``predict`` shows up as a score difference.

* FCN: a fake network returns, for each image, part logits that are one-hot on the GT
  IUV map and U, V equal to the map's; ``baselines.fcn.predict.predict`` runs on it. The
  reference is the GT map itself, written as dense predictions and cut into instances by
  the same connected-component rule (the FCN cannot separate touching people; that rule
  is tested on its own in ``test_fcn.py``).
* RCNN: a fake detector returns the GT boxes with head outputs that are the GT IUV inside
  each box (restricted to the person's mask); ``baselines.rcnn.predict.predict`` runs on
  it. The reference is the GT box with the GT IUV crop, written directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dpeval
from baselines.common.data import SynthDataset
from baselines.common.predict import instances_to_predictions, write_dense, write_instances
from baselines.fcn.config import get_config as fcn_config
from baselines.fcn.predict import dense_to_instances
from baselines.rcnn.heads import N_CHARTS, N_PARTS

LOGIT = 30.0


def _one_hot_logits(labels: torch.Tensor) -> torch.Tensor:
    """(H, W) part ids -> (25, H, W) logits, LOGIT on the label, 0 elsewhere."""
    return torch.nn.functional.one_hot(labels.long(), N_PARTS).permute(2, 0, 1).float() * LOGIT


def _uv_channels(iuv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The map's U and V (in [0, 1]) copied into all 24 part channels."""
    u = (iuv[1].float() / 255.0).expand(N_CHARTS, *iuv.shape[1:])
    v = (iuv[2].float() / 255.0).expand(N_CHARTS, *iuv.shape[1:])
    return u, v


def _assert_same_scores(a, b):
    for key, block in b.metrics.items():
        for stat, value in block.items():
            if isinstance(value, float):
                assert a.metrics[key][stat] == pytest.approx(value, abs=1e-12), (key, stat)


class _GTFCN(nn.Module):
    """Outputs the next image's GT IUV map (images arrive in dataset order)."""

    def __init__(self, maps: list[torch.Tensor]):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.maps = list(maps)

    def forward(self, x):
        iuv = self.maps.pop(0)
        h, w = iuv.shape[1:]
        logits = torch.zeros(1, N_PARTS, *x.shape[-2:])
        logits[0, 0] = LOGIT  # padding: background
        logits[0, :, :h, :w] = _one_hot_logits(iuv[0])
        u = torch.zeros(1, N_CHARTS, *x.shape[-2:])
        v = torch.zeros_like(u)
        u[0, :, :h, :w], v[0, :, :h, :w] = _uv_channels(iuv)
        return {"part_logits": logits, "u": u, "v": v}


def test_fcn_gt_outputs_score_as_gt(synth_tiny, tmp_path, monkeypatch):
    import baselines.fcn.predict as fp

    ds = SynthDataset(synth_tiny, "val")
    maps = [ds.image_and_iuv(i)[1] for i in range(len(ds))]
    cfg = fcn_config("tiny")
    monkeypatch.setattr(fp, "load_model", lambda ckpt, dev: (_GTFCN(maps).eval(), cfg))
    out = fp.predict("unused", synth_tiny, tmp_path / "p.json", split="val",
                     dense_out=tmp_path / "dense", device="cpu")  # fmt: skip
    gt = synth_tiny / "annotations" / "densepose_synth_val.json"

    ref_dense = write_dense({i: m.numpy() for i, m in zip(ds.image_ids, maps, strict=True)},
                            ds.gt.images, tmp_path / "ref_dense")  # fmt: skip
    instances = []
    for image_id, m in zip(ds.image_ids, maps, strict=True):
        iuv = m.numpy()
        fg = (iuv[0] > 0).astype(np.float32)
        for box, score, crop in dense_to_instances(iuv, fg, cfg.min_area, cfg.max_dets):
            instances.append((image_id, box, score, crop))
    ref = write_instances(instances_to_predictions(instances), tmp_path / "ref.json")
    assert out.n_instances == len(instances) > 0

    got_d = dpeval.score(out.dense_dir, gt, metrics="points")
    ref_d = dpeval.score(ref_dense, gt, metrics="points")
    _assert_same_scores(got_d, ref_d)
    assert ref_d.metrics["points"]["AUC10"] > 0.95  # the GT map is (nearly) perfect
    got, want = dpeval.score(out.instances_path, gt), dpeval.score(ref, gt)
    _assert_same_scores(got, want)
    assert want.metrics["gps_perpart"]["AP"] > 0.3


class _Ragged:
    """Per-detection maps of different sizes behind the ``out[key][j:j+1]`` interface."""

    def __init__(self, maps: list[torch.Tensor]):
        self.maps = maps
        self.shape = (len(maps), maps[0].shape[0]) if maps else (0, 0)

    def __getitem__(self, sl: slice) -> torch.Tensor:
        return self.maps[sl.start][None]


class _GTRCNN(nn.Module):
    """Detects the GT people (their integer GT boxes) with head outputs = the GT IUV there."""

    def __init__(self, ds: SynthDataset):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.ds = ds
        self.cfg = _Cfg()

    def forward(self, images, metas):
        results = []
        for meta in metas:
            item = self.ds[self.ds.image_ids.index(meta["image_id"])]
            iuv = item["iuv"]
            keys = {"fine": [], "coarse": [], "u": [], "v": []}
            for box, mask in zip(item["boxes"], item["masks"], strict=True):
                x1, y1, x2, y2 = (int(t) for t in box.tolist())
                crop = iuv[:, y1:y2, x1:x2] * (mask[y1:y2, x1:x2] > 0)
                keys["fine"].append(_one_hot_logits(crop[0]))
                fg = (crop[0] > 0).long()
                keys["coarse"].append(torch.stack([1 - fg, fg]).float() * LOGIT)
                u, v = _uv_channels(crop)
                keys["u"].append(u)
                keys["v"].append(v)
            results.append({
                "boxes": item["boxes"], "scores": torch.ones(len(item["boxes"])),
                "dp": {k: _Ragged(v) for k, v in keys.items()},
            })  # fmt: skip
        return results


class _Cfg:
    def replace(self, **kw):
        return self


def test_rcnn_gt_outputs_score_as_gt(synth_tiny, tmp_path, monkeypatch):
    import baselines.rcnn.predict as rp

    ds = SynthDataset(synth_tiny, "val")
    monkeypatch.setattr(rp, "load_model", lambda ckpt, device: _GTRCNN(ds).eval())
    out = rp.predict("unused", synth_tiny, tmp_path / "p.json", split="val", device="cpu")
    gt = synth_tiny / "annotations" / "densepose_synth_val.json"

    instances = []
    for i, image_id in enumerate(ds.image_ids):
        item = ds[i]
        for box, mask in zip(item["boxes"], item["masks"], strict=True):
            x1, y1, x2, y2 = (int(t) for t in box.tolist())
            crop = (item["iuv"][:, y1:y2, x1:x2] * (mask[y1:y2, x1:x2] > 0)).numpy()
            instances.append((image_id, [x1, y1, x2, y2], 1.0, crop))
    ref = write_instances(instances_to_predictions(instances), tmp_path / "ref.json")
    assert out.n_detections == len(instances) > 0
    got, want = dpeval.score(out.path, gt), dpeval.score(ref, gt)
    _assert_same_scores(got, want)
    assert want.metrics["gps_perpart"]["AP"] > 0.9 and want.metrics["iou"]["AP"] > 0.9
