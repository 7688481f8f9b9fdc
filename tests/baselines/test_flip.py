"""Horizontal-flip augmentation: the relabelled (I, U, V) must name the mirror surface point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.common.flip import (
    COARSE_MIRROR,
    build_uv_mirror_lut,
    flip_dense_points,
    flip_item,
    flip_iuv,
    uv_mirror_lut,
)
from dpeval.template import MIRROR_PART, load_template


@pytest.fixture(scope="module")
def built_lut():
    """The table built now (not the cached copy the augmentation reads), checked against it."""
    lut = build_uv_mirror_lut()
    assert np.array_equal(lut, uv_mirror_lut())
    return lut


@pytest.fixture(scope="module")
def chart_points():
    """Random points inside every chart face: (part, U8, V8) and the face's 3D corners."""
    t = load_template("open")
    rng = np.random.default_rng(0)
    w = rng.dirichlet([1, 1, 1], size=len(t.chart_faces))
    uv = (t.chart_uv[t.chart_faces] * w[:, :, None]).sum(1)
    q = np.clip(np.round(uv * 255), 0, 255).astype(np.int64)
    return t, np.asarray(t.face_part), q


def test_lut_is_an_involution(chart_points, built_lut):
    _, part, q = chart_points
    lut = built_lut
    mp = np.asarray(MIRROR_PART)[part]
    m = lut[part, q[:, 0], q[:, 1]].astype(np.int64)
    back = lut[mp, m[:, 0], m[:, 1]].astype(np.int64)
    err = np.abs(back - q).max(1)
    assert np.percentile(err, 99) <= 1 and err.max() <= 3


def test_lut_maps_to_the_mirror_vertex(chart_points, built_lut):
    # independent of the table's construction: the 3D point named by the flipped label is
    # the mirror (template.mirror) of the point named by the original label
    t, part, q = chart_points
    lut = built_lut
    sel = np.arange(0, len(part), 7)
    p, qq = part[sel], q[sel]
    mp = np.asarray(MIRROR_PART)[p]
    m = lut[p, qq[:, 0], qq[:, 1]]
    a = t.closest_vertices(p, qq[:, 0] / 255.0, qq[:, 1] / 255.0)
    b = t.closest_vertices(mp, m[:, 0] / 255.0, m[:, 1] / 255.0)
    d = np.linalg.norm(t.vertices[np.asarray(t.mirror)[a]] - t.vertices[b], axis=1)
    assert np.median(d) < 0.01 and np.percentile(d, 95) < 0.03, (np.median(d), d.max())
    # and it is not trivially the identity: the torso's (U, V) change (on the open
    # template the limbs, hands, feet and head keep theirs)
    moved = (m.astype(int) != qq).any(1)
    assert moved[np.isin(p, [1, 2])].mean() > 0.5
    assert not moved[~np.isin(p, [1, 2, 3, 4, 5, 6])].any()


def test_flip_iuv_and_item_round_trip(synth_tiny):
    from baselines.common.data import SynthDataset

    item = SynthDataset(synth_tiny, "train")[0]
    iuv = item["iuv"]
    f = flip_iuv(iuv)
    assert torch.equal(f[0], torch.tensor(MIRROR_PART, dtype=torch.uint8)[iuv[0].long()].flip(-1))
    assert torch.equal(f[0] > 0, iuv[0].flip(-1) > 0) and int(f[1][f[0] == 0].max()) == 0
    back = flip_iuv(f)
    assert torch.equal(back[0], iuv[0])
    assert (back[1:].int() - iuv[1:].int()).abs().max() <= 3
    w = item["width"]
    g = flip_item(flip_item(item))
    assert torch.equal(g["image"], item["image"]) and torch.equal(g["boxes"], item["boxes"])
    assert torch.equal(g["masks"], item["masks"])
    f1 = flip_item(item)
    assert torch.allclose(f1["boxes"][:, 0], w - item["boxes"][:, 2])
    for d0, d1 in zip(item["dp"], f1["dp"], strict=True):
        if d0 is None:
            continue
        assert torch.allclose(d1["x"], w - d0["x"]) and torch.equal(d1["y"], d0["y"])
        assert torch.equal(d1["I"], torch.tensor(MIRROR_PART)[d0["I"]])
        assert torch.equal(d1["dp_masks"], torch.from_numpy(COARSE_MIRROR)[
            d0["dp_masks"].long().flip(-1)].to(torch.uint8))  # fmt: skip


def test_coarse_mirror_matches_fine_mirror():
    from dpeval.synth.annotate import COARSE_OF_FINE

    fine = np.arange(25)
    assert np.array_equal(COARSE_MIRROR[COARSE_OF_FINE[fine]],
                          COARSE_OF_FINE[np.asarray(MIRROR_PART)[fine]])  # fmt: skip


def test_flip_points_limbs_keep_uv():
    dp = {"x": torch.tensor([10.0]), "y": torch.tensor([5.0]), "I": torch.tensor([7]),
          "U": torch.tensor([0.25]), "V": torch.tensor([0.75]), "dp_masks": None}  # fmt: skip
    f = flip_dense_points(dp, 100)
    assert float(f["x"]) == 90.0 and int(f["I"]) == 8
    assert float(f["U"]) == pytest.approx(0.25, abs=1 / 255) and float(f["V"]) == pytest.approx(
        0.75, abs=1 / 255
    )
