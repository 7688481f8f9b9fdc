"""Small hand-built templates for tests (importable from any test directory)."""

from __future__ import annotations

import numpy as np

from dpeval.template import BodyTemplate


def make_tiny_template(subdivisions: int = 2) -> BodyTemplate:
    """An icosphere (radius 0.3 m) cut into 8 octant parts with planar charts.

    Each face goes to the part of its centroid's octant (ids 1..8); each part's chart
    vertices are its faces' vertices, with (U, V) = the part's (x, y) rescaled to [0, 1].
    """
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.3)
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces, dtype=np.int64)
    c = v[f].mean(axis=1)
    part = 1 + (c[:, 0] > 0) + 2 * (c[:, 1] > 0) + 4 * (c[:, 2] > 0)
    chart_part, chart_vertex, chart_uv = [], [], []
    chart_faces = np.zeros_like(f)
    for p in range(1, 9):
        fm = part == p
        verts = np.unique(f[fm])
        lookup = {int(x): i + len(chart_vertex) for i, x in enumerate(verts)}
        xy = v[verts, :2]
        uv = (xy - xy.min(0)) / (xy.max(0) - xy.min(0))
        chart_part += [p] * len(verts)
        chart_vertex += verts.tolist()
        chart_uv += uv.tolist()
        chart_faces[fm] = np.vectorize(lookup.__getitem__)(f[fm])
    return BodyTemplate(
        id="tiny",
        vertices=v,
        faces=f,
        chart_part=np.array(chart_part),
        chart_uv=np.array(chart_uv),
        chart_vertex=np.array(chart_vertex),
        chart_faces=chart_faces,
        face_part=part,
    )
