"""dpeval in legacy mode vs a slow transcription of the official GPS computation.

The official evaluator (DensePose ``densepose_cocoeval.py``, spec §1.3, §2, §3) reads
``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat`` and the condensed ``Pdist_matrix``;
finds each point's closest chart vertex per part with ``cdist`` + ``argmin``; maps it
through ``index``; and looks distances up with ``P[a(a-1)/2 + b]``. The reference below
does exactly that, point by point, reading the files with scipy/pickle itself. dpeval
reads the same exported files through its own loader and must give the same GPS for
every (GT, detection) pair and the same per-point distances.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from _cases import make_case, records
from _templates import make_tiny_template
from scipy.io import loadmat
from scipy.spatial.distance import cdist

from dpeval.evaluation import prepare
from dpeval.params import KAPPA_PER_PART
from dpeval.template import export_template, load_template


class OfficialStyle:
    """Point-by-point GPS as the official code computes it (slow, loop based)."""

    def __init__(self, directory) -> None:
        sub = loadmat(directory / "SMPL_subdiv.mat")
        self.u = sub["U_subdiv"].squeeze()
        self.v = sub["V_subdiv"].squeeze()
        self.part = sub["Part_ID_subdiv"].squeeze()
        self.index = loadmat(directory / "SMPL_SUBDIV_TRANSFORM.mat")["index"].squeeze()
        with open(directory / "Pdist_matrix.pkl", "rb") as fh:
            self.pdist = pickle.load(fh, encoding="latin1")["Pdist_matrix"]

    def closest(self, parts, us, vs):
        out = np.full(len(parts), -1.0)
        for i in range(1, 25):
            sel = parts == i
            if not sel.any():
                continue
            ids = np.flatnonzero(self.part == i)
            d = cdist(np.array([self.u[ids], self.v[ids]]).T, np.array([us[sel], vs[sel]]).T)
            out[sel] = ids[np.argmin(d, axis=0)] + 1  # 1-based chart vertex
        return out

    def distances(self, cv_gt, cv_pred):
        tg = np.where(cv_gt > 0, self.index[np.maximum(cv_gt, 1).astype(int) - 1], 0)
        tp = np.where(cv_pred > 0, self.index[np.maximum(cv_pred, 1).astype(int) - 1], 0)
        out = []
        for g, p in zip(tg.astype(int), tp.astype(int), strict=True):
            if g <= 0:
                continue  # dropped from the mean
            if p <= 0:
                out.append(np.inf)
            elif g == p:
                out.append(0.0)
            else:
                a, b = max(g, p) - 1, min(g, p) - 1
                out.append(float(self.pdist[a * (a - 1) // 2 + b][0]))
        return np.array(out)

    def gps(self, ann, det_box, iuv):
        gx, gy, gw, gh = ann["bbox"]
        dx, dy, dw, dh = det_box
        parts = np.zeros(len(ann["dp_x"]), dtype=int)
        us = np.zeros(len(parts))
        vs = np.zeros(len(parts))
        for k, (px, py) in enumerate(zip(ann["dp_x"], ann["dp_y"], strict=True)):
            col = int(gx + px * gw / 255.0 - dx)
            row = int(gy + py * gh / 255.0 - dy)
            if col < 0 or row < 0 or col >= dw or row >= dh:
                continue  # outside: I = 0
            parts[k] = iuv[0, row, col]
            us[k] = iuv[1, row, col] / 255.0
            vs[k] = iuv[2, row, col] / 255.0
        cv_pred = self.closest(parts, us, vs)
        gt_parts = np.array(ann["dp_I"], dtype=int)
        cv_gt = self.closest(gt_parts, np.array(ann["dp_U"]), np.array(ann["dp_V"]))
        d = self.distances(cv_gt, cv_pred)
        kappa = np.array(KAPPA_PER_PART)[gt_parts[cv_gt > 0]]
        return float(np.mean(np.exp(-(d**2) / (2 * kappa**2)))), d


def euclid_condensed(t) -> np.ndarray:
    v = np.asarray(t.vertices, dtype=np.float64)
    n = len(v)
    a, b = np.tril_indices(n, -1)  # row-major strict lower triangle: a > b, a(a-1)/2 + b
    return np.linalg.norm(v[a] - v[b], axis=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tiny = make_tiny_template(subdivisions=3)
    d = tmp_path_factory.mktemp("official")
    export_template(tiny, d, distances=euclid_condensed(tiny))
    return d


def noisy_case(seed):
    """Random GT on the tiny template's parts 1..8 and imperfect detections."""
    gt, dets = make_case(seed=seed, n_images=3, points=40)
    rng = np.random.default_rng(seed)
    for a in gt["annotations"]:
        if "dp_I" in a:
            a["dp_I"] = rng.integers(1, 9, len(a["dp_I"])).astype(float).tolist()
            a["dp_U"] = rng.random(len(a["dp_I"])).tolist()
            a["dp_V"] = rng.random(len(a["dp_I"])).tolist()
    noisy = []
    for img, box, score, iuv in dets:
        iuv = iuv.copy()
        iuv[0] = rng.integers(0, 9, iuv[0].shape)  # parts 0..8, 0 = background
        iuv[1:] = rng.integers(0, 256, iuv[1:].shape)
        box = [box[0] + rng.normal(0, 3), box[1] + rng.normal(0, 3), box[2], box[3]]
        noisy.append((img, box, score, iuv))
    return gt, noisy


@pytest.mark.parametrize("seed", [0, 1])
def test_gps_equals_official_style_reference(exported, seed):
    from dpeval.geodesic import GeodesicSolver

    template = load_template(exported)
    assert template.pdist is not None
    ref = OfficialStyle(exported)
    gt_dict, dets = noisy_case(seed)
    gt, preds = records(gt_dict, dets)
    solver = GeodesicSolver(template, mode="legacy")
    sims = prepare(preds, gt, template, solver, with_masks=False, workers=1)
    checked = 0
    for s in sims.images:
        for j, g in enumerate(s.gt_index):
            ann = gt_dict["annotations"][g]
            if "dp_x" not in ann:
                continue
            for k, d in enumerate(s.det_index):
                _, box, _, iuv = dets[d]
                expected, _ = ref.gps(ann, box, iuv)
                assert s.gps_per_part[k, j] == pytest.approx(expected, rel=1e-12, abs=1e-15)
                checked += 1
    assert checked > 10
