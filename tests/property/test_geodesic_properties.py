"""Property tests of the geodesic engine: metric axioms on the open template."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dpeval.geodesic import GeodesicSolver  # noqa: E402

settings.register_profile("geodesic", deadline=None, max_examples=25, derandomize=True)

N_VERTICES = 13380  # the open template
ids = st.integers(min_value=0, max_value=N_VERTICES - 1)
id_lists = st.lists(ids, min_size=1, max_size=20)


@pytest.fixture(scope="module")
def solver(open_template):
    assert open_template.n_vertices == N_VERTICES
    return GeodesicSolver(open_template, cache=False, mode="engine")


@settings(settings.get_profile("geodesic"))
@given(a=id_lists)
def test_zero_on_the_diagonal(solver, a):
    assert (solver.pairs(a, a) == 0.0).all()


@settings(settings.get_profile("geodesic"))
@given(data=st.data())
def test_symmetric(solver, data):
    a = data.draw(id_lists)
    b = data.draw(st.lists(ids, min_size=len(a), max_size=len(a)))
    np.testing.assert_array_equal(solver.pairs(a, b), solver.pairs(b, a))


@settings(settings.get_profile("geodesic"))
@given(a=ids, b=ids, c=ids)
def test_triangle_inequality(solver, a, b, c):
    ab, bc, ac = solver.pairs([a, b, a], [b, c, c])
    # the engine is approximate (one window per face): allow 0.1 mm + 0.1 %
    assert ac <= ab + bc + 1e-4 + 1e-3 * ac


@settings(settings.get_profile("geodesic"))
@given(a=id_lists, data=st.data())
def test_never_below_straight_line(solver, open_template, a, data):
    b = data.draw(st.lists(ids, min_size=len(a), max_size=len(a)))
    v = np.asarray(open_template.vertices, dtype=np.float64)
    straight = np.linalg.norm(v[a] - v[b], axis=1)
    assert (solver.pairs(a, b) >= straight).all()
