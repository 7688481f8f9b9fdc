"""The compile-ahead child hands the parent the kernel it will call, from Numba's cache.

Each check runs in a fresh interpreter with an empty ``NUMBA_CACHE_DIR`` (Numba reads
it at import), as a first run on a fresh install does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import numpy as np
    from dpeval.geodesic import _kernels, warmup
    from dpeval.geodesic.solver import GeodesicSolver
    from dpeval.geodesic.table import quantize
    from dpeval.template import load_template

    assert warmup.uncached(warmup.GROUPED) == ["geodesic_targets"], "cache not empty"
    solver = GeodesicSolver(load_template("open"), cache=False)
    solver.compile_ahead(100)  # a small query: the grouped kernel
    assert solver._warmup is not None, "no child started on an empty cache"
    solver._warmup.wait()
    assert warmup.uncached(warmup.GROUPED) == [], "the child saved nothing"
    got = solver.pairs([9000, 9000, 12], [17, 4000, 5])
    stats = _kernels.geodesic_targets.stats
    assert sum(stats.cache_hits.values()) == 1, f"parent compiled: {stats}"
    assert sum(stats.cache_misses.values()) == 0, f"parent compiled: {stats}"
    full = quantize(solver.field(9000)[[17, 4000]], solver.quant_scale)
    assert got[0] == full[0] and got[1] == full[1], (got, full)
    again = GeodesicSolver(load_template("open"), cache=False)
    again.compile_ahead(100)
    assert again._warmup is None, "a child started although the kernel is cached"
    print("ok")
    """
)


@pytest.mark.slow  # one compilation of the grouped kernel (~3 s)
def test_compile_ahead_child_fills_the_cache_the_parent_reads(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    run = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")


def test_which_kernels_are_compiled_ahead(tmp_path, monkeypatch):
    from dpeval.geodesic import warmup
    from dpeval.geodesic.solver import GeodesicSolver
    from dpeval.template import load_template

    started = []

    def fake_start(names):
        started.append(tuple(names))
        return warmup.Warmup(None, names)

    monkeypatch.setattr(warmup, "start", fake_start)
    tpl = load_template("open")
    solver = GeodesicSolver(tpl, cache_dir=tmp_path)
    solver.compile_ahead(10**6)  # large, no table yet: the table kernels
    solver.compile_ahead(10)  # once per solver
    assert started == [warmup.TABLE]
    GeodesicSolver(tpl, cache_dir=tmp_path).compile_ahead(10)  # small: the grouped kernel
    assert started == [warmup.TABLE, warmup.GROUPED]
    GeodesicSolver(tpl, cache=False).compile_ahead(10**6)  # no table without a cache
    assert started[-1] == warmup.GROUPED and len(started) == 3
    solver.cache_path().parent.mkdir(parents=True, exist_ok=True)
    solver.cache_path().write_bytes(b"")
    GeodesicSolver(tpl, cache_dir=tmp_path).compile_ahead(10**6)  # the table exists
    assert len(started) == 3


def test_no_child_when_the_cache_cannot_be_written(monkeypatch):
    from dpeval.geodesic import warmup

    monkeypatch.setattr(warmup.os, "access", lambda path, mode: False)
    assert warmup.uncached(warmup.GROUPED + warmup.TABLE) == []
    assert warmup.start(warmup.GROUPED) is None
