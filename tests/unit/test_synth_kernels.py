"""Synth kernels against their NumPy twins; the rasteriser against ray casting."""

from __future__ import annotations

import numpy as np
import pytest

from dpeval.synth import _kernels, _reference
from dpeval.synth.pose import BodyModel, BodyShape
from dpeval.synth.render import Camera, Renderer, sample_material


@pytest.fixture(scope="module")
def model(open_template):
    return BodyModel(open_template)


def _raster_both(verts, faces, cam, offset=0):
    out = []
    for mod in (_kernels, _reference):
        z = np.full((cam.height, cam.width), np.inf)
        f = np.full((cam.height, cam.width), -1, dtype=np.int32)
        b = np.zeros((cam.height, cam.width, 3))
        mod.rasterize(verts, faces, cam.fx, cam.fy, cam.cx, cam.cy, offset, z, f, b)
        out.append((z, f, b))
    return out


def _check_same(k, r):
    (zk, fk, bk), (zr, fr, br) = k, r
    np.testing.assert_array_equal(fk, fr)
    hit = fk >= 0
    assert hit.any()
    np.testing.assert_allclose(bk[hit], br[hit], atol=1e-6, rtol=0)
    np.testing.assert_allclose(zk[hit], zr[hit], rtol=1e-9)
    assert np.isinf(zk[~hit]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rasterize_matches_ray_casting_random_triangles(seed):
    rng = np.random.default_rng(seed)
    n = 40
    centre = rng.uniform([-0.6, -0.5, 1.5], [0.6, 0.5, 3.0], (n, 1, 3))
    verts = (centre + rng.normal(0, 0.25, (n, 3, 3))).reshape(-1, 3)
    faces = np.arange(3 * n, dtype=np.int64).reshape(n, 3)
    cam = Camera(37, 29, 30.0, 32.0, 18.3, 14.1)
    k, r = _raster_both(verts, faces, cam, offset=5)
    _check_same(k, r)
    assert (k[1][k[1] >= 0] >= 5).all()


def test_rasterize_matches_ray_casting_posed_body(model):
    rng = np.random.default_rng(7)
    verts, _ = model.skin(BodyShape.sample(rng), model.sample_pose(rng, "free"))
    verts = verts * [1, -1, -1] + [0.05, 0.85, 2.6]
    cam = Camera(24, 36, 20.0, 20.0, 12.0, 18.0)
    _check_same(*_raster_both(verts, model.faces, cam))


def test_rasterize_skips_faces_behind_the_near_plane():
    verts = np.array([[-1.0, -1, 0.01], [1, -1, 2], [0, 1, 2]])
    cam = Camera(8, 8, 4.0, 4.0, 4.0, 4.0)
    k, r = _raster_both(verts, np.array([[0, 1, 2]]), cam)
    assert (k[1] == -1).all() and (r[1] == -1).all()


def test_skin_and_normals_match_twins(model):
    rng = np.random.default_rng(3)
    mats = model.joint_matrices(BodyShape.sample(rng), model.sample_pose(rng))
    outs = []
    for mod in (_kernels, _reference):
        v = np.empty_like(model.rest)
        mod.skin_vertices(model.rest, model.skin_joint, model.skin_weight, mats, v)
        n = np.empty_like(v)
        mod.vertex_normals(v, model.faces, n)
        outs.append((v, n))
    np.testing.assert_allclose(outs[0][0], outs[1][0], atol=1e-12)
    np.testing.assert_allclose(outs[0][1], outs[1][1], atol=1e-9)


def test_shade_matches_twin(open_template, model):
    rng = np.random.default_rng(11)
    r = Renderer(open_template)
    cam = Camera(48, 40, 40.0, 40.0, 24.0, 20.0)
    bodies = []
    for x in (-0.3, 0.35):
        v, _ = model.skin(BodyShape.sample(rng), model.sample_pose(rng))
        bodies.append(v * [1, -1, -1] + [x, 0.9, 3.5])
    _, fid, bary = r.rasterize(cam, bodies)
    normals = np.empty((2 * r.n_verts, 3))
    for k, v in enumerate(bodies):
        _kernels.vertex_normals(v, r.faces, normals[k * r.n_verts : (k + 1) * r.n_verts])
    mats = np.stack([sample_material(rng) for _ in bodies])
    mats[0, 20] = 1.0  # stripes
    mats[1, 20] = 2.0  # checker
    light = np.array([0.3, -0.4, -0.866, 0.3, 0.7])
    outs = []
    for mod in (_kernels, _reference):
        img = np.full((cam.height, cam.width, 3), 7, dtype=np.uint8)
        iuv = np.zeros_like(img)
        person = np.full((cam.height, cam.width), -1, dtype=np.int16)
        args = (r.n_faces, r.n_verts, r.faces, r.face_part, r.chart_faces, r.chart_uv, r.rest)
        mod.shade(fid, bary, *args, normals, mats, light, img, iuv, person)
        outs.append((img, iuv, person))
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_array_equal(outs[0][2], outs[1][2])
    assert np.abs(outs[0][0].astype(int) - outs[1][0].astype(int)).max() <= 1
    assert set(np.unique(outs[0][2])) == {-1, 0, 1}


def test_background_and_noise_match_twins():
    rng = np.random.default_rng(5)
    noise = rng.uniform(0.7, 1.3, (4, 5, 3))
    args = (9.5, rng.random(3), rng.random(3), rng.random(3), rng.random(3))
    for tile in (0.0, 0.7):
        a = np.zeros((17, 23, 3), dtype=np.uint8)
        b = np.zeros_like(a)
        _kernels.draw_background(a, *args, tile, noise, 20.0, 11.0)
        _reference.draw_background(b, *args, tile, noise, 20.0, 11.0)
        np.testing.assert_array_equal(a, b)
    img = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    a, b = img.copy(), img.copy()
    _kernels.add_noise(a, 4.0, 12345)
    _reference.add_noise(b, 4.0, 12345)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img)


def test_kmeans_and_nearest_match_twins():
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 50, (300, 2))
    init = pts[:7].copy()
    a, b = init.copy(), init.copy()
    _kernels.kmeans_lloyd(pts, a, 8)
    _reference.kmeans_lloyd(pts, b, 8)
    np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_array_equal(_kernels.nearest_point(pts, a), _reference.nearest_point(pts, a))
