"""CSE stage: score Continuous Surface Embeddings predictions (GPS, GPSm, IoU, points).

In: :class:`~dpeval.formats.model.GroundTruth` with ``dp_vertex``/``ref_model``,
:class:`~dpeval.formats.cse.CsePredictions` and a :class:`~dpeval.cse.meshes.MeshBank`.
Out: the same :class:`~dpeval.evaluation.prepare.Similarities` the IUV path builds, so
matching, accumulation and summaries are shared; then a :class:`~dpeval.summary.Summary`.

Rule set ``cse-d2-v1`` (detectron2 ``densepose_coco_evaluation.py``, CSE path):

1. a GT point of box (gx, gy, gw, gh) sits at ``x = gx + dp_x * gw / 255`` (likewise y);
   against a detection box (dx, dy, dw, dh) its pixel is ``col = int(x - dx)``,
   ``row = int(y - dy)`` (truncation toward zero) and it is outside when ``col < 0``,
   ``row < 0``, ``col >= int(dw)`` or ``row >= int(dh)``;
2. ``coarse_segm`` and ``embedding`` are resized bilinearly (``align_corners=False``)
   to ``(max(int(dh), 1), max(int(dw), 1))`` (:mod:`dpeval.cse.embed`); the coarse label
   is the argmax; a point on label 0 or outside has no predicted vertex;
3. the predicted vertex is the nearest L2-normalised vertex embedding of the GT's
   ``ref_model`` mesh (squared Euclidean, ties to the lowest index), whatever class was
   predicted (as detectron2);
4. ``d`` = geodesic distance on that mesh between GT ``dp_vertex`` and the predicted
   vertex (dpeval's engine, or the user's ``geodists`` table); ``inf`` when either is
   missing (``dp_vertex = -1`` included: such a point stays in the mean);
5. GPS = mean over all the GT's points of ``exp(-d^2 / (2 kappa^2))``, with the
   per-part kappa ``MEAN_DISTANCES[COARSE_PART[dp_I]]`` exactly when
   ``ref_model == "smpl_27554"`` and the annotation has ``dp_I``, else kappa = 0.255
   (``gps_perpart``, the detectron2 number); ``gps_paper`` uses 0.255 for every point;
   0 when every point is outside the box or the GT has no point;
6. the detection mask is the resized coarse argmax > 0 pasted at ``(int(dx), int(dy))``
   (clipped to ``int(dx + dw)``, ``int(dy + dh)`` and the image); the GT mask comes from
   ``dp_masks`` with the protocol's rule, else from ``segmentation`` (LVIS);
   GPSm = sqrt(GPS * IoU);
7. matching, the box-IoU fallback, accumulation and AP/AR are the IUV ones; with more
   than one category, per-category AP is reported too;
8. RCP/AUC use each GT's best detection (highest ``gps_perpart``, then score); points
   without a GT vertex (``dp_vertex = -1``) are left out of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FormatError
from ..evaluation.boxes import box_iou
from ..evaluation.images import image_selection
from ..evaluation.masks import BoxMask, _place, gt_mask, mask_iou
from ..evaluation.prepare import ImageSims, Similarities, top_detections
from ..formats.cse import CsePredictions
from ..formats.model import GroundTruth
from ..params import KAPPA_PAPER, KAPPA_PER_PART
from .embed import box_size, nearest_vertices, resize_bilinear, sample_bilinear
from .meshes import MeshBank

__all__ = ["CSE_RULES", "CsePoints", "compute_cse_similarities"]

log = logging.getLogger(__name__)

CSE_RULES = "cse-d2-v1"
"""Version label of the CSE rule set above (printed with every CSE number)."""
PER_PART_MESH = "smpl_27554"
"""The only mesh whose points get detectron2's per-part kappa (when dp_I is present)."""


