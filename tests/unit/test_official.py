"""Official DensePose layout: export, read back, distance-table conversion, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from dpeval.errors import TemplateError
from dpeval.template import export_template, load_template, read_official_dir


def euclid_condensed(t) -> np.ndarray:
    """Condensed table in the official order P[a(a-1)/2 + b], a > b, by a plain loop."""
    v = np.asarray(t.vertices, dtype=np.float64)
    out = []
    for a in range(t.n_vertices):
        for b in range(a):
            out.append(np.linalg.norm(v[a] - v[b]))
    return np.array(out)


def test_round_trip_open_template(open_template, tmp_path):
    files = export_template(open_template, tmp_path)
    assert sorted(p.name for p in files) == ["SMPL_SUBDIV_TRANSFORM.mat", "SMPL_subdiv.mat"]
    raw = loadmat(tmp_path / "SMPL_subdiv.mat")
    c = open_template.n_chart_vertices
    assert raw["U_subdiv"].shape == (c, 1) and raw["vertex"].shape == (3, c)
    assert raw["faces"].min() == 1  # 1-based like MATLAB
    back = read_official_dir(tmp_path)
    assert back.checksum == open_template.checksum
    assert back.pdist is None
    rng = np.random.default_rng(3)
    part, u, v = rng.integers(0, 26, 5000), rng.random(5000), rng.random(5000)
    np.testing.assert_array_equal(
        back.closest_vertices(part, u, v), open_template.closest_vertices(part, u, v)
    )
    np.testing.assert_array_equal(back.chart_faces, open_template.chart_faces)


def test_round_trip_with_distances(tiny_template, tmp_path, monkeypatch):
    files = export_template(tiny_template, tmp_path, distances=euclid_condensed(tiny_template))
    assert files[-1].name == "Pdist_matrix.pkl"
    back = load_template(tmp_path)
    n = tiny_template.n_vertices
    assert back.pdist is not None and len(back.pdist) == n * (n - 1) // 2
    # converted once into the cache (never next to the user's files), memory-mapped
    from dpeval._io import cache_dir

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)
    assert str(back.pdist.filename).startswith(str(cache_dir() / "official"))
    v = tiny_template.vertices
    for a, b in ((5, 2), (161, 0), (100, 99)):
        k = a * (a - 1) // 2 + b
        assert back.pdist[k] == pytest.approx(np.linalg.norm(v[a] - v[b]), rel=1e-6)
    # a second read memory-maps the .npy and never unpickles again
    import dpeval.template.official as official

    def no_unpickle(*args, **kwargs):
        raise AssertionError("the pickle was loaded twice")

    monkeypatch.setattr(official, "safe_pickle_load", no_unpickle)
    again = read_official_dir(tmp_path)
    assert isinstance(again.pdist, np.memmap)
    assert np.array_equal(np.asarray(again.pdist), np.asarray(back.pdist))
    # a changed source file is converted again (the stale .npy is not trusted)
    monkeypatch.undo()
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as fh:
        pickle.dump({"Pdist_matrix": np.full((n * (n - 1) // 2, 1), 7.0)}, fh)
    assert np.all(np.asarray(read_official_dir(tmp_path).pdist) == 7.0)


def test_reads_hdf5_distance_table(tiny_template, tmp_path):
    h5py = pytest.importorskip("h5py")
    export_template(tiny_template, tmp_path)
    table = euclid_condensed(tiny_template)
    with h5py.File(tmp_path / "Pdist_matrix.mat", "w") as fh:
        fh["Pdist_matrix"] = table.reshape(1, -1)  # MATLAB v7.3 stores it transposed
    back = read_official_dir(tmp_path)
    np.testing.assert_array_equal(np.asarray(back.pdist), table)


def test_accepts_transposed_and_merged_layouts(tiny_template, tmp_path):
    """vertex as (N, 3) per merged vertex and faces indexing merged vertices."""
    t = tiny_template
    savemat(
        tmp_path / "SMPL_subdiv.mat",
        {
            "U_subdiv": t.chart_uv[:, 0][None],
            "V_subdiv": t.chart_uv[:, 1][None],
            "Part_ID_subdiv": t.chart_part[None].astype(float),
            "vertex": np.asarray(t.vertices),
            "faces": t.faces + 1,
        },
    )
    savemat(tmp_path / "SMPL_SUBDIV_TRANSFORM.mat", {"index": (t.chart_vertex + 1)[None]})
    back = read_official_dir(tmp_path)
    assert back.checksum == t.checksum
    assert back.chart_faces is None


def test_missing_files_and_keys(tiny_template, tmp_path):
    with pytest.raises(TemplateError, match=r"SMPL_subdiv\.mat: file not found"):
        read_official_dir(tmp_path)
    export_template(tiny_template, tmp_path)
    raw = loadmat(tmp_path / "SMPL_subdiv.mat")
    del raw["V_subdiv"]
    savemat(tmp_path / "SMPL_subdiv.mat", {k: x for k, x in raw.items() if not k.startswith("__")})
    with pytest.raises(TemplateError, match=r"missing key\(s\) \['V_subdiv'\]"):
        read_official_dir(tmp_path)


def test_index_length_mismatch(tiny_template, tmp_path):
    export_template(tiny_template, tmp_path)
    savemat(tmp_path / "SMPL_SUBDIV_TRANSFORM.mat", {"index": np.arange(1, 11)[:, None]})
    with pytest.raises(TemplateError, match="'index' has 10 entries"):
        read_official_dir(tmp_path)


def test_bad_distance_table_length(tiny_template, tmp_path):
    export_template(tiny_template, tmp_path)
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as fh:
        pickle.dump({"Pdist_matrix": np.zeros((17, 1))}, fh)
    with pytest.raises(TemplateError, match=r"n\(n-1\)/2"):
        read_official_dir(tmp_path)


def test_broken_files(tiny_template, tmp_path):
    export_template(tiny_template, tmp_path)
    (tmp_path / "Pdist_matrix.pkl").write_bytes(b"garbage")
    with pytest.raises(TemplateError, match="not a readable distance-table pickle"):
        read_official_dir(tmp_path)
    (tmp_path / "Pdist_matrix.pkl").unlink()
    (tmp_path / "SMPL_subdiv.mat").write_bytes(b"garbage")
    with pytest.raises(TemplateError, match="not a readable MATLAB file"):
        read_official_dir(tmp_path)


def test_export_cli(tmp_path, capsys):
    from dpeval.cli import main

    assert main(["template", "export", "open", str(tmp_path / "out")]) == 0
    assert "SMPL_subdiv.mat" in capsys.readouterr().out
    assert main(["template", "info", str(tmp_path / "out")]) == 0
    assert load_template("open").checksum in capsys.readouterr().out


def test_export_cli_with_distances_passes_the_engine(tiny_template, tmp_path, capsys):
    """The template stage never computes distances: the CLI hands it a solver."""
    from dpeval.cli import main
    from dpeval.geodesic import GeodesicSolver

    export_template(tiny_template, tmp_path / "in")
    assert main(["template", "export", str(tmp_path / "in"), str(tmp_path / "out"),
                 "--with-distances"]) == 0  # fmt: skip
    assert "Pdist_matrix.pkl" in capsys.readouterr().out
    back = read_official_dir(tmp_path / "out")
    table = GeodesicSolver(tiny_template, mode="engine").condensed_table()
    np.testing.assert_array_equal(np.asarray(back.pdist).ravel(), table)


def test_export_with_engine_distances_round_trips_in_legacy_mode(tiny_template, tmp_path):
    """Export the engine's table, read it back, and legacy lookups return those values."""
    from dpeval.geodesic import GeodesicSolver

    engine = GeodesicSolver(tiny_template)
    export_template(tiny_template, tmp_path, distances=engine)
    back = load_template(tmp_path)
    legacy = GeodesicSolver(back, mode="legacy")
    rng = np.random.default_rng(0)
    a = rng.integers(0, tiny_template.n_vertices, 500)
    b = rng.integers(0, tiny_template.n_vertices, 500)
    expected = engine.pairs(a, b)  # from the same cached table (quantised to ~0.01 mm)
    np.testing.assert_allclose(legacy.pairs(a, b), expected, rtol=1e-6)
    exact = GeodesicSolver(tiny_template, cache=False).pairs(a, b)
    np.testing.assert_allclose(legacy.pairs(a, b), exact, atol=engine._scale)
    assert (legacy.pairs(a, a) == 0).all()


def test_distance_pickle_cannot_run_code(tiny_template, tmp_path):
    """A Pdist_matrix.pkl is unpickled with a restricted unpickler."""
    import os

    export_template(tiny_template, tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(tmp_path / "Pdist_matrix.pkl", "wb") as fh:
        pickle.dump({"Pdist_matrix": Evil()}, fh)
    with pytest.raises(TemplateError, match="not a readable distance-table pickle"):
        read_official_dir(tmp_path)
    assert not (tmp_path / "pwned").exists()
