"""A detectron2-style evaluator (duck-typed; detectron2 and torch are never imported).

:class:`DensePoseEvaluator` has detectron2's ``DatasetEvaluator`` methods, so it drops
into ``inference_on_dataset(model, loader, evaluator)``: ``reset()``, ``process(inputs,
outputs)`` collects each image's ``Instances`` (``pred_boxes.tensor`` XYXY,
``scores``, ``pred_classes``, ``pred_densepose``), and ``evaluate()`` scores them with
dpeval and returns detectron2's result dict::

    {"densepose_gps": {"AP": .., "AP50": .., "AP75": .., "APm": .., "APl": .., "AR": ..,
                       "AR50": .., "AR75": .., "ARm": .., "ARl": .. [, "AP-<class>": ..]},
     "densepose_gpsm": {...}, "densepose_segm": {...}}     (percentages, as detectron2)

``pred_densepose`` may be a CSE output (``coarse_segm`` [N, K, S, S], ``embedding``
[N, D, S, S]) or a chart output (``coarse_segm``, ``fine_segm``, ``u``, ``v``), which is
turned into detectron2's quantised ``labels_uv_uint8`` exactly as its evaluator does:
every map resized bilinearly (``align_corners=False``) to ``(int(h), int(w))``,
``I = argmax(fine) * (argmax(coarse) > 0)``, U and V of the winning chart,
``trunc(clamp(255 * U, 0, 255))``. Tensors are read through ``.detach().cpu().numpy()``.
Predicted class ``c`` (contiguous, 0-based) becomes the c-th ground-truth category id in
sorted order, as detectron2's ``thing_dataset_id_to_contiguous_id`` does for COCO.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._typing import as_array
from ..cse.embed import resize_bilinear

__all__ = ["DensePoseEvaluator", "chart_to_iuv"]


def chart_to_iuv(
    coarse: np.ndarray, fine: np.ndarray, u: np.ndarray, v: np.ndarray, bbox_xywh: Sequence[float]
) -> np.ndarray:
    """detectron2's chart output of one detection -> ``(3, h, w) uint8`` IUV on its box."""
    h, w = max(int(bbox_xywh[3]), 1), max(int(bbox_xywh[2]), 1)
    c = np.argmax(resize_bilinear(coarse, h, w), axis=0)
    f = np.argmax(resize_bilinear(fine, h, w), axis=0)
    labels = (f * (c > 0)).astype(np.int64)
    iuv = np.zeros((3, h, w), dtype=np.uint8)
    iuv[0] = labels
    rows, cols = np.mgrid[0:h, 0:w]
    for k, m in ((1, u), (2, v)):
        val = resize_bilinear(m, h, w)[labels, rows, cols]
        q = np.clip(val * 255.0, 0, 255).astype(np.uint8)  # truncation, as .to(torch.uint8)
        iuv[k] = np.where(labels > 0, q, 0)
    return iuv


class DensePoseEvaluator:
    """detectron2 ``DatasetEvaluator`` look-alike scoring DensePose IUV or CSE outputs.

    Parameters
    ----------
    ground_truth : path, dict or GroundTruth
        DensePose-COCO JSON (with ``dp_vertex``/``ref_model`` for CSE models).
    min_iou : float
        detectron2's ``DENSEPOSE_EVALUATION.MIN_IOU_THRESHOLD``.
    category_map : {contiguous class: dataset category id}, optional
    **cse_options
        Passed to :func:`dpeval.score` for CSE outputs: ``meshes``,
        ``vertex_embeddings``, ``checkpoint``, ``mesh_basis``, ``mesh_registry``.

    Example
    -------
    >>> emb = {"smpl_27554": "e.npy"}
    >>> ev = DensePoseEvaluator("gt.json", vertex_embeddings=emb)  # doctest: +SKIP
    >>> ev.process(inputs, outputs)  # doctest: +SKIP
    >>> ev.evaluate()["densepose_gps"]["AP"]  # doctest: +SKIP
    """

    def __init__(
        self,
        ground_truth: Any,
        *,
        min_iou: float = 0.5,
        category_map: Mapping[int, int] | None = None,
        **cse_options: Any,
    ) -> None:
        from ..formats import load_ground_truth
        from ..formats.model import GroundTruth

        self.gt = (
            ground_truth
            if isinstance(ground_truth, GroundTruth)
            else load_ground_truth(ground_truth)
        )
        self.min_iou = min_iou
        cats = sorted(self.gt.categories)
        self.category_map = dict(category_map) if category_map else dict(enumerate(cats))
        self.cse_options = cse_options
        self._records: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget everything processed so far."""
        self._records = []

    def process(
        self, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]
    ) -> None:
        """Collect one batch: ``inputs[i]["image_id"]``, ``outputs[i]["instances"]``."""
        for inp, out in zip(inputs, outputs, strict=True):
            inst = out["instances"]
            boxes = as_array(
                inst.pred_boxes.tensor if hasattr(inst.pred_boxes, "tensor") else inst.pred_boxes
            )
            boxes = boxes.reshape(-1, 4).astype(np.float64)
            xywh = np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]
            scores = as_array(inst.scores).reshape(-1)
            classes = as_array(inst.pred_classes).reshape(-1).astype(np.int64)
            dp = inst.pred_densepose
            embedding = getattr(dp, "embedding", None)
            fields = {k: getattr(dp, k, None) for k in ("coarse_segm", "fine_segm", "u", "v")}
            arrays = {k: as_array(v) for k, v in fields.items() if v is not None}
            emb = as_array(embedding) if embedding is not None else None
            for k in range(len(scores)):
                rec = {
                    "image_id": int(inp["image_id"]),
                    "category_id": int(self.category_map.get(int(classes[k]), int(classes[k]))),
                    "bbox": [float(x) for x in xywh[k]],
                    "score": float(scores[k]),
                }
                if emb is not None:
                    rec["coarse_segm"] = arrays["coarse_segm"][k].astype(np.float32)
                    rec["embedding"] = emb[k].astype(np.float32)
                else:
                    rec["densepose"] = chart_to_iuv(
                        arrays["coarse_segm"][k],
                        arrays["fine_segm"][k],
                        arrays["u"][k],
                        arrays["v"][k],
                        rec["bbox"],
                    )
                self._records.append(rec)

    def evaluate(self) -> OrderedDict:
        """Score what was processed; detectron2's ``densepose_*`` dict (percentages)."""
        from ..api import score

        cse = bool(self._records) and "embedding" in self._records[0]
        opts = self.cse_options if cse else {}
        s = score(
            self._records,
            self.gt,
            metrics=["gps", "gpsm", "iou"],
            protocol="detectron2",
            kappa="per-part",
            min_iou=self.min_iou,
            **opts,
        )
        names = ["AP", *[f"AP{t}" for t in (20, 30, 40)], "AP50", "AP75", "APm", "APl",
                 "AR", "AR50", "AR75", "ARm", "ARl"]  # fmt: skip
        per_cat = s.metrics.get("cse", {}).get("per_category_AP", {})
        out: OrderedDict = OrderedDict()
        for key, src in (
            ("densepose_gps", "gps_perpart"),
            ("densepose_gpsm", "gpsm"),
            ("densepose_segm", "iou"),
        ):
            m = s.metrics[src]
            res = {n: 100.0 * m[n] for n in names if n in m}
            for cat, ap in per_cat.get(src, {}).items():
                res[f"AP-{cat}"] = 100.0 * ap
            out[key] = res
        return out
