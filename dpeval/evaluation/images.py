"""Evaluation core, prepare stage: decode, sample and mask one (image, category).

In: an :class:`ImageTask` (the GT people and detections of one image and category, with
the GT points they own) and the template's ``(25, 256, 256)`` closest-vertex table
(``BodyTemplate.uv8_lut``). Out: an :class:`ImageResult` (predicted vertex and part at
every GT point under every detection, and the mask IoUs). Geodesic distances and
everything after them are computed by :func:`~dpeval.evaluation.prepare.prepare`
on the gathered results.

:func:`image_similarities` is a module-level function of picklable arguments, so the same
code runs in this process, in forked workers (:func:`run_images`) and on the workers of
a Dask cluster (:mod:`dpeval.distributed`); results are identical wherever it runs.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..formats.iuv_png import warm_decoder
from ..formats.model import Detection, GroundTruth, GtPerson, Predictions
from .masks import BoxMask, detection_mask, gt_mask, mask_iou

__all__ = [
    "DECODE_MODES",
    "ImageOptions",
    "ImagePlan",
    "ImageResult",
    "ImageTask",
    "image_selection",
    "image_similarities",
]

DECODE_MODES: tuple[str, ...] = ("touching", "all")
"""Which detections the per-image stage decodes: those whose box touches a GT box or mask
(the others have GPS = IoU = 0 with every GT), or all of them."""


class ImageOptions(NamedTuple):
    """Options of the per-image stage (the same for every image of a run).

    ``decode`` is one of :data:`DECODE_MODES`.
    """

    protocol: str = "challenge2019"
    with_masks: bool = True
    oracle: str | None = None
    decode: str = "touching"


class ImageTask(NamedTuple):
    """Everything the per-image stage needs for one (image, category).

    Attributes
    ----------
    key : (image_id, category_id)
    gidx : (G,) int64
        Indices of the GT people into ``GroundTruth.annotations``.
    didx : (D,) int64
        Indices of the top detections into ``Predictions.detections`` (score order).
    people : tuple of GtPerson
        ``annotations[gidx]``.
    dets : tuple of Detection
        ``detections[didx]``.
    img_h, img_w : int
        Image size (0, 0 for an image absent from the GT).
    sel : (N,) int64
        Indices of the dense GT points of ``people`` (all GT points, file order).
    x, y : (N,) float64
        Their absolute image coordinates.
    part, vertex : (N,) int64
        Their GT part id and template vertex (-1 invalid).
    gmasks : tuple of BoxMask, optional
        The GT masks of ``people`` (:func:`~dpeval.evaluation.masks.gt_masks`); None:
        computed here.
    """

    key: tuple[int, int]
    gidx: np.ndarray
    didx: np.ndarray
    people: tuple[GtPerson, ...]
    dets: tuple[Detection, ...]
    img_h: int
    img_w: int
    sel: np.ndarray
    x: np.ndarray
    y: np.ndarray
    part: np.ndarray
    vertex: np.ndarray
    gmasks: tuple[BoxMask, ...] | None = None


class ImageResult(NamedTuple):
    """What the per-image stage returns for one (image, category).

    Attributes
    ----------
    key, gidx, didx, sel
        As in :class:`ImageTask`.
    pred : (D, N) int32
        Predicted template vertex at each GT point under each detection (-1: outside
        the box or background).
    ious : (D, G) float64 or None
        Mask IoUs (None without masks).
    pred_part : (D, N) int8
        Predicted part id (0: background, outside, or not decoded).
    """

    key: tuple[int, int]
    gidx: np.ndarray
    didx: np.ndarray
    sel: np.ndarray
    pred: np.ndarray
    ious: np.ndarray | None
    pred_part: np.ndarray


def image_selection(
    gt: GroundTruth,
    pts: Any,
    by_key: dict[tuple[int, int], list[int]],
    tops: dict[tuple[int, int], np.ndarray],
    key: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], np.ndarray]:
    """What one (image, category) scores: GT indices ``(G,)``, top detection indices
    ``(D,)``, the image's (height, width) ((0, 0) when unknown) and the rows of its dense
    GT points in ``pts`` (anything with per-annotation ``start``/``stop``, -1 = none).
    Shared by the IUV and the CSE paths."""
    gidx = np.asarray(by_key.get(key, []), dtype=np.int64)
    didx = tops.get(key, np.zeros(0, dtype=np.int64))
    info = gt.images.get(key[0])
    size = (info.height, info.width) if info is not None else (0, 0)
    dense = [g for g in gidx if pts.start[g] >= 0]
    sel = (
        np.concatenate([np.arange(pts.start[g], pts.stop[g]) for g in dense])
        if dense
        else np.zeros(0, dtype=np.int64)
    )
    return gidx, didx, size, sel


@dataclass
class ImagePlan:
    """Builds the :class:`ImageTask` of each (image, category) key of one run.

    Attributes
    ----------
    gt, preds
        The inputs.
    pts
        The GT points (``similarity._GtPoints``).
    by_key : dict
        (image, category) -> GT annotation indices kept.
    tops : dict
        (image, category) -> top detection indices.
    keys : list of (int, int)
        Every key, sorted.
    gt_masks : list of BoxMask, optional
        Every annotation's GT mask (file order), when masks are scored.
    """

    gt: GroundTruth
    preds: Predictions
    pts: Any
    by_key: dict[tuple[int, int], list[int]]
    tops: dict[tuple[int, int], np.ndarray]
    keys: list[tuple[int, int]]
    gt_masks: list[BoxMask] | None = None

    def task(self, key: tuple[int, int]) -> ImageTask:
        """The task of one key."""
        pts = self.pts
        gidx, didx, (img_h, img_w), sel = image_selection(self.gt, pts, self.by_key, self.tops, key)
        return ImageTask(
            key=key,
            gidx=gidx,
            didx=didx,
            people=tuple(self.gt.annotations[g] for g in gidx),
            dets=tuple(self.preds.detections[d] for d in didx),
            img_h=img_h,
            img_w=img_w,
            sel=sel,
            x=pts.x[sel],
            y=pts.y[sel],
            part=pts.part[sel],
            vertex=pts.vertex[sel],
            gmasks=None if self.gt_masks is None else tuple(self.gt_masks[g] for g in gidx),
        )


def image_similarities(task: ImageTask, lut: np.ndarray, opts: ImageOptions) -> ImageResult:
    """Decode, sample and mask one (image, category).

    Parameters
    ----------
    task : ImageTask
    lut : (25, 256, 256) int
        ``BodyTemplate.uv8_lut``: closest template vertex of each (part, U8, V8).
    opts : ImageOptions

    Returns
    -------
    ImageResult

    Raises
    ------
    FormatError
        A detection's IUV map does not decode.
    """
    protocol, with_masks = opts.protocol, opts.with_masks
    gidx, didx, sel = task.gidx, task.didx, task.sel
    img_h, img_w = task.img_h, task.img_w
    pred = np.full((len(didx), len(sel)), -1, dtype=np.int64)
    pred_part = np.zeros((len(didx), len(sel)), dtype=np.int8)
    ious = np.zeros((len(didx), len(gidx))) if with_masks else None
    gmasks: list[BoxMask] = []
    if with_masks and len(didx):
        if task.gmasks is not None:
            gmasks = list(task.gmasks)
        else:
            for a in task.people:
                gmasks.append(gt_mask(a.bbox, a.dp_masks, a.segmentation, img_h, img_w, protocol))
    # rectangles [x0, x1) x [y0, y1) that a detection must touch to score anything:
    # GT boxes widened by one pixel on the left/top (truncation toward zero) and
    # the GT masks; a detection touching none has GPS = IoU = 0 with every GT
    rects = [
        (float(b[0]) - 1, float(b[0] + b[2]) + 1, float(b[1]) - 1, float(b[1] + b[3]) + 1)
        for b in (a.bbox for a in task.people)
    ]
    rects += [
        (m.x0, m.x0 + m.mask.shape[1], m.y0, m.y0 + m.mask.shape[0]) for m in gmasks if m.area
    ]
    orc = _Oracle(opts.oracle, task.part, task.vertex) if opts.oracle and len(sel) else None
    for k, det in enumerate(task.dets):
        dx, dy, dw, dh = (float(t) for t in det.bbox)
        if opts.decode == "touching" and not any(
            dx < x1 and x0 < dx + dw + 1 and dy < y1 and y0 < dy + dh + 1
            for x0, x1, y0, y1 in rects
        ):
            continue  # decoding it cannot change any number
        iuv = det.load_iuv()
        if len(sel):
            pred[k], pred_part[k] = _sample(iuv, det.bbox, task.x, task.y, protocol, lut, orc)
        if with_masks:
            dm = detection_mask(iuv, det.bbox, img_h, img_w)
            for j, a in enumerate(task.people):
                ious[k, j] = mask_iou(dm, gmasks[j], bool(a.iscrowd))
    return ImageResult(task.key, gidx, didx, sel, pred.astype(np.int32), ious, pred_part)


def image_similarities_many(
    tasks: list[ImageTask], lut: np.ndarray, opts: ImageOptions
) -> list[ImageResult]:
    """:func:`image_similarities` of several tasks, in order (one shard)."""
    return [image_similarities(t, lut, opts) for t in tasks]


def _sample(
    iuv: np.ndarray,
    bbox: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    protocol: str,
    lut: np.ndarray,
    oracle: _Oracle | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted template vertex (-1 outside / background) and part id (0 there) at each
    GT point; ``oracle`` replaces predicted quantities by GT ones inside the box."""
    dx, dy, dw, dh = (float(t) for t in bbox)
    _, h_arr, w_arr = iuv.shape
    wlim, hlim = (dw, dh) if protocol == "challenge2019" else (float(int(dw)), float(int(dh)))
    col = np.trunc(x - dx)
    row = np.trunc(y - dy)
    inside = (col >= 0) & (row >= 0) & (col < wlim) & (row < hlim) & (col < w_arr) & (row < h_arr)
    out = np.full(len(x), -1, dtype=np.int64)
    part = np.zeros(len(x), dtype=np.int64)
    if inside.any():
        c = col[inside].astype(np.int64)
        r = row[inside].astype(np.int64)
        i = iuv[0, r, c].astype(np.int64)
        i[i > 24] = 0
        if oracle is None:
            out[inside] = lut[i, iuv[1, r, c], iuv[2, r, c]]
        else:
            out[inside], i = oracle.apply(inside, i, iuv[1, r, c], iuv[2, r, c], lut)
        part[inside] = i
    return out, part