@dataclass
class CsePoints:
    """GT points of every dense annotation, in file order.

    Attributes
    ----------
    start, stop : (A,) int64
        Slice of each annotation (-1 without points).
    x, y : (N,) float64
        Absolute image coordinates.
    vertex : (N,) int64
        GT vertex (-1 = none).
    mesh : (N,) int64
        Index into ``mesh_names``.
    kappa : (N,) float64
        detectron2's kappa of each point.
    part : (N,) int64
        ``dp_I`` (0 when absent).
    owner : (N,) int64
    """

    start: np.ndarray
    stop: np.ndarray
    x: np.ndarray
    y: np.ndarray
    vertex: np.ndarray
    mesh: np.ndarray
    kappa: np.ndarray
    part: np.ndarray
    owner: np.ndarray
    mesh_names: list[str]


def cse_points(gt: GroundTruth, bank: MeshBank) -> CsePoints:
    """Collect and check the CSE ground truth (mesh known, vertex ids in range)."""
    n_ann = len(gt.annotations)
    start = np.full(n_ann, -1, dtype=np.int64)
    stop = np.full(n_ann, -1, dtype=np.int64)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "v", "m", "k", "p", "o")}
    names: list[str] = []
    pos = 0
    k_part = np.asarray(KAPPA_PER_PART)
    for i, a in enumerate(gt.annotations):
        if not a.has_dense:
            continue
        where = f"{gt.source}: annotation {a.index} (id={a.id})"
        if a.dp_vertex is None:
            raise FormatError(
                f"{where}: has dense points but no 'dp_vertex'/'ref_model'; CSE predictions "
                "are scored against CSE ground truth (detectron2's coco_cse layout)"
            )
        n = a.n_points
        mesh = bank.mesh(a.ref_model)  # type: ignore[arg-type]
        if n and a.dp_vertex.max() >= mesh.n_vertices:
            j = int(np.argmax(a.dp_vertex))
            raise FormatError(
                f"{where}: dp_vertex[{j}] = {int(a.dp_vertex[j])} but mesh {a.ref_model!r} "
                f"({mesh.source}) has {mesh.n_vertices} vertices; ids must be "
                f"0..{mesh.n_vertices - 1}"
            )
        if a.ref_model not in names:
            names.append(a.ref_model)  # type: ignore[arg-type]
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        cols["x"].append(gx + a.dp_x * gw / 255.0)  # type: ignore[operator]
        cols["y"].append(gy + a.dp_y * gh / 255.0)  # type: ignore[operator]
        cols["v"].append(np.asarray(a.dp_vertex, dtype=np.int64))
        cols["m"].append(np.full(n, names.index(a.ref_model), dtype=np.int64))  # type: ignore[arg-type]
        part = np.zeros(n, np.int64) if a.dp_I is None else np.asarray(a.dp_I, np.int64)
        if a.ref_model == PER_PART_MESH and a.dp_I is not None:
            cols["k"].append(k_part[part])
        else:
            cols["k"].append(np.full(n, KAPPA_PAPER))
        cols["p"].append(part)
        cols["o"].append(np.full(n, i, dtype=np.int64))
        start[i], stop[i] = pos, pos + n
        pos += n

    def cat(key: str, dt: Any) -> np.ndarray:
        return np.concatenate(cols[key]).astype(dt) if cols[key] else np.zeros(0, dt)

    return CsePoints(
        start,
        stop,
        cat("x", np.float64),
        cat("y", np.float64),
        cat("v", np.int64),
        cat("m", np.int64),
        cat("k", np.float64),
        cat("p", np.int64),
        cat("o", np.int64),
        names,
    )


def _det_mask(coarse: np.ndarray, bbox: np.ndarray, img_h: int, img_w: int) -> BoxMask:
    x, y, w, h = (float(t) for t in bbox)
    bh, bw = box_size(bbox)
    m = np.argmax(resize_bilinear(coarse, bh, bw), axis=0) > 0
    return _place(m, int(x), int(y), img_w, img_h, x_stop=int(x + w), y_stop=int(y + h))


def _gt_mask(a: Any, img_h: int, img_w: int, protocol: str) -> BoxMask:
    if a.dp_masks:
        return gt_mask(a.bbox, a.dp_masks, None, img_h, img_w, protocol)
    return gt_mask(a.bbox, None, a.segmentation, img_h, img_w, "detectron2")


