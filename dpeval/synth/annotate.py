"""Synth stage 4: DensePose-COCO annotations from a rendered frame.

In: a :class:`~dpeval.synth.render.Frame` (exact per-pixel IUV, body index, depth) and
its :class:`~dpeval.synth.scene.Scene`. Out: annotation dicts in the DensePose-COCO
layout (without ``id``/``image_id``, which the writer assigns): ``bbox``, ``area``,
``segmentation`` (RLE), ``iscrowd``, 17 COCO ``keypoints`` with visibility and, for
most people, ``dp_x, dp_y, dp_I, dp_U, dp_V``, the 14 ``dp_masks`` and the CSE fields
``dp_vertex`` / ``ref_model: "open"`` (:func:`add_cse_fields`).

Conventions (checked by tests):

- Boxes are integer-aligned on the visible pixels: ``x0`` = first visible column,
  ``w = x1 - x0 + 1``. A point at pixel (px, py) is stored as
  ``dp_x = (px + 0.5 - x0) * 255 / w``, which the evaluator's ``x0 + dp_x * w / 255``
  truncates back to ``px``.
- Points are sampled as the dataset was: per visible coarse part, roughly equidistant
  points from k-means (seeded Lloyd), at most 14 per part, snapped to visible pixels
  of that person only (occluded surface is never annotated).
- ``dp_U``/``dp_V`` are the 8-bit values ``round(u * 255) / 255`` of the IUV map.
- ``dp_masks`` (256x256 on the box) map every grid cell to the box pixel that weighs
  most in the evaluator's bilinear resize, so the decoded GT mask reproduces the
  visible mask exactly when the box is at most 128 px on each side (2019 challenge
  rule; about 85 px for detectron2's rule). Larger boxes lose detail to the 256 grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from .pose import KEYPOINT_SURFACE
from .render import Frame
from .scene import Scene

__all__ = [
    "COARSE_OF_FINE",
    "AnnotateConfig",
    "add_cse_fields",
    "annotate_frame",
    "dp_mask_grid",
    "encode_rle",
    "tight_box",
]

COARSE_OF_FINE = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14],
    dtype=np.uint8,
)
"""Coarse ``dp_masks`` label (1..14) of each fine part id (index 0..24)."""

MASK_GRID = 256


@dataclass(frozen=True)
class AnnotateConfig:
    """How annotations are sampled.

    Attributes
    ----------
    max_points_per_part : int
        At most this many points per coarse part (14 in DensePose-COCO).
    pixels_per_point : int
        A part gets ``ceil(visible pixels / pixels_per_point)`` points (capped).
    min_dense_area : int
        People with fewer visible pixels get no dense annotation.
    dense_drop : float
        Fraction of the other people also left without dense annotation.
    kmeans_iters, kmeans_max_pixels : int
        Lloyd iterations and the pixel subsample size per part.
    joint_depth_tol, surface_depth_tol : float
        A keypoint is visible (v=2) when its own body is seen at its pixel no more than
        this far (metres) in front of it.
    """

    max_points_per_part: int = 14
    pixels_per_point: int = 10
    min_dense_area: int = 400
    dense_drop: float = 0.2
    kmeans_iters: int = 10
    kmeans_max_pixels: int = 1500
    joint_depth_tol: float = 0.12
    surface_depth_tol: float = 0.03


def encode_rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """COCO RLE of a 2D bool mask: ``{"size": [h, w], "counts": str}`` (compressed) or
    with a list of run lengths (uncompressed, as COCO stores crowds)."""
    from pycocotools import mask as mask_utils

    m = np.asfortranarray(mask.astype(np.uint8))
    if compressed:
        rle = mask_utils.encode(m)
        return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    flat = m.ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Integer box ``(x0, y0, w, h)`` of the set pixels (``w = x1 - x0 + 1``)."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def dp_mask_grid(n: int, grid: int = MASK_GRID) -> np.ndarray:
    """(grid,) int64: the box pixel (0..n-1) each grid cell copies along one axis.

    The 2019 challenge evaluator resizes the 256-cell label map to the ``n``-pixel box
    bilinearly at half-pixel centres: each cell goes to the pixel whose sample gives it
    the largest weight. Cells those samples do not touch go, by the same rule, to the
    samples of detectron2's ``ndimage.zoom`` (corner-aligned, ``j * 255 / (n - 1)``),
    and the rest to the nearest pixel. Both decodes are then exact for boxes up to
    about 85 px, and the 2019 one up to 128 px.
    """
    j = np.arange(n)
    out = np.minimum(((np.arange(grid) + 0.5) * n / grid).astype(np.int64), n - 1)
    zoom = j * (grid - 1) / max(n - 1, 1)
    for f in (zoom, (j + 0.5) * grid / n - 0.5):  # the last one written wins
        cells, pix = _claim(f, j, grid)
        out[cells] = pix
    return out


def _claim(f: np.ndarray, j: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells touched by bilinear samples at cell coordinates ``f`` and, per cell, the
    pixel with the largest weight (ties: the lower pixel)."""
    i0 = np.floor(f).astype(np.int64)
    w1 = f - i0
    low, high = i0 < 0, i0 >= grid - 1
    i0[low], w1[low] = 0, 0.0
    i0[high], w1[high] = grid - 1, 0.0
    cells = np.concatenate([i0, np.minimum(i0 + 1, grid - 1)])
    weight = np.concatenate([1.0 - w1, w1])
    pix = np.concatenate([j, j])
    keep = weight > 0
    cells, weight, pix = cells[keep], weight[keep], pix[keep]
    order = np.lexsort((pix, -weight, cells))
    cs = cells[order]
    first = np.ones(len(cs), dtype=bool)
    first[1:] = cs[1:] != cs[:-1]
    return cs[first], pix[order][first]


