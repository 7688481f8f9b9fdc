"""The duck-typed detectron2 evaluator, with stand-ins shaped like detectron2's outputs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dpeval.cse.demo import perfect_predictions
from dpeval.cse.embed import normalize_embeddings
from dpeval.formats import load_ground_truth
from dpeval.integrations.detectron2 import DensePoseEvaluator, chart_to_iuv

pytestmark = pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")
DATA = Path(__file__).resolve().parents[1] / "data" / "cse"
KEYS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]


def _instances(boxes_xyxy, scores, classes, dp) -> SimpleNamespace:
    return SimpleNamespace(
        pred_boxes=SimpleNamespace(tensor=np.asarray(boxes_xyxy, np.float32)),
        scores=np.asarray(scores, np.float32),
        pred_classes=np.asarray(classes, np.int64),
        pred_densepose=dp,
    )


def test_cse_outputs_give_detectron2_keys_and_perfect_scores() -> None:
    gt = load_ground_truth(DATA / "synth_small.json")
    emb = normalize_embeddings(np.random.default_rng(0).normal(size=(13380, 16)))
    preds = perfect_predictions(gt, {"open": emb})
    ev = DensePoseEvaluator(gt, vertex_embeddings={"open": emb})
    ev.reset()
    by_img: dict[int, list] = {}
    for d in preds.detections:
        by_img.setdefault(d.image_id, []).append(d)
    for img, dets in by_img.items():
        # detectron2 batches share one head size: one output per detection here
        for d in dets:
            c, e = d.load()
            x, y, w, h = d.bbox
            inst = _instances(
                [[x, y, x + w, y + h]],
                [d.score],
                [0],
                SimpleNamespace(coarse_segm=c[None], embedding=e[None]),
            )
            ev.process([{"image_id": img}], [{"instances": inst}])
    res = ev.evaluate()
    assert list(res) == ["densepose_gps", "densepose_gpsm", "densepose_segm"]
    for key in res:
        assert list(res[key]) == KEYS
        assert res[key]["AP"] == pytest.approx(100.0)
    ev.reset()
    assert ev._records == []


def test_chart_to_iuv_quantises_like_detectron2() -> None:
    s = 4
    coarse = np.zeros((2, s, s), np.float32)
    coarse[1] = 1.0
    coarse[1, 0, 0] = -1.0  # background corner
    fine = np.zeros((25, s, s), np.float32)
    fine[3] = 1.0
    u = np.zeros((25, s, s), np.float32)
    v = np.zeros((25, s, s), np.float32)
    u[3] = 0.5  # 127.5 -> 127 (truncation)
    v[3] = 1.2  # clamped to 255
    iuv = chart_to_iuv(coarse, fine, u, v, [10.0, 20.0, 4.7, 4.2])
    assert iuv.shape == (3, 4, 4) and iuv.dtype == np.uint8
    assert iuv[0, 0, 0] == 0 and iuv[1, 0, 0] == 0
    assert (iuv[0].ravel()[1:] == 3).all()
    assert (iuv[1].ravel()[1:] == 127).all() and (iuv[2].ravel()[1:] == 255).all()


def test_chart_outputs_are_scored_with_the_iuv_path() -> None:
    gt = load_ground_truth(DATA / "synth_small.json")
    a = next(a for a in gt.annotations if a.has_dense)
    x, y, w, h = a.bbox
    rng = np.random.default_rng(0)
    dp = SimpleNamespace(
        coarse_segm=rng.normal(size=(1, 2, 28, 28)).astype(np.float32)
        + np.array([0, 2], np.float32)[None, :, None, None],
        fine_segm=rng.normal(size=(1, 25, 28, 28)).astype(np.float32),
        u=rng.uniform(size=(1, 25, 28, 28)).astype(np.float32),
        v=rng.uniform(size=(1, 25, 28, 28)).astype(np.float32),
    )
    ev = DensePoseEvaluator(gt)
    ev.process(
        [{"image_id": a.image_id}],
        [{"instances": _instances([[x, y, x + w, y + h]], [0.9], [0], dp)}],
    )
    res = ev.evaluate()
    assert list(res["densepose_gps"]) == KEYS
    assert 0.0 <= res["densepose_segm"]["AP"] <= 100.0
