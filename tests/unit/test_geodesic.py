"""Tests of dpeval.geodesic: analytic cases, exactness against MMP, paths, cache, errors."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from dpeval.errors import GeodesicError
from dpeval.geodesic import (
    ENGINE_VERSION,
    QUANT_MAX,
    GeodesicSolver,
    _kernels,
    _reference,
    geodesic_distance,
)
from dpeval.geodesic.table import quantize

# --------------------------------------------------------------------------- meshes


def grid_mesh(n: int = 12, step: float = 0.01, seed: int = 0, jitter: float = 0.0):
    """Flat n x n grid in the z = 0 plane with random diagonals (convex domain)."""
    rng = np.random.default_rng(seed)
    ij = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    p = np.c_[ij * step, np.zeros(len(ij))]
    if jitter:
        inner = (ij > 0).all(1) & (ij < n - 1).all(1)
        p[inner, :2] += rng.uniform(-jitter, jitter, (inner.sum(), 2)) * step
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b = i * n + j, (i + 1) * n + j
            c, d = b + 1, a + 1
            faces += [[a, b, c], [a, c, d]] if rng.random() < 0.5 else [[a, b, d], [b, c, d]]
    return p, np.array(faces)


def bumpy_sphere(subdivisions: int = 2, seed: int = 0):
    """Icosphere with random radii: saddles, convex vertices, no symmetry."""
    trimesh = pytest.importorskip("trimesh")
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    rng = np.random.default_rng(seed)
    v = np.asarray(m.vertices) * (1.0 + 0.25 * rng.random((len(m.vertices), 1)))
    return v, np.asarray(m.faces)


def fake_template(vertices, faces, *, checksum="c0ffee", pdist=None, tid="fake"):
    return types.SimpleNamespace(
        vertices=np.asarray(vertices),
        faces=np.asarray(faces),
        checksum=checksum,
        id=tid,
        pdist=pdist,
    )


@pytest.fixture(scope="module")
def body_solver(open_template):
    return GeodesicSolver(open_template, cache=False, mode="engine")


# --------------------------------------------------------------------------- analytic


def test_flat_grid_equals_euclidean():
    for jitter in (0.0, 0.3):
        v, f = grid_mesh(14, jitter=jitter, seed=3)
        s = GeodesicSolver.from_mesh(v, f)
        for src in (0, 7, 97, len(v) - 1):
            d = s.field(src)
            np.testing.assert_allclose(d, np.linalg.norm(v - v[src], axis=1), rtol=0, atol=1e-9)


def test_icosphere_matches_great_circle():
    trimesh = pytest.importorskip("trimesh")
    m = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    v = np.asarray(m.vertices)
    s = GeodesicSolver.from_mesh(v, m.faces)
    src = np.arange(0, len(v), 211)
    d = np.stack([s.field(i) for i in src])
    truth = np.arccos(np.clip(v[src] @ v.T, -1.0, 1.0))
    far = truth > 0.05
    rel = (d[far] - truth[far]) / truth[far]
    # polyhedral geodesics on ico4 are about 0.06 % shorter than great circles
    assert np.abs(rel).mean() < 0.002
    assert np.percentile(np.abs(rel), 99) < 0.01
    assert rel.min() > -0.003


# --------------------------------------------------------------------------- accuracy


def test_body_matches_exact_mmp(open_template, body_solver):
    pygeodesic = pytest.importorskip("pygeodesic.geodesic")
    v = np.asarray(open_template.vertices, dtype=np.float64)
    f = np.asarray(open_template.faces, dtype=np.int32)
    exact = pygeodesic.PyGeodesicAlgorithmExact(v, f)
    rng = np.random.default_rng(2024)
    rel, near = [], []
    for src in rng.choice(len(v), 4, replace=False):
        truth, _ = exact.geodesicDistances(np.array([src]), None)
        d = body_solver.field(int(src))
        far = truth > 0.02
        rel.append((d[far] - truth[far]) / truth[far])
        close = (truth <= 0.02) & (truth > 0)
        near.append(np.abs(d[close] - truth[close]))
    rel = np.abs(np.concatenate(rel))
    near = np.concatenate(near)
    assert rel.mean() <= 0.002
    assert np.percentile(rel, 99) <= 0.01
    assert near.max() <= 0.001


def test_kernel_equals_reference_twin():
    v, f = bumpy_sphere(2)
    s = GeodesicSolver.from_mesh(v, f)
    args = s._mesh.kernel_args()
    for src in (0, 13, 161):
        d_kernel = s.field(src)
        d_ref, _ = _reference.geodesic_field(src, *args)
        np.testing.assert_array_equal(d_kernel, d_ref)


def test_engine_beats_edge_dijkstra_and_bounds_it():
    v, f = bumpy_sphere(3, seed=5)
    s = GeodesicSolver.from_mesh(v, f)
    src = np.array([0, 100, 500])
    dij = _reference.edge_dijkstra(v, f, src)
    d = np.stack([s.field(int(i)) for i in src])
    assert (d <= dij + 1e-12).all()  # paths across faces are never longer than edge paths
    assert (d < dij - 1e-9).mean() > 0.5


# --------------------------------------------------------------------------- pairs


def test_pairs_symmetric_and_zero_diagonal(body_solver):
    rng = np.random.default_rng(7)
    a = rng.integers(0, body_solver.n_vertices, 200)
    b = rng.integers(0, body_solver.n_vertices, 200)
    np.testing.assert_array_equal(body_solver.pairs(a, b), body_solver.pairs(b, a))
    assert (body_solver.pairs(a, a) == 0.0).all()


def test_pairs_use_larger_id_as_source(body_solver):
    field = body_solver.field(9000)
    targets = np.array([0, 10, 4000, 8999])
    want = quantize(field[targets], body_solver.quant_scale)  # the table's values
    np.testing.assert_array_equal(body_solver.pairs(np.full(4, 9000), targets), want)
    np.testing.assert_array_equal(body_solver.pairs(targets, np.full(4, 9000)), want)


def test_early_stopped_pairs_equal_full_fields(body_solver):
    """Grouped pairs stop each field once its targets are settled; the values must be
    those of the full field, for near and far targets alike."""
    rng = np.random.default_rng(11)
    nv = body_solver.n_vertices
    srcs = rng.choice(np.arange(nv // 2, nv), 60, replace=False)
    a, b, expected = [], [], []
    for s in srcs:
        full = body_solver.field(int(s))
        order = np.argsort(full)
        for rank in (1, 4, 30, 300, 3000, int(rng.integers(1, nv))):
            t = int(order[rank])
            if t < s:  # the pair's source is max(a, b) = s
                a.append(int(s))
                b.append(t)
                expected.append(full[t])
    got = body_solver._grouped(np.array(a), np.array(b))
    np.testing.assert_array_equal(got, np.array(expected))
    assert len(a) > 150


def test_pairs_keep_shape_and_accept_int32():
    v, f = grid_mesh(6)
    s = GeodesicSolver.from_mesh(v, f)
    a = np.array([[0, 1], [2, 3]], np.int32)
    b = np.array([[5, 5], [5, 35]], np.int32)
    out = s.pairs(a, b)
    assert out.shape == (2, 2) and out.dtype == np.float64
    step = s.quant_scale  # pairs are rounded to the table's step
    np.testing.assert_allclose(out, np.linalg.norm(v[a] - v[b], axis=-1), atol=step / 2)
    np.testing.assert_array_equal(out, quantize(np.linalg.norm(v[a] - v[b], axis=-1), step))


def test_parallel_equals_serial(tmp_path):
    v, f = bumpy_sphere(2, seed=1)
    rng = np.random.default_rng(0)
    a = rng.integers(0, len(v), 3000)
    b = rng.integers(0, len(v), 3000)
    one = GeodesicSolver(fake_template(v, f), cache=False, threads=1).pairs(a, b)
    two = GeodesicSolver(fake_template(v, f), cache=False, threads=2).pairs(a, b)
    np.testing.assert_array_equal(one, two)
    t1 = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path / "1", threads=1)
    t2 = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path / "2", threads=2)
    t1.precompute()
    t2.precompute()
    np.testing.assert_array_equal(np.load(t1.cache_path()), np.load(t2.cache_path()))


def test_group_by_source_matches_twin():
    rng = np.random.default_rng(3)
    hi = rng.integers(0, 50, 1000).astype(np.int32)
    lo = np.minimum(hi, rng.integers(0, 50, 1000)).astype(np.int32)
    ptr, perm = _kernels.group_by_source(hi, lo, 50)
    ptr_r, perm_r = _reference.group_by_source(hi, lo, 50)
    np.testing.assert_array_equal(ptr, ptr_r)
    np.testing.assert_array_equal(perm, perm_r)


def test_disconnected_parts_are_infinitely_far(tmp_path):
    v1, f1 = grid_mesh(5, seed=1)
    v2, f2 = grid_mesh(5, seed=2)
    v = np.r_[v1, v2 + np.array([0.0, 0.0, 1.0])]
    f = np.r_[f1, f2 + len(v1)]
    a = np.array([0, 3, 30, 40, 26])
    b = np.array([24, 40, 49, 41, 0])
    grouped = GeodesicSolver(fake_template(v, f), cache=False).pairs(a, b)
    assert np.isinf(grouped[[1, 4]]).all() and np.isfinite(grouped[[0, 2, 3]]).all()
    cached = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path)
    cached.precompute()
    from_table = cached.pairs(a, b)
    np.testing.assert_array_equal(np.isinf(from_table), np.isinf(grouped))
    fin = np.isfinite(grouped)
    assert np.abs(from_table[fin] - grouped[fin]).max() <= cached._scale / 2 + 1e-12


# --------------------------------------------------------------------------- legacy


def _legacy_table(nv: int) -> np.ndarray:
    n = nv * (nv - 1) // 2
    return (np.arange(n, dtype=np.float32) + 1.0) * np.float32(0.001)


def test_legacy_uses_official_index_rule():
    v, f = grid_mesh(4)  # 16 vertices
    table = _legacy_table(16)
    s = GeodesicSolver(fake_template(v, f, pdist=table), mode="auto")
    assert s.mode == "legacy"
    a = np.array([3, 0, 15, 7, 9])
    b = np.array([1, 2, 14, 7, 15])
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    expected = table[hi * (hi - 1) // 2 + lo].astype(np.float64)
    expected[a == b] = 0.0
    got = s.pairs(a, b)
    np.testing.assert_array_equal(got, expected)
    assert got[0] == np.float64(table[3 * 2 // 2 + 1])  # P[a(a-1)/2 + b], not squareform order
    np.testing.assert_array_equal(got, _reference.lookup_condensed(table, a, b, 1.0, -1))


def test_legacy_accepts_column_table_and_engine_ignores_it():
    v, f = grid_mesh(4)
    table = _legacy_table(16).reshape(-1, 1)
    legacy = GeodesicSolver(fake_template(v, f, pdist=table), mode="legacy")
    assert legacy.pairs([5], [2])[0] == np.float64(table[5 * 4 // 2 + 2, 0])
    engine = GeodesicSolver(fake_template(v, f, pdist=table), mode="engine", cache=False)
    assert engine.mode == "engine"
    assert engine.pairs([5], [2])[0] == pytest.approx(
        np.linalg.norm(v[5] - v[2]), abs=engine.quant_scale / 2
    )


def test_legacy_errors():
    v, f = grid_mesh(4)
    with pytest.raises(GeodesicError, match="legacy"):
        GeodesicSolver(fake_template(v, f), mode="legacy")
    with pytest.raises(GeodesicError, match="V\\(V-1\\)/2"):
        GeodesicSolver(fake_template(v, f, pdist=np.zeros(7)), mode="legacy")


# --------------------------------------------------------------------------- cache


def test_cache_round_trip(tmp_path, monkeypatch):
    v, f = bumpy_sphere(2, seed=2)
    nv = len(v)
    first = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path)
    path = first.precompute()
    assert path.exists() and path.with_suffix(".json").exists()
    assert first.checksum[:20] in path.name and ENGINE_VERSION in path.name
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["checksum"] == "c0ffee" and meta["engine_version"] == ENGINE_VERSION
    table = np.load(path)
    assert table.dtype == np.uint16 and table.shape == (nv * (nv - 1) // 2,)
    scale = meta["scale"]
    # the table is the quantised field of the larger id, in the official order
    np.testing.assert_array_equal(
        table, _reference.fill_condensed(first._mesh.kernel_args(), scale)
    )

    second = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path)

    def no_build(*_args, **_kw):  # pragma: no cover - must not be reached
        raise AssertionError("table rebuilt although a valid cache exists")

    monkeypatch.setattr(second, "_build_table", no_build)
    a, b = np.triu_indices(nv, 1)
    from_table = second.pairs(a, b)
    exact = GeodesicSolver(fake_template(v, f), cache=False).pairs(a, b)
    assert np.abs(from_table - exact).max() <= scale / 2 + 1e-12
    assert from_table.max() <= QUANT_MAX * scale


def test_cache_invalidated_by_checksum_and_bad_files(tmp_path):
    v, f = bumpy_sphere(2, seed=2)
    s1 = GeodesicSolver(fake_template(v, f, checksum="aaaa"), cache_dir=tmp_path)
    p1 = s1.precompute()
    s2 = GeodesicSolver(fake_template(v, f, checksum="bbbb"), cache_dir=tmp_path)
    assert s2.cache_path() != p1
    assert not s2._open_table(verify=True)  # another template's table is never used
    p2 = s2.precompute()
    assert p2.exists() and p1.exists()

    # a sidecar with another engine version is not trusted: recomputed and overwritten
    meta = json.loads(p1.with_suffix(".json").read_text())
    meta["engine_version"] = "old"
    p1.with_suffix(".json").write_text(json.dumps(meta))
    s3 = GeodesicSolver(fake_template(v, f, checksum="aaaa"), cache_dir=tmp_path)
    assert not s3._open_table(verify=True)
    s3.precompute()
    assert json.loads(p1.with_suffix(".json").read_text())["engine_version"] == ENGINE_VERSION

    # corrupted values fail the spot check and are rebuilt
    good = np.load(p1).copy()
    bad = np.lib.format.open_memmap(p1, mode="r+")
    bad[-5:] = 7
    bad.flush()
    del bad
    s4 = GeodesicSolver(fake_template(v, f, checksum="aaaa"), cache_dir=tmp_path)
    s4.precompute()
    np.testing.assert_array_equal(np.load(p1), good)

    # a truncated file is not trusted either
    p1.write_bytes(p1.read_bytes()[:200])
    s5 = GeodesicSolver(fake_template(v, f, checksum="aaaa"), cache_dir=tmp_path)
    s5.precompute()
    np.testing.assert_array_equal(np.load(p1), good)


def test_many_sources_build_table_few_do_not(tmp_path):
    v, f = bumpy_sphere(2, seed=4)
    s = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path)
    s.pairs([1, 2], [0, 0])
    assert not s.cache_path().exists()
    a, b = np.triu_indices(len(v), 1)
    s.pairs(a, b)
    assert s.cache_path().exists()
    off = GeodesicSolver(fake_template(v, f), cache=False, cache_dir=tmp_path / "x")
    off.pairs(a, b)
    assert not (tmp_path / "x").exists()
    with pytest.raises(GeodesicError, match="cache=True"):
        off.precompute()


def test_geodesic_distance_one_off(open_template, body_solver, tmp_path, monkeypatch):
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(tmp_path))
    assert geodesic_distance(open_template, 12, 12) == 0.0
    d = geodesic_distance(open_template, [100, 5], [7, 5])
    np.testing.assert_array_equal(d, body_solver.pairs([100, 5], [7, 5]))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("vertices", "faces", "match"),
    [
        (np.zeros((4, 2)), [[0, 1, 2]], "expected \\(V, 3\\)"),
        (np.eye(3), [[0, 1]], "expected \\(F, 3\\)"),
        (np.eye(3), np.zeros((0, 3), int), "at least one triangle"),
        (np.eye(3), [[0.0, 1.0, 2.0]], "integer"),
        (np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), [[0, 1, 2]], "finite"),
        (np.eye(3), [[0, 1, 3]], "ids in \\[0, 2\\]"),
        (np.eye(3), [[0, 1, -1]], "ids in \\[0, 2\\]"),
        (np.eye(3), [[0, 1, 1]], "repeats a vertex"),
        (np.r_[np.eye(3), [[1, 1, 1]]], [[0, 1, 2]], "belongs to no face"),
        (np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]]), [[0, 1, 2]], "zero-length"),
        (np.r_[np.eye(3), [[1, 1, 1]]], [[0, 1, 2], [0, 1, 3]], "consistently oriented"),
        (
            np.r_[np.eye(3), [[1, 1, 1], [2, 0, 1]]],
            [[0, 1, 2], [1, 0, 3], [0, 1, 4]],
            "edge-manifold",
        ),
    ],
)
def test_bad_mesh_errors(vertices, faces, match):
    with pytest.raises(GeodesicError, match=match):
        GeodesicSolver.from_mesh(vertices, faces)


def test_bad_query_errors():
    v, f = grid_mesh(4)
    s = GeodesicSolver.from_mesh(v, f)
    with pytest.raises(GeodesicError, match="negative"):
        s.pairs([0, -1], [1, 2])
    with pytest.raises(GeodesicError, match="0, 15"):
        s.pairs([0, 16], [1, 2])
    with pytest.raises(GeodesicError, match="integer"):
        s.pairs([0.0, 1.0], [1, 2])
    with pytest.raises(GeodesicError, match="aligned"):
        s.pairs([0, 1], [1, 2, 3])
    with pytest.raises(GeodesicError, match="single vertex"):
        s.field([1, 2])
    with pytest.raises(GeodesicError, match="0, 15"):
        s.field(99)
    assert isinstance(GeodesicError("x"), ValueError)


def test_bad_options():
    v, f = grid_mesh(4)
    with pytest.raises(GeodesicError, match="mode"):
        GeodesicSolver(fake_template(v, f), mode="exact")
    with pytest.raises(GeodesicError, match="threads"):
        GeodesicSolver(fake_template(v, f), threads=0)
    with pytest.raises(GeodesicError, match="from_mesh"):
        GeodesicSolver(object())


def test_numbers_do_not_depend_on_the_cache(tmp_path):
    """A pair's distance is the table's value on every path: fields without a table
    (small and large queries, cache on or off), the cached table, one query or batches."""
    v, f = bumpy_sphere(2, seed=4)
    nv = len(v)
    rng = np.random.default_rng(2)
    small = rng.integers(0, nv, (2, 400))  # many more than 32 sources, under half of V
    large = rng.integers(0, nv, (2, 20000))  # over half of V as sources: the table path
    fresh = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path)
    before = fresh.pairs(*small)  # no table yet: early-stopped fields, rounded
    off = GeodesicSolver(fake_template(v, f), cache=False)
    off_large = off.pairs(*large)  # fields again: caching is off
    off_batches = np.concatenate([off.pairs(*part) for part in np.split(large, 40, axis=1)])
    on_large = fresh.pairs(*large)  # builds and uses the table
    assert fresh._table is not None
    after = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path).pairs(*small)  # table
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(off_large, on_large)
    np.testing.assert_array_equal(off_batches, on_large)
    step = fresh.quant_scale
    assert np.array_equal(before, np.round(before / step) * step)  # on the grid


def test_distance_step_is_kept_and_a_bad_file_is_recomputed(tmp_path, monkeypatch):
    from dpeval.geodesic import solver as solver_mod
    from dpeval.geodesic import table as table_mod

    v, f = bumpy_sphere(2, seed=5)
    first = GeodesicSolver(fake_template(v, f), cache_dir=tmp_path)
    step = first.quant_scale
    path = table_mod.step_path(tmp_path, first.checksum)
    assert table_mod.read_step(path, first.checksum) == step
    assert np.frexp(step)[0] == 0.5  # a power of two
    for bad in ('{"step": 0.3}', "not json", '{"checksum": "x", "step": 0.5}'):
        monkeypatch.setattr(solver_mod, "_SCALES", {})
        path.write_text(bad)
        assert GeodesicSolver(fake_template(v, f), cache_dir=tmp_path).quant_scale == step
    monkeypatch.setattr(solver_mod, "_SCALES", {})
    assert GeodesicSolver(fake_template(v, f), cache=False).quant_scale == step