def annotate_frame(
    frame: Frame, scene: Scene, rng: np.random.Generator, cfg: AnnotateConfig | None = None
) -> list[dict]:
    """Annotations of one image: one per visible individual person, then one crowd
    region per crowd group.

    Parameters
    ----------
    frame : Frame
    scene : Scene
        The scene rendered into ``frame`` (body k of the frame = ``scene.people[k]``).
    rng : numpy.random.Generator
        Draws which people lose their dense annotation and seeds k-means.
    cfg : AnnotateConfig, optional

    Returns
    -------
    list of dict
        COCO annotation records without ``id`` and ``image_id``.
    """
    cfg = cfg or AnnotateConfig()
    out = []
    for k, person in enumerate(scene.people):
        if person.crowd >= 0:
            continue
        mask = frame.person == k
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        dense = area >= cfg.min_dense_area and rng.random() >= cfg.dense_drop
        out.append(_person_annotation(frame, scene, k, mask, area, dense, rng, cfg))
    groups = sorted({p.crowd for p in scene.people if p.crowd >= 0})
    for g in groups:
        members = [k for k, p in enumerate(scene.people) if p.crowd == g]
        mask = np.isin(frame.person, members)
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        x0, y0, w, h = tight_box(mask)
        out.append(
            {
                "category_id": 1,
                "iscrowd": 1,
                "bbox": [float(x0), float(y0), float(w), float(h)],
                "area": float(area),
                "segmentation": encode_rle(mask, compressed=False),
                "num_keypoints": 0,
                "keypoints": [0] * 51,
            }
        )
    return out


def _person_annotation(
    frame: Frame,
    scene: Scene,
    k: int,
    mask: np.ndarray,
    area: int,
    dense: bool,
    rng: np.random.Generator,
    cfg: AnnotateConfig,
) -> dict:
    x0, y0, w, h = tight_box(mask)
    kps, n_kp = _keypoints(frame, scene, k, cfg)
    ann = {
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [float(x0), float(y0), float(w), float(h)],
        "area": float(area),
        "segmentation": encode_rle(mask),
        "num_keypoints": n_kp,
        "keypoints": kps,
    }
    if not dense:
        return ann
    crop = mask[y0 : y0 + h, x0 : x0 + w]
    iuv = frame.iuv[y0 : y0 + h, x0 : x0 + w]
    coarse = np.where(crop, COARSE_OF_FINE[iuv[..., 0]], 0).astype(np.uint8)
    rows, cols = _sample_points(coarse, rng, cfg)
    if len(rows) == 0:
        return ann
    ann["dp_x"] = ((cols + 0.5) * 255.0 / w).tolist()
    ann["dp_y"] = ((rows + 0.5) * 255.0 / h).tolist()
    ann["dp_I"] = iuv[rows, cols, 0].astype(np.float64).tolist()
    ann["dp_U"] = (iuv[rows, cols, 1] / 255.0).tolist()
    ann["dp_V"] = (iuv[rows, cols, 2] / 255.0).tolist()
    ann["dp_masks"] = _dp_masks(coarse)
    return ann


