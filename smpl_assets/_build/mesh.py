"""Body mesh of the template: OBJ group ``body`` -> metres, triangles, topology checks.

Input: :class:`source.Sources`. Output: :class:`BodyMesh` plus small topology
helpers (edges, components, Euler characteristic, boundary loops) used by the
part and chart stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .source import BODY_GROUP, Sources

DM_TO_M = 0.1


@dataclass(frozen=True)
class BodyMesh:
    """The triangulated body.

    Attributes
    ----------
    vertices : (V, 3) float64 metres (y up, +z front, +x character's left)
    vertices_dm : (V, 3) float64 decimetres, as read
    source_vertex : (V,) int64 base.obj vertex id
    quads : (Q, 4) int64 local vertex ids, OBJ winding
    quad_uv : (Q, 4) int64 ``vt`` ids
    faces : (F, 3) int64 triangles, outward counter-clockwise, F = 2 Q
    face_quad : (F,) int64 quad of each triangle
    face_corner : (F, 3) int64 quad corner (0..3) of each triangle corner
    mirror : (V,) int64 mirror vertex
    face_mirror : (F,) int64 mirror triangle
    quad_mirror : (Q,) int64 mirror quad
    """

    vertices: np.ndarray
    vertices_dm: np.ndarray
    source_vertex: np.ndarray
    quads: np.ndarray
    quad_uv: np.ndarray
    faces: np.ndarray
    face_quad: np.ndarray
    face_corner: np.ndarray
    mirror: np.ndarray
    face_mirror: np.ndarray
    quad_mirror: np.ndarray


# ----------------------------------------------------------------------------- topology


def edges_of(faces: np.ndarray) -> np.ndarray:
    """Directed edges (3F, 2) in face order: (f0,f1), (f1,f2), (f2,f0) per face."""
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=2).reshape(-1, 2)


def undirected_edges(faces: np.ndarray):
    """Unique undirected edges and, per directed edge, its unique-edge index."""
    directed = edges_of(faces)
    key = np.sort(directed, axis=1)
    unique, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return unique, inverse.reshape(-1), counts


def face_adjacency(faces: np.ndarray) -> sp.csr_matrix:
    """(F, F) sparse matrix, 1 where two faces share an edge."""
    _, inverse, _ = undirected_edges(faces)
    face_of = np.repeat(np.arange(len(faces)), faces.shape[1])
    order = np.argsort(inverse, kind="stable")
    inv_sorted, f_sorted = inverse[order], face_of[order]
    same = inv_sorted[1:] == inv_sorted[:-1]
    a, b = f_sorted[:-1][same], f_sorted[1:][same]
    n = len(faces)
    mat = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    return ((mat + mat.T) > 0).astype(np.int8)


def face_components(faces: np.ndarray) -> np.ndarray:
    """Component label per face, faces connected through shared edges."""
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    _, labels = connected_components(face_adjacency(faces), directed=False)
    return labels.astype(np.int64)


def euler_characteristic(faces: np.ndarray) -> int:
    """V - E + F over the vertices used by ``faces``."""
    unique, _, _ = undirected_edges(faces)
    return len(np.unique(faces)) - len(unique) + len(faces)


def boundary_loops(faces: np.ndarray):
    """Boundary of a triangle set.

    Returns
    -------
    loops : list of (k,) int64 vertex loops following the faces' winding, or None
        when the boundary is not a union of simple loops (a vertex with more
        than one outgoing boundary edge, or an edge used more than twice).
    """
    unique, inverse, counts = undirected_edges(faces)
    if np.any(counts > 2):
        return None
    directed = edges_of(faces)
    boundary = directed[counts[inverse] == 1]
    if len(boundary) == 0:
        return []
    starts, outdeg = np.unique(boundary[:, 0], return_counts=True)
    if np.any(outdeg != 1):
        return None
    nxt = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist(), strict=True))
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        if v != start:
            return None
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def is_disc(faces: np.ndarray) -> bool:
    """One edge-connected component, Euler characteristic 1, one simple boundary loop."""
    if len(faces) == 0:
        return False
    if len(np.unique(face_components(faces))) != 1:
        return False
    loops = boundary_loops(faces)
    return loops is not None and len(loops) == 1 and euler_characteristic(faces) == 1


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed triangle mesh (positive when outward CCW)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


# ----------------------------------------------------------------------------- build


def _split_quads(quads: np.ndarray, coords: np.ndarray):
    """Split each quad along its shorter diagonal (ties -> diagonal 0-2)."""
    p = coords[quads]
    d02 = ((p[:, 0] - p[:, 2]) ** 2).sum(axis=1)
    d13 = ((p[:, 1] - p[:, 3]) ** 2).sum(axis=1)
    use13 = d13 < d02
    corners = np.where(use13[:, None, None], [[0, 1, 3], [1, 2, 3]], [[0, 1, 2], [0, 2, 3]])
    face_corner = corners.reshape(-1, 3)
    face_quad = np.repeat(np.arange(len(quads)), 2)
    faces = quads[face_quad[:, None], face_corner]
    return faces, face_quad, face_corner


def _match_by_vertex_set(cells: np.ndarray, mapped: np.ndarray) -> np.ndarray:
    key = {tuple(sorted(c)): i for i, c in enumerate(cells.tolist())}
    out = np.array([key.get(tuple(sorted(c)), -1) for c in mapped.tolist()], dtype=np.int64)
    if np.any(out < 0):
        raise ValueError(f"mirror map does not send {int((out < 0).sum())} cells onto cells")
    return out


def build_body_mesh(src: Sources) -> BodyMesh:
    """Extract, triangulate and check the body (see module docstring)."""
    quads_obj = src.group_faces[BODY_GROUP]
    used = np.unique(quads_obj)  # sorted: keeps base.obj order of the used vertices
    local = np.full(len(src.obj_vertices), -1, dtype=np.int64)
    local[used] = np.arange(len(used))
    quads = local[quads_obj]
    coords_dm = src.obj_vertices[used]
    faces, face_quad, face_corner = _split_quads(quads, coords_dm)

    vol = signed_volume(coords_dm, faces)
    if vol < 0:  # make the winding outward counter-clockwise
        quads = quads[:, ::-1].copy()
        faces, face_quad, face_corner = _split_quads(quads, coords_dm)
        quad_uv = src.group_face_uv[BODY_GROUP][:, ::-1].copy()
    else:
        quad_uv = src.group_face_uv[BODY_GROUP].copy()

    mirror_obj = src.mirror[used]
    if np.any(local[mirror_obj] < 0):
        raise ValueError("hm08.mirror maps a body vertex outside the body group")
    mirror = local[mirror_obj]
    if not np.array_equal(mirror[mirror], np.arange(len(mirror))):
        raise ValueError("hm08.mirror is not an involution on the body vertices")
    quad_mirror = _match_by_vertex_set(quads, mirror[quads])
    face_mirror = _match_by_vertex_set(faces, mirror[faces])

    mesh = BodyMesh(
        vertices=coords_dm * DM_TO_M,
        vertices_dm=coords_dm,
        source_vertex=used.astype(np.int64),
        quads=quads,
        quad_uv=quad_uv,
        faces=faces,
        face_quad=face_quad,
        face_corner=face_corner,
        mirror=mirror,
        face_mirror=face_mirror,
        quad_mirror=quad_mirror,
    )
    check_closed_surface(mesh)
    return mesh


def check_closed_surface(mesh: BodyMesh) -> dict:
    """Assert watertight, consistently wound, one component, Euler 2, outward."""
    faces = mesh.faces
    unique, inverse, counts = undirected_edges(faces)
    if not np.all(counts == 2):
        raise AssertionError("body mesh is not watertight (an edge is not used by exactly 2 faces)")
    directed = edges_of(faces)
    if len(np.unique(directed, axis=0)) != len(directed):
        raise AssertionError("body mesh winding is inconsistent")
    n_comp = len(np.unique(face_components(faces)))
    chi = euler_characteristic(faces)
    vol = signed_volume(mesh.vertices, faces)
    if n_comp != 1 or chi != 2 or vol <= 0:
        raise AssertionError(f"body mesh: components={n_comp}, Euler={chi}, volume={vol}")
    if len(np.unique(faces)) != len(mesh.vertices):
        raise AssertionError("body mesh has unreferenced vertices")
    return {"components": n_comp, "euler": chi, "volume_m3": vol, "edges": len(unique)}