def compute_cse_similarities(
    gt: GroundTruth,
    preds: CsePredictions,
    bank: MeshBank,
    *,
    protocol: str = "detectron2",
    with_masks: bool = True,
    max_dets: int = 20,
    progress: Callable[[int], None] | None = None,
    method: str = "blas",
) -> Similarities:
    """Every similarity the CSE metrics need, in one pass (rules in the module doc).

    Returns
    -------
    Similarities
        ``gps_per_part`` holds detectron2's CSE GPS, ``gps_paper`` kappa 0.255 GPS;
        ``point_*`` arrays as for IUV (``point_part`` = dp_I or 0).

    Raises
    ------
    FormatError, ParamsError
        Unknown mesh, vertex ids out of range, embedding sizes that disagree, NaN maps.
    """
    pts = cse_points(gt, bank)
    emb = {name: bank.embeddings(name) for name in pts.mesh_names}
    d_pred = preds.embed_dim
    for name, e in emb.items():
        if d_pred is not None and e.shape[1] != d_pred:
            raise FormatError(
                f"{preds.source}: predictions have embedding size D = {d_pred} but the vertex "
                f"embeddings of mesh {name!r} have D = {e.shape[1]}; use the embeddings of "
                "the model that made the predictions"
            )
    tops = top_detections(preds, max_dets)  # type: ignore[arg-type]
    by_key: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(gt.annotations):
        by_key.setdefault((a.image_id, a.category_id), []).append(i)
    keys = sorted(set(by_key) | set(tops))

    # pass 1: per image, sample labels/embeddings at every GT point inside each box
    queries: dict[int, list[np.ndarray]] = {m: [] for m in range(len(pts.mesh_names))}
    slots: dict[int, list[np.ndarray]] = {m: [] for m in range(len(pts.mesh_names))}
    per_key = []
    pred_offset = 0
    for n_done, key in enumerate(keys, 1):
        gidx, didx, (img_h, img_w), sel = image_selection(gt, pts, by_key, tops, key)
        ious = np.zeros((len(didx), len(gidx))) if with_masks else None
        gmasks = (
            [_gt_mask(gt.annotations[g], img_h, img_w, protocol) for g in gidx]
            if with_masks and len(didx)
            else []
        )
        rects = [
            (float(b[0]) - 1, float(b[0] + b[2]) + 1, float(b[1]) - 1, float(b[1] + b[3]) + 1)
            for b in (gt.annotations[g].bbox for g in gidx)
        ]
        rects += [
            (m.x0, m.x0 + m.mask.shape[1], m.y0, m.y0 + m.mask.shape[0]) for m in gmasks if m.area
        ]
        for k, d in enumerate(didx):
            det = preds.detections[d]
            dx, dy, dw, dh = (float(t) for t in det.bbox)
            if not any(
                dx < x1 and x0 < dx + dw + 1 and dy < y1 and y0 < dy + dh + 1
                for x0, x1, y0, y1 in rects
            ):
                continue  # touches no GT: GPS = IoU = 0, maps never read
            coarse, embedding = det.load()
            if with_masks:
                dm = _det_mask(coarse, det.bbox, img_h, img_w)
                for j, g in enumerate(gidx):
                    ious[k, j] = mask_iou(dm, gmasks[j], bool(gt.annotations[g].iscrowd))  # type: ignore[index]
            if not len(sel):
                continue
            col = np.trunc(pts.x[sel] - dx)
            row = np.trunc(pts.y[sel] - dy)
            inside = (col >= 0) & (row >= 0) & (col < int(dw)) & (row < int(dh))
            if not inside.any():
                continue
            bh, bw = box_size(det.bbox)
            r, c = row[inside].astype(np.int64), col[inside].astype(np.int64)
            label = np.argmax(sample_bilinear(coarse, bh, bw, r, c), axis=1)
            fg = label > 0
            if not fg.any():
                continue
            where = np.flatnonzero(inside)[fg]  # positions in sel
            vals = sample_bilinear(embedding, bh, bw, r[fg], c[fg])
            mesh_of = pts.mesh[sel[where]]
            flat = pred_offset + k * len(sel) + where
            for m in np.unique(mesh_of):
                pick = mesh_of == m
                queries[int(m)].append(vals[pick])
                slots[int(m)].append(flat[pick])
        per_key.append((key, gidx, didx, sel, ious, pred_offset))
        pred_offset += len(didx) * len(sel)
        if progress:
            progress(n_done)

    # pass 2: nearest vertex per mesh, then geodesics per mesh
    pred_v = np.full(pred_offset, -1, dtype=np.int64)
    for m, name in enumerate(pts.mesh_names):
        if queries[m]:
            q = np.concatenate(queries[m])
            pred_v[np.concatenate(slots[m])] = nearest_vertices(q, emb[name], method=method)
    gt_sel = (
        np.concatenate([np.tile(s[3], len(s[2])) for s in per_key])
        if per_key
        else np.zeros(0, np.int64)
    )
    gt_sel = gt_sel.astype(np.int64)
    gt_v = pts.vertex[gt_sel]
    dist = np.full(pred_offset, np.inf)
    ok = (pred_v >= 0) & (gt_v >= 0)
    for m, name in enumerate(pts.mesh_names):
        sel_m = ok & (pts.mesh[gt_sel] == m)
        if sel_m.any():
            dist[sel_m] = bank.mesh(name).pairs(gt_v[sel_m], pred_v[sel_m])
    return _assemble(gt, preds, pts, per_key, dist, pred_v, protocol)