@dataclass
class _Oracle:
    """One of :data:`dpeval.params.ORACLES` for the GT points of one (image, category)."""

    mode: str
    gt_part: np.ndarray  # (N,) of the selected GT points
    gt_vertex: np.ndarray

    def apply(self, inside, i, u8, v8, lut):
        """(vertex, part) at the points ``inside`` the box under this mode."""
        gi = self.gt_part[inside]
        if self.mode == "gt-iuv":
            return self.gt_vertex[inside], gi
        if self.mode == "gt-parts":
            return lut[gi, u8, v8], gi
        if self.mode == "gt-parts-uv0":
            return lut[gi, 0, 0], gi
        return lut[i, 0, 0], i  # "uv0"


_FORKED: dict[str, Any] = {}  # the run's plan, inherited by forked workers


def _fork_chunk(keys: list[tuple[int, int]]) -> list[ImageResult]:
    plan, lut, opts = _FORKED["plan"], _FORKED["lut"], _FORKED["opts"]
    return [image_similarities(plan.task(k), lut, opts) for k in keys]


def run_images(
    plan: ImagePlan,
    lut: np.ndarray,
    opts: ImageOptions,
    workers: int,
    progress,
    after_fork: Callable[[], None] | None = None,
) -> list[ImageResult]:
    """:func:`image_similarities` of every key of ``plan``, in order, on this machine.

    With ``workers > 1`` and enough images, forked worker processes decode and sample
    contiguous chunks of images (PNG decoding and the small per-image NumPy steps hold
    the GIL, so threads do not scale); where ``fork`` is unavailable, threads are used.
    Results are identical whatever the worker count. ``after_fork`` is called once the
    workers exist (at once without them): the place to start a thread of this process
    (forking a process with running threads is unsafe).
    """
    keys = plan.keys
    results: list[ImageResult] = []
    started = after_fork or (lambda: None)
    if workers <= 1 or len(keys) < 16:
        started()
        for n, key in enumerate(keys, 1):
            results.append(image_similarities(plan.task(key), lut, opts))
            if progress:
                progress(n)
        return results
    if "fork" in multiprocessing.get_all_start_methods():
        warm_decoder(sum(len(d) for d in plan.tops.values()))  # the workers inherit it
        n_chunks = min(len(keys), workers * 8)
        bounds = np.linspace(0, len(keys), n_chunks + 1).astype(int)
        chunks = [keys[a:b] for a, b in itertools.pairwise(bounds)]
        _FORKED.update(plan=plan, lut=lut, opts=opts)
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                started()
                for part in pool.imap(_fork_chunk, chunks):
                    results.extend(part)
                    if progress:
                        progress(len(results))
        finally:
            _FORKED.clear()
        return results
    started()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # pragma: no cover - no fork
        tasks = (plan.task(k) for k in keys)
        for n, r in enumerate(pool.map(lambda t: image_similarities(t, lut, opts), tasks), 1):
            results.append(r)
            if progress:
                progress(n)
    return results
