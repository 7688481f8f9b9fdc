"""Evaluation core, prepare stage: per (ground truth, detection) similarities: GPS (both
kappas), mask IoU, box IoU.

In: :class:`~dpeval.formats.model.GroundTruth`, instance
:class:`~dpeval.formats.model.Predictions`, a template and a geodesic solver.
Out: :class:`Similarities`, one :class:`ImageSims` per (image, category) plus the
per-point geodesic errors that the pointwise metrics need. Everything that depends on
the metric version is computed once here; matching any mode afterwards is cheap.

Point rule (spec §1.3): a GT point of box (gx, gy, gw, gh) sits at
``x = gx + dp_x * gw / 255`` (likewise y); relative to a detection box (dx, dy, dw, dh)
its pixel is ``col = int(x - dx)``, ``row = int(y - dy)`` (truncation toward zero, so up
to one pixel left of or above the box still counts as inside). It is outside when
``col < 0``, ``row < 0``, ``col >= Wlim`` or ``row >= Hlim``, with Wlim = dw (float,
``challenge2019``) or int(dw) (``detectron2``), and never beyond the IUV map. Inside, the
prediction is ``(I, U/255, V/255)`` of that pixel, mapped to the template's closest
vertex; background, I > 24 or outside give an infinite distance (the point still counts
in the mean). GT points whose own vertex is invalid are dropped.

GPS = mean over points of exp(-d^2 / (2 kappa^2)); 0 when a GT has no valid point.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._io import content_key, memo_npy
from ..errors import ParamsError
from ..formats.model import GroundTruth, Predictions
from ..params import KAPPA_PAPER, KAPPA_PER_PART, MAX_DETS
from ..template import BodyTemplate
from .boxes import box_iou
from .images import DECODE_MODES, ImageOptions, ImagePlan, ImageResult, run_images
from .masks import gt_masks
from .points import point_errors
from .regions import region_filter

__all__ = ["ImageSims", "Similarities", "prepare", "top_detections"]

log = logging.getLogger(__name__)


@dataclass
class ImageSims:
    """Similarities of one (image, category).

    Attributes
    ----------
    image_id, category_id : int
    gt_index : (G,) int64
        Indices into ``GroundTruth.annotations`` (file order).
    det_index : (D,) int64
        Indices into ``Predictions.detections``: the top ``max_dets`` by score,
        descending (stable: ties keep file order).
    det_scores, det_area : (D,) float64
    gps_paper, gps_per_part : (D, G) float64
    mask_iou : (D, G) float64 or None
    box_iou : (D, G) float64
    """

    image_id: int
    category_id: int
    gt_index: np.ndarray
    det_index: np.ndarray
    det_scores: np.ndarray
    det_area: np.ndarray
    gps_paper: np.ndarray
    gps_per_part: np.ndarray
    mask_iou: np.ndarray | None
    box_iou: np.ndarray


@dataclass
class Similarities:
    """All images' similarities plus per-point errors of each GT's best detection.

    Attributes
    ----------
    images : list of ImageSims
        Sorted by (image id, category id).
    point_gt : (N,) int64
        Annotation index of each dense GT point (all dense GTs, file order).
    point_part : (N,) int64
        GT part id of each point.
    point_dist : (N,) float64
        Geodesic error (metres) of the point under its GT's best detection (highest
        per-part GPS, ties to the higher score): inf for a miss or without detection;
        NaN where the GT point itself has no valid vertex (excluded everywhere).
    protocol : str
    point_vertex : (N,) int64 or None
        Template vertex of each GT point (-1 invalid).
    point_pred_vertex : (N,) int64 or None
        Template vertex predicted at the point by the same best detection as
        ``point_dist`` (-1: background, outside the box, or no detection).
    point_pred_part : (N,) int64 or None
        Part id (0..24; 0 background, outside or no detection) predicted there.
    """

    images: list[ImageSims]
    point_gt: np.ndarray
    point_part: np.ndarray
    point_dist: np.ndarray
    protocol: str
    point_vertex: np.ndarray | None = None
    point_pred_vertex: np.ndarray | None = None
    point_pred_part: np.ndarray | None = None


def top_detections(
    preds: Predictions, max_dets: int, keep: np.ndarray | None = None
) -> dict[tuple[int, int], np.ndarray]:
    """Per (image, category): detection indices sorted by score (descending, stable),
    among those with ``keep`` (all by default), cut to ``max_dets``."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, d in enumerate(preds.detections):
        if keep is not None and not keep[i]:
            continue
        groups.setdefault((d.image_id, d.category_id), []).append(i)
    out = {}
    for key, idx in groups.items():
        ids = np.asarray(idx, dtype=np.int64)
        scores = np.array([preds.detections[i].score for i in idx], dtype=np.float64)
        out[key] = ids[np.argsort(-scores, kind="mergesort")][:max_dets]
    return out