def _sample_points(
    coarse: np.ndarray, rng: np.random.Generator, cfg: AnnotateConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (box-local) of the sampled points, part by part."""
    all_r, all_c = [], []
    for part in range(1, 15):
        rr, cc = np.nonzero(coarse == part)
        n = len(rr)
        if n == 0:
            continue
        k = min(cfg.max_points_per_part, -(-n // cfg.pixels_per_point))
        if n <= k:
            all_r.append(rr)
            all_c.append(cc)
            continue
        pts = np.stack([cc + 0.5, rr + 0.5], axis=1).astype(np.float64)
        sub = pts
        if n > cfg.kmeans_max_pixels:
            sub = pts[np.sort(rng.choice(n, cfg.kmeans_max_pixels, replace=False))]
        centres = np.ascontiguousarray(sub[rng.choice(len(sub), k, replace=False)])
        _kernels.kmeans_lloyd(np.ascontiguousarray(sub), centres, cfg.kmeans_iters)
        idx = _kernels.nearest_point(pts, centres)
        _, first = np.unique(idx, return_index=True)
        idx = idx[np.sort(first)]
        all_r.append(rr[idx])
        all_c.append(cc[idx])
    if not all_r:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(all_r), np.concatenate(all_c)


def _dp_masks(coarse: np.ndarray) -> list:
    """14 RLEs (``[]`` for absent parts) of the coarse label map on the 256 grid."""
    h, w = coarse.shape
    grid = coarse[dp_mask_grid(h)][:, dp_mask_grid(w)]
    out: list = []
    for part in range(1, 15):
        m = grid == part
        out.append(encode_rle(m) if m.any() else [])
    return out


def _keypoints(frame: Frame, scene: Scene, k: int, cfg: AnnotateConfig) -> tuple[list, int]:
    """COCO ``keypoints`` (51 values) and ``num_keypoints`` of body ``k``.

    v = 2 when the body itself is seen at (or next to) the keypoint's pixel, at most a
    tolerance in front of it; v = 1 inside the image but hidden; v = 0 (and x = y = 0)
    outside the image.
    """
    cam = scene.camera
    kp = scene.people[k].keypoints
    uv = cam.project(kp)
    h, w = frame.person.shape
    out: list = []
    n = 0
    for i in range(len(kp)):
        u, v = float(uv[i, 0]), float(uv[i, 1])
        if not (kp[i, 2] > 0 and 0 <= u < w and 0 <= v < h):
            out += [0, 0, 0]
            continue
        tol = cfg.surface_depth_tol if KEYPOINT_SURFACE[i] else cfg.joint_depth_tol
        px, py = int(u), int(v)
        ys, xs = slice(max(py - 1, 0), py + 2), slice(max(px - 1, 0), px + 2)
        own = frame.person[ys, xs] == k
        seen = own & (frame.depth[ys, xs] >= kp[i, 2] - tol)
        vis = 2 if seen.any() else 1
        out += [round(u, 2), round(v, 2), vis]
        n += 1
    return out, n


def add_cse_fields(anns: list[dict], template) -> list[dict]:
    """Add detectron2's CSE ground truth to dense annotations, in place.

    ``dp_vertex`` is the open template's vertex of each point: the 3D vertex of the
    nearest chart vertex of ``(dp_I, dp_U, dp_V)``, the very vertex the IUV evaluator
    uses as the point's GT, so IUV and CSE geodesic errors refer to the same vertices;
    ``ref_model`` is ``"open"``.
    """
    for ann in anns:
        if "dp_I" not in ann:
            continue
        v = template.closest_vertices(ann["dp_I"], ann["dp_U"], ann["dp_V"])
        ann["dp_vertex"] = [int(x) for x in v]
        ann["ref_model"] = "open"
    return anns
