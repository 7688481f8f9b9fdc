"""``dpeval cache build | info | clear`` and :mod:`dpeval.cache` on a tiny template."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dpeval.cache import build_cache, cache_entries, clear_cache
from dpeval.cli import main
from dpeval.geodesic import GeodesicSolver
from dpeval.template import export_template, load_template


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tests._templates import make_tiny_template

    d = tmp_path_factory.mktemp("tiny")
    export_template(make_tiny_template(), d)
    return d


@pytest.fixture(scope="module")
def built(tiny_dir, tmp_path_factory):
    """A cache built once by the command line (the table and the closest-vertex LUT)."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DPEVAL_CACHE_DIR", raising=False)
        assert main(["cache", "build", "--template", str(tiny_dir), "--cache-dir", str(cache)]) == 0
    return cache


def test_build_writes_the_table_scoring_then_uses(built, tiny_dir, monkeypatch):
    cache = built
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(cache))
    kinds = sorted(e.kind for e in cache_entries())
    assert kinds == ["geodesic", "lut"]
    # the solver that scoring builds finds the table without computing anything
    t = load_template(tiny_dir)
    s = GeodesicSolver(t, mode="engine")
    assert s.cache_path().exists() and s.cache_path().parent == cache
    assert s._open_table(verify=True)
    a = np.repeat(np.arange(t.n_vertices), 3)
    b = np.tile(np.arange(3), t.n_vertices)
    table_d = s.pairs(a, b)
    exact = GeodesicSolver(t, mode="engine", cache=False).pairs(a, b)
    assert np.abs(table_d - exact).max() <= s._scale / 2 + 1e-12


def test_build_is_idempotent_and_reports_progress(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(tmp_path / "c"))
    nv = load_template(tiny_dir).n_vertices
    seen = []
    GeodesicSolver(load_template(tiny_dir)).precompute(progress=lambda d, n: seen.append((d, n)))
    assert len(seen) == 8 and seen[-1] == (nv * (nv - 1) // 2,) * 2  # the bar ends full
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    first = [e for e in cache_entries() if e.kind == "geodesic"]
    assert len(first) == 1
    seen.clear()
    second = build_cache(tiny_dir, progress=lambda d, n: seen.append((d, n)))
    assert seen == []  # found, not rebuilt
    assert [(e.path, e.nbytes) for e in first] == [
        (e.path, e.nbytes) for e in second if e.kind == "geodesic"
    ]


def test_legacy_template_converts_its_official_table(tmp_path, built, tiny_template, monkeypatch):
    shutil.copytree(built / "lut", tmp_path / "c" / "lut")  # the same mesh: its LUT is reused
    d = tmp_path / "official"
    n = tiny_template.n_vertices
    export_template(tiny_template, d, distances=np.arange(n * (n - 1) // 2, dtype=np.float32))
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(tmp_path / "c"))
    entries = build_cache(d)
    assert sorted(e.kind for e in entries) == ["lut", "official"]  # no engine table
    assert not any(e.kind == "geodesic" for e in cache_entries())


def test_info_lists_and_clear_removes_only_dpeval_entries(tmp_path, built, capsys):
    cache = tmp_path / "cache"
    shutil.copytree(built, cache)
    (cache / ".geodesic-x.npy.abc.tmp").write_bytes(b"half")
    (cache / "notes.txt").write_text("mine")  # not dpeval's: never removed
    capsys.readouterr()
    assert main(["cache", "info", "--json", "--cache-dir", str(cache)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cache_dir"] == str(cache)
    assert sorted(e["kind"] for e in info["entries"]) == ["geodesic", "lut", "partial"]
    on_disk = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    assert info["nbytes"] == on_disk - len("mine")
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert "3 entries" in capsys.readouterr().out
    assert main(["cache", "clear", "--kind", "lut", "--cache-dir", str(cache)]) == 0
    assert sorted(e.kind for e in cache_entries(cache)) == ["geodesic", "partial"]
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert sorted(p.name for p in cache.rglob("*")) == ["notes.txt"]
    clear_cache(cache)  # nothing left to remove: fine
    assert (cache / "notes.txt").read_text() == "mine"


def test_clear_of_a_missing_directory_and_bad_usage(tmp_path, capsys):
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert main(["cache", "build", "--template", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpeval: error:") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["cache", "clear", "--kind", "everything"])
    assert exc.value.code == 2