@dataclass
class _GtPoints:
    start: np.ndarray  # (A,) slice start per annotation, -1 without points
    stop: np.ndarray
    x: np.ndarray  # (N,) absolute image coordinates
    y: np.ndarray
    part: np.ndarray
    vertex: np.ndarray  # (N,) template vertex, -1 invalid
    owner: np.ndarray  # (N,) annotation index


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _gt_points(gt: GroundTruth, template: BodyTemplate) -> _GtPoints:
    """Every dense GT point in absolute image coordinates, with its template vertex."""
    n_ann = len(gt.annotations)
    start = np.full(n_ann, -1, dtype=np.int64)
    stop = np.full(n_ann, -1, dtype=np.int64)
    xs, ys, parts, us, vs, owner = [], [], [], [], [], []
    pos = 0
    for i, a in enumerate(gt.annotations):
        if not a.has_dense or a.n_points == 0:
            continue
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        xs.append(gx + a.dp_x * gw / 255.0)
        ys.append(gy + a.dp_y * gh / 255.0)
        parts.append(np.asarray(a.dp_I, dtype=np.int64))
        us.append(a.dp_U)
        vs.append(a.dp_V)
        owner.append(np.full(a.n_points, i, dtype=np.int64))
        start[i], stop[i] = pos, pos + a.n_points
        pos += a.n_points
    part = _concat(parts, np.int64)
    u, v = _concat(us, np.float64), _concat(vs, np.float64)
    vertex = memo_npy(
        "gt",
        content_key(["gt-vertices", template.checksum, part, u, v]),
        part.shape,
        np.dtype(np.int64),
        lambda: template.closest_vertices(part, u, v),
    )
    return _GtPoints(
        start,
        stop,
        _concat(xs, np.float64),
        _concat(ys, np.float64),
        part,
        vertex,
        _concat(owner, np.int64),
    )


