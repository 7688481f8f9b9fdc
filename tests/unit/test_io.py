"""dpeval._io: the one cache directory and the one atomic write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dpeval._io import atomic_write, cache_dir, load_npy, save_npy_atomic, write_atomic


def test_cache_dir_honours_the_variable_and_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.setenv("DPEVAL_CACHE_DIR", "~/dpeval-x")
    assert cache_dir() == Path.home() / "dpeval-x"
    monkeypatch.delenv("DPEVAL_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "dpeval"


def test_every_stage_uses_the_same_cache_dir(monkeypatch):
    from dpeval.geodesic import GeodesicSolver
    from dpeval.template import load_template

    monkeypatch.setenv("DPEVAL_CACHE_DIR", "~/dpeval-y")
    s = GeodesicSolver(load_template("open"), mode="engine")
    assert s.cache_dir == Path.home() / "dpeval-y"
    assert s.cache_path().parent == cache_dir()


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "f.bin"
    write_atomic(p, b"one")
    write_atomic(p, "two")
    assert p.read_text() == "two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(p) as tmp:
        tmp.write_text("half")
        assert p.read_text() == "old"  # nothing visible before the block ends
        raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_npy_cache_round_trip(tmp_path):
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    p = tmp_path / "x" / "a.npy"
    assert save_npy_atomic(p, a)
    np.testing.assert_array_equal(load_npy(p, (3, 4), np.dtype(np.int32)), a)
    assert load_npy(p, (4, 3), np.dtype(np.int32)) is None
    assert load_npy(tmp_path / "missing.npy", (3, 4), np.dtype(np.int32)) is None
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        if not os.access(tmp_path / "ro", os.W_OK):  # root ignores the mode
            assert not save_npy_atomic(tmp_path / "ro" / "a.npy", a)
    finally:
        (tmp_path / "ro").chmod(0o700)
