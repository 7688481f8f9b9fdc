"""CSE stage: predictions made from ground truth, for tests and demos (no model needed).

In: CSE ground truth (``dp_vertex``) and vertex embeddings of its meshes (e.g.
:func:`open_embeddings`, the spectral embeddings of the open template). Out:
:class:`~dpeval.formats.cse.CsePredictions` with one detection per dense person, on its
GT box, whose maps are box-sized (so the bilinear resize is the identity):

- ``embedding``: at each GT point's pixel, the embedding of its GT vertex (plus optional
  Gaussian noise); every other pixel copies the nearest point's;
- ``coarse_segm``: foreground exactly on the GT mask of the protocol's rule (the
  ``dp_masks`` decode, else ``segmentation``) and on every GT point's pixel.

With ``noise=0`` these are perfect predictions: every GPS, GPSm and IoU number is 1
(when the GT mask contains every point, as for boxes the 256 grid reproduces).
"""

from __future__ import annotations

import functools

import numpy as np

from ..formats.cse import CseDetection, CsePredictions
from ..formats.model import GroundTruth
from .embed import box_size, spectral_embeddings
from .score import _gt_mask

__all__ = ["open_embeddings", "perfect_predictions"]


@functools.lru_cache(maxsize=4)
def open_embeddings(dim: int = 16) -> np.ndarray:
    """``(V, dim)`` float32 spectral vertex embeddings of the open template (read-only)."""
    from ..template import load_template

    t = load_template("open")
    e = spectral_embeddings(t.vertices, t.faces, dim)
    e.flags.writeable = False
    return e


def perfect_predictions(
    gt: GroundTruth,
    embeddings: dict[str, np.ndarray],
    *,
    protocol: str = "detectron2",
    noise: float = 0.0,
    seed: int = 0,
) -> CsePredictions:
    """Box-sized CSE maps that reproduce the ground truth (see the module docstring).

    Parameters
    ----------
    gt : GroundTruth
        With ``dp_vertex``/``ref_model`` on every dense annotation.
    embeddings : {mesh name: (V, D) array}
    noise : float
        Standard deviation of Gaussian noise added to every embedding value.
    seed : int

    Returns
    -------
    CsePredictions
    """
    rng = np.random.default_rng(seed)
    dets = []
    for a in gt.annotations:
        if not a.has_dense or a.dp_vertex is None or a.n_points == 0:
            continue
        info = gt.images[a.image_id]
        e = np.asarray(embeddings[a.ref_model], dtype=np.float32)  # type: ignore[index]
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        bh, bw = box_size(a.bbox)
        col = np.trunc((gx + a.dp_x * gw / 255.0) - gx).astype(np.int64)  # type: ignore[operator]
        row = np.trunc((gy + a.dp_y * gh / 255.0) - gy).astype(np.int64)  # type: ignore[operator]
        ok = (col >= 0) & (row >= 0) & (col < bw) & (row < bh) & (a.dp_vertex >= 0)
        col, row, vert = col[ok], row[ok], a.dp_vertex[ok]
        fg = np.zeros((bh, bw), dtype=bool)
        m = _gt_mask(a, info.height, info.width, protocol)
        if m.area:
            x0, y0 = m.x0 - int(gx), m.y0 - int(gy)
            hh, ww = m.mask.shape
            ys, xs = slice(max(y0, 0), min(y0 + hh, bh)), slice(max(x0, 0), min(x0 + ww, bw))
            fg[ys, xs] = m.mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        fg[row, col] = True
        coarse = np.stack([~fg, fg]).astype(np.float32)
        if len(vert):
            # every pixel copies its nearest point (a box-local Voronoi fill)
            from scipy.spatial import cKDTree

            rr, cc = np.mgrid[0:bh, 0:bw]
            _, nearest = cKDTree(np.c_[row, col]).query(np.c_[rr.ravel(), cc.ravel()])
            emb = e[vert[nearest]].T.reshape(-1, bh, bw).copy()
            emb[:, row, col] = e[vert].T
        else:
            emb = np.zeros((e.shape[1], bh, bw), np.float32)
        if noise:
            emb = emb + rng.normal(0.0, noise, emb.shape).astype(np.float32)
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        emb.flags.writeable = coarse.flags.writeable = False
        dets.append(
            CseDetection(
                image_id=a.image_id,
                category_id=a.category_id,
                bbox=np.asarray(a.bbox, dtype=np.float64),
                score=1.0 - 1e-6 * len(dets),
                shape=(2, emb.shape[0], bh, bw),
                index=len(dets),
                where=f"demo detection {len(dets)}",
                _maps=(coarse, emb),
            )
        )
    return CsePredictions(tuple(dets), format="d2-cse", source="<demo>")