class _TablePreload:
    """Open the solver's cached all-pairs table on a thread while the per-image stage
    runs (its spot check computes two fields, and the first kernel a process runs pays
    Numba's start-up: about 0.5 s that the workers' decoding now hides)."""

    def __init__(self, solver: Any) -> None:
        self._open = getattr(solver, "open_cached_table", None)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._open is None or self._thread is not None:
            return

        def run() -> None:
            try:
                self._open()
            except BaseException as e:  # re-raised by join, in the caller's thread
                self._error = e

        self._thread = threading.Thread(target=run, name="dpeval-table-preload", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _gt_by_key(gt: GroundTruth, keep_gt: np.ndarray) -> dict[tuple[int, int], list[int]]:
    """(image, category) -> indices of the GT people kept (file order)."""
    by_key: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(gt.annotations):
        if keep_gt[i]:
            by_key.setdefault((a.image_id, a.category_id), []).append(i)
    return by_key


def _geodesic_errors(
    results: list[ImageResult], pts: _GtPoints, solver: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic error of every (GT point, detection) pair of every image, in one solver
    call: (errors (sum of D*N,) float64 (inf: miss, NaN: invalid GT vertex), offsets)."""
    sizes = [r.pred.size for r in results]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    all_pred = np.concatenate([r.pred.ravel() for r in results]) if results else np.zeros(0, int)
    all_gtv = (
        np.concatenate([np.broadcast_to(pts.vertex[r.sel], r.pred.shape).ravel() for r in results])
        if results
        else np.zeros(0, int)
    )
    return point_errors(all_gtv, all_pred, solver), offsets


@dataclass
class _PointErrors:
    """Per GT point results under each GT's best detection (highest per-part GPS, ties
    to the higher score), filled image by image."""

    dist: np.ndarray
    pred_vertex: np.ndarray
    pred_part: np.ndarray
    best_gps: np.ndarray
    best_score: np.ndarray

    @classmethod
    def empty(cls, pts: _GtPoints, keep_gt: np.ndarray, n_ann: int) -> _PointErrors:
        dist = np.full(len(pts.x), np.inf)
        dist[(pts.vertex < 0) | ~keep_gt[pts.owner]] = np.nan  # dropped GTs: excluded
        return cls(
            dist,
            np.full(len(pts.x), -1, dtype=np.int64),
            np.zeros(len(pts.x), dtype=np.int64),
            np.full(n_ann, -1.0),
            np.full(n_ann, -np.inf),
        )

    def offer(self, g: int, rows: slice, gps: float, score: float, d, pred, part) -> None:
        """Keep detection errors ``d`` at GT ``g``'s points ``rows`` if it beats the best."""
        if gps > self.best_gps[g] or (gps == self.best_gps[g] and score > self.best_score[g]):
            self.best_gps[g], self.best_score[g] = gps, score
            self.dist[rows], self.pred_vertex[rows], self.pred_part[rows] = d, pred, part


def _point_scores(d: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, exp term with kappa 0.255, exp term with the per-part kappa) per (D, N)."""
    valid = ~np.isnan(d)
    dd = np.where(valid, d, np.inf)
    e_paper = np.where(valid, np.exp(-(dd**2) / (2 * KAPPA_PAPER**2)), 0.0)
    kp = np.asarray(KAPPA_PER_PART)[part]
    e_part = np.where(valid, np.exp(-(dd**2) / (2 * kp**2)), 0.0)
    return valid, e_paper, e_part


def _table32_scores(
    d: np.ndarray, pred: np.ndarray, gt_vertex: np.ndarray, part: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The official code squares the distances in float32 when every valid point of a pair
    is a float32 table value (no miss, no same vertex): (exp terms, from-table flags)."""
    valid = ~np.isnan(d)
    dd = np.where(valid, d, np.inf)
    kp = np.asarray(KAPPA_PER_PART)[part]
    d32 = np.where(valid, dd, 0.0).astype(np.float32)
    e32 = np.where(valid, np.exp(-(d32**2) / (2 * kp**2)), 0.0)
    from_table = ~valid | (np.isfinite(dd) & (pred != gt_vertex[None, :]))
    return e32, from_table


def _image_gps(
    r: ImageResult,
    d: np.ndarray,
    pts: _GtPoints,
    scores: np.ndarray,
    table32: bool,
    best: _PointErrors,
) -> tuple[np.ndarray, np.ndarray]:
    """(D, G) GPS with kappa 0.255 and per part of one image; offers every detection's
    point errors to ``best``."""
    n_d, n_g = len(r.didx), len(r.gidx)
    gps_paper, gps_part = np.zeros((n_d, n_g)), np.zeros((n_d, n_g))
    if not (n_d and len(r.sel)):
        return gps_paper, gps_part
    valid, e_paper, e_part = _point_scores(d, pts.part[r.sel])
    if table32:
        e32, from_table = _table32_scores(d, r.pred, pts.vertex[r.sel], pts.part[r.sel])
    pos = 0
    for j, g in enumerate(r.gidx):
        if pts.start[g] < 0:
            continue
        block = slice(pos, pos + pts.stop[g] - pts.start[g])
        pos = block.stop
        nv = int(valid[0, block].sum())
        if nv == 0:
            continue
        gps_paper[:, j] = e_paper[:, block].sum(axis=1) / nv
        gps_part[:, j] = e_part[:, block].sum(axis=1) / nv
        if table32:
            rows = from_table[:, block].all(axis=1)
            gps_part[rows, j] = e32[rows, block].sum(axis=1) / nv
        points = slice(pts.start[g], pts.stop[g])
        for k in range(n_d):  # best detection per GT for the pointwise metrics
            best.offer(
                g, points, gps_part[k, j], scores[k], d[k, block], r.pred[k, block],
                r.pred_part[k, block],
            )  # fmt: skip
    return gps_paper, gps_part


def _image_sims(
    r: ImageResult, gt: GroundTruth, preds: Predictions, gps: tuple[np.ndarray, np.ndarray]
) -> ImageSims:
    dets = [preds.detections[i] for i in r.didx]
    det_boxes = np.array([x.bbox for x in dets], dtype=np.float64).reshape(-1, 4)
    gt_boxes = np.array([gt.annotations[g].bbox for g in r.gidx], dtype=np.float64).reshape(-1, 4)
    crowd = np.array([gt.annotations[g].iscrowd for g in r.gidx], dtype=bool)
    return ImageSims(
        image_id=r.key[0],
        category_id=r.key[1],
        gt_index=r.gidx,
        det_index=r.didx,
        det_scores=np.array([x.score for x in dets], dtype=np.float64),
        det_area=det_boxes[:, 2] * det_boxes[:, 3],
        gps_paper=gps[0],
        gps_per_part=gps[1],
        mask_iou=r.ious,
        box_iou=box_iou(det_boxes, gt_boxes, crowd),
    )


def prepare(
    preds: Predictions,
    gt: GroundTruth,
    template: BodyTemplate,
    solver: Any,
    *,
    protocol: str = "challenge2019",
    with_masks: bool = True,
    max_dets: int = MAX_DETS,
    workers: int = 2,
    progress: Any = None,
    oracle: str | None = None,
    client: Any = None,
    decode: Literal["touching", "all"] = "touching",
) -> Similarities:
    """Compute every similarity the DensePose metrics need, in one pass over the data.

    Parameters
    ----------
    preds : Predictions
        ``kind == "instances"``.
    gt : GroundTruth
    template : BodyTemplate
    solver : GeodesicSolver
        Anything with ``pairs(a, b) -> (N,) float64`` metres.
    protocol : {"challenge2019", "detectron2"}
    with_masks : bool
        Compute mask IoUs (needed for GPSm and IoU).
    max_dets : int
    workers : int
        Processes decoding IUV maps and sampling points.
    progress : callable, optional
        Called with the number of images done, for progress bars.
    oracle : str, optional
        One of :data:`dpeval.params.ORACLES` (the official upper-bound modes).
    client : dask.distributed.Client, optional
        Decode and sample the images on this cluster's workers instead
        (:func:`dpeval.evaluation.sharded.map_images`); the numbers are identical.
    decode : {"touching", "all"}
        Decode only the detections whose box touches a GT box or mask (default; the
        others cannot change any number) or every detection (slower; the tests use it to
        show that skipping is exact).

    Returns
    -------
    Similarities

    Raises
    ------
    ParamsError
        Unknown ``decode``.
    FormatError
        A detection's IUV map does not decode.

    Example
    -------
    >>> sims = prepare(preds, gt, template, GeodesicSolver(template))  # doctest: +SKIP
    >>> sims.images[0].gps_per_part.shape  # (D, G)  # doctest: +SKIP
    """
    if decode not in DECODE_MODES:
        raise ParamsError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    ahead = getattr(solver, "compile_ahead", None)
    if ahead is not None:  # a first run compiles the geodesic kernels meanwhile
        ahead(sum(a.n_points for a in gt.annotations))
    pts = _gt_points(gt, template)
    keep_gt, keep_det = region_filter(gt, preds, protocol)  # PoseTrack ignore regions
    tops = top_detections(preds, max_dets, keep_det)
    by_key = _gt_by_key(gt, keep_gt)
    masks = gt_masks(gt, protocol) if with_masks and tops else None
    plan = ImagePlan(gt, preds, pts, by_key, tops, sorted(set(by_key) | set(tops)), masks)
    opts = ImageOptions(protocol, with_masks, oracle, decode)
    preload = _TablePreload(solver)  # the cached geodesic table opens meanwhile
    try:
        if client is not None:
            from .sharded import map_images

            preload.start()
            results = map_images(client, plan, template.uv8_lut, opts, progress=progress)
        else:
            results = run_images(plan, template.uv8_lut, opts, workers, progress, preload.start)
    finally:
        preload.join()

    dist, offsets = _geodesic_errors(results, pts, solver)
    table32 = getattr(solver, "mode", "") == "legacy"  # official float32 Pdist table
    best = _PointErrors.empty(pts, keep_gt, len(gt.annotations))
    images = []
    for r, o in zip(results, offsets[:-1], strict=True):
        d = dist[o : o + r.pred.size].reshape(r.pred.shape)
        scores = np.array([preds.detections[i].score for i in r.didx], dtype=np.float64)
        gps = _image_gps(r, d, pts, scores, table32, best)
        images.append(_image_sims(r, gt, preds, gps))
    return Similarities(
        images,
        pts.owner,
        pts.part,
        best.dist,
        protocol,
        point_vertex=pts.vertex,
        point_pred_vertex=best.pred_vertex,
        point_pred_part=best.pred_part,
    )
