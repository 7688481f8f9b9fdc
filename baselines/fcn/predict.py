"""Inference of the FCN baseline: dense IUV maps and instances derived from them.

In: a checkpoint directory (``model.pt``), a DensePose-COCO ground-truth JSON (only its
image list is used) and the image directory; no IUV maps are needed. Out: the COCO
challenge results JSON (instances) and, optionally, a directory of image-level IUV PNGs
(dense maps); both are read by ``dpeval score``.

Instances from a dense map (the FCN has no notion of a person), per image:

1. foreground = pixels whose foreground probability ``1 - p(background)`` exceeds
   ``fg_threshold`` (0.5), labelled with their most likely part (the dense map too);
2. connected components of the foreground with 8-connectivity
   (``scipy.ndimage.label``); components under ``min_area`` pixels are dropped;
3. box = the component's pixel bounding box ``[x0, y0, x1 + 1, y1 + 1]``; score = mean
   foreground probability ``1 - p(background)`` over the component;
4. IUV = the dense map cropped to the box, pixels outside the component set to 0
   (background);
5. the ``max_dets`` highest-scoring components are kept.

People who touch merge into one instance: a known limit of this rule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ..common.data import SynthDataset, pad_batch
from ..common.predict import (
    instances_to_predictions,
    iuv_from_outputs,
    write_dense,
    write_instances,
)
from ..common.train import choose_device, load_checkpoint, setup_torch
from .config import FCNConfig
from .model import DenseRegFCN
from .train import CHECKPOINT

__all__ = ["PredictResult", "dense_to_instances", "load_model", "predict", "predict_image"]

log = logging.getLogger(__name__)

_EIGHT = np.ones((3, 3), dtype=bool)


def load_model(ckpt: str | Path, device: torch.device) -> tuple[DenseRegFCN, FCNConfig]:
    """Rebuild the network from ``ckpt`` (a directory with ``model.pt``, or the file)."""
    path = Path(ckpt)
    path = path / CHECKPOINT if path.is_dir() else path
    state = load_checkpoint(path, map_location=device)
    cfg = FCNConfig.from_dict(state["config"])
    model = DenseRegFCN(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


@torch.no_grad()
def predict_image(
    model: DenseRegFCN, image: torch.Tensor, fg_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """One normalised (3, H, W) image -> IUV (3, H, W) uint8 and foreground prob (H, W).

    The image is padded to a multiple of 32 for the network and the outputs cropped back.
    """
    h, w = image.shape[-2:]
    device = next(model.parameters()).device
    out = model(pad_batch([image]).to(device))
    logits = out["part_logits"][0, :, :h, :w].float()
    iuv = iuv_from_outputs(
        logits, out["u"][0, :, :h, :w], out["v"][0, :, :h, :w], fg_threshold=fg_threshold
    )
    fg_prob = 1.0 - torch.softmax(logits, dim=0)[0]
    return iuv, fg_prob.cpu().numpy()


def dense_to_instances(
    iuv: np.ndarray, fg_prob: np.ndarray, min_area: int, max_dets: int
) -> list[tuple[list[float], float, np.ndarray]]:
    """Instances of one image by the module's rule: (box xyxy, score, box IUV) tuples."""
    labels, _ = ndimage.label(iuv[0] > 0, structure=_EIGHT)
    found = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == k
        area = int(comp.sum())
        if area < min_area:
            continue
        score = float(fg_prob[sl][comp].mean())
        crop = iuv[:, sl[0], sl[1]] * comp[None]
        box = [float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop)]
        found.append((box, score, np.ascontiguousarray(crop, dtype=np.uint8)))
    found.sort(key=lambda t: -t[1])
    return found[:max_dets]


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict` wrote: paths, counts and wall time."""

    instances_path: Path
    dense_dir: Path | None
    n_images: int
    n_instances: int
    seconds: float


def predict(
    ckpt: str | Path,
    data_root: str | Path,
    out: str | Path,
    *,
    split: str = "val",
    dense_out: str | Path | None = None,
    annotations: str | Path | None = None,
    image_dir: str | Path | None = None,
    device: str = "auto",
    threads: int = 1,
    min_area: int | None = None,
    max_dets: int | None = None,
    max_images: int | None = None,
) -> PredictResult:
    """Run the FCN on every image of a split and write the prediction files.

    Parameters
    ----------
    ckpt : path
        Checkpoint directory (or ``model.pt``).
    data_root : path
        Dataset root; ``annotations`` and ``image_dir`` default to the synth layout
        (``annotations/densepose_synth_<split>.json``, ``images/<split>``).
    out : path
        Instance results JSON (challenge format).
    dense_out : path, optional
        Also write the image-level IUV PNGs (one per image, named after ``file_name``).
    device, threads
        As for training.
    min_area, max_dets : int, optional
        Override the checkpoint config's instance rule.
    max_images : int, optional

    Returns
    -------
    PredictResult
    """
    dev = choose_device(device)
    setup_torch(dev, threads)
    model, cfg = load_model(ckpt, dev)
    min_area = cfg.min_area if min_area is None else min_area
    max_dets = cfg.max_dets if max_dets is None else max_dets
    ds = SynthDataset(
        data_root,
        split,
        annotations=annotations,
        image_dir=image_dir,
        load_iuv=False,
        max_images=max_images,
    )
    t0 = time.perf_counter()
    instances, maps = [], {}
    for i, image_id in enumerate(ds.image_ids):
        image, _ = ds.image_and_iuv(i)
        iuv, fg_prob = predict_image(model, image, cfg.fg_threshold)
        if dense_out is not None:
            maps[image_id] = iuv
        for box, score, crop in dense_to_instances(iuv, fg_prob, min_area, max_dets):
            instances.append((image_id, box, score, crop))
    out_path = write_instances(instances_to_predictions(instances), out)
    dense_dir = None
    if dense_out is not None:
        dense_dir = write_dense(maps, ds.gt.images, dense_out)
    seconds = time.perf_counter() - t0
    log.info("predicted %d instances on %d images in %.1f s", len(instances), len(ds), seconds)
    return PredictResult(out_path, dense_dir, len(ds), len(instances), seconds)
