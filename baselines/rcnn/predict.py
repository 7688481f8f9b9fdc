"""Inference of the DensePose-RCNN baseline: images -> challenge results JSON.

In: a checkpoint directory written by :func:`baselines.rcnn.train.train` and a split
(DensePose-Synth root, or any DensePose-COCO JSON + image directory; IUV maps are not
needed).
Out: the COCO DensePose challenge results JSON (one record per detection: ``image_id``,
``category_id`` 1, ``bbox`` [x, y, w, h], ``score``, ``uv_shape`` and the box-sized IUV
PNG), readable by ``dpeval score``. The head outputs are resized bilinearly to the box
(``H = floor(h)``, ``W = floor(w)``); I is the fine argmax where the coarse mask is
foreground, U and V those of that part (see :func:`baselines.rcnn.heads.iuv_from_outputs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from baselines.common.data import SynthDataset, collate
from baselines.common.predict import box_iuv_size, instances_to_predictions, write_instances

from .heads import iuv_from_outputs
from .train import load_model


@dataclass
class PredictResult:
    """What :func:`predict` wrote: path, image and detection counts, seconds."""

    path: Path
    n_images: int
    n_detections: int
    seconds: float


def predict(
    ckpt: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str = "val",
    annotations: str | Path | None = None,
    image_dir: str | Path | None = None,
    score_threshold: float | None = None,
    max_dets: int | None = 20,
    device: str = "auto",
    threads: int = 1,
    batch_size: int = 2,
    max_images: int | None = None,
) -> PredictResult:
    """Detect people and write their IUV maps as a challenge results JSON.

    Parameters
    ----------
    ckpt : path
        Checkpoint directory (or its ``model.pt``).
    data : path
        Dataset root.
    out : path
        Output ``.json``.
    split : str
    annotations, image_dir : path, optional
        Ground-truth JSON (for image ids and sizes) and image directory, defaults
        ``data/annotations/densepose_synth_<split>.json`` and ``data/images/<split>``.
    score_threshold : float, optional
        Keep detections scoring above it (default: the config's ``test_score_thresh``).
    max_dets : int, optional
        Per image (default 20, the evaluator's limit).
    device : str
    threads : int
        CPU threads (0: torch's default).
    batch_size : int
    max_images : int, optional

    Returns
    -------
    PredictResult
    """
    if threads > 0:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = load_model(ckpt, device)
    model.cfg = model.cfg.replace(test_score_thresh=score_threshold, max_dets=max_dets)
    dev = next(model.parameters()).device
    dataset = SynthDataset(
        data, split, annotations=annotations, image_dir=image_dir, load_iuv=False,
        max_images=max_images,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    instances = []
    with torch.no_grad():
        for images, metas in loader:
            results = model(images.to(dev), metas)
            for meta, r in zip(metas, results, strict=True):
                for j, (box, score) in enumerate(zip(r["boxes"], r["scores"], strict=True)):
                    h, w = box_iuv_size(box.tolist())
                    iuv = iuv_from_outputs(r["dp"], h, w, index=j).cpu().numpy()
                    instances.append((meta["image_id"], box.tolist(), float(score), iuv))
    path = write_instances(instances_to_predictions(instances), out)
    return PredictResult(path, len(dataset), len(instances), time.perf_counter() - t0)