def _assemble(gt, preds, pts, per_key, dist, pred_v, protocol) -> Similarities:
    best_gps = np.full(len(gt.annotations), -1.0)
    best_score = np.full(len(gt.annotations), -np.inf)
    point_dist = np.full(len(pts.x), np.inf)
    point_pred = np.full(len(pts.x), -1, dtype=np.int64)
    images = []
    for key, gidx, didx, sel, ious, off in per_key:
        n_d, n_g = len(didx), len(gidx)
        d = dist[off : off + n_d * len(sel)].reshape(n_d, len(sel))
        pv = pred_v[off : off + n_d * len(sel)].reshape(n_d, len(sel))
        gps_paper = np.zeros((n_d, n_g))
        gps_part = np.zeros((n_d, n_g))
        if n_d and len(sel):
            kp = pts.kappa[sel]
            e_part = np.exp(-(d**2) / (2 * kp**2))
            e_paper = np.exp(-(d**2) / (2 * KAPPA_PAPER**2))
            pos = 0
            for j, g in enumerate(gidx):
                if pts.start[g] < 0:
                    continue
                n = pts.stop[g] - pts.start[g]
                block = slice(pos, pos + n)
                pos += n
                if n == 0:
                    continue
                gps_paper[:, j] = e_paper[:, block].sum(axis=1) / n
                gps_part[:, j] = e_part[:, block].sum(axis=1) / n
                for k in range(n_d):
                    s = preds.detections[didx[k]].score
                    if gps_part[k, j] > best_gps[g] or (
                        gps_part[k, j] == best_gps[g] and s > best_score[g]
                    ):
                        best_gps[g], best_score[g] = gps_part[k, j], s
                        point_dist[pts.start[g] : pts.stop[g]] = d[k, block]
                        point_pred[pts.start[g] : pts.stop[g]] = pv[k, block]
        dets = [preds.detections[i] for i in didx]
        det_boxes = np.array([x.bbox for x in dets], dtype=np.float64).reshape(-1, 4)
        gt_boxes = np.array([gt.annotations[g].bbox for g in gidx], dtype=np.float64).reshape(-1, 4)
        crowd = np.array([gt.annotations[g].iscrowd for g in gidx], dtype=bool)
        images.append(
            ImageSims(
                image_id=key[0],
                category_id=key[1],
                gt_index=gidx,
                det_index=didx,
                det_scores=np.array([x.score for x in dets], dtype=np.float64),
                det_area=det_boxes[:, 2] * det_boxes[:, 3],
                gps_paper=gps_paper,
                gps_per_part=gps_part,
                mask_iou=ious,
                box_iou=box_iou(det_boxes, gt_boxes, crowd),
            )
        )
    point_dist[pts.vertex < 0] = np.nan  # no GT vertex: no error to measure
    return Similarities(
        images=images,
        point_gt=pts.owner,
        point_part=pts.part,
        point_dist=point_dist,
        protocol=protocol,
        point_vertex=pts.vertex,
        point_pred_vertex=point_pred,
    )
