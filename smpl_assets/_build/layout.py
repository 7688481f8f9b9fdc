"""Stage 3: per-part charts on the whole body, mirrored, merged and checked.

Input: the body mesh, the per-triangle parts and the wheel's ``vt`` records.
Output: :class:`ChartSet` with seam-split chart vertices (part, U, V, 3D vertex)
ordered by part, then vertex id, then U, then V, and per-face chart-vertex ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import charts
from .mesh import BodyMesh, is_disc
from .parts import MIRROR_PART, N_PARTS, PART_ID

METHOD_MDS = "geodesic_mds"
METHOD_ISLAND = "makehuman_uv_island"
METHOD_DISC = "mean_value_disc"
METHOD_REPAIRED = "geodesic_mds+fold_repair"
METHOD_FALLBACK = "mean_value_disc (MDS fold repair failed)"

# parts that are flattened; the others are mirror images of these
SOURCE_PARTS = {
    PART_ID["torso_back"]: METHOD_MDS,
    PART_ID["torso_front"]: METHOD_MDS,
    PART_ID["hand_left"]: METHOD_ISLAND,
    PART_ID["foot_left"]: METHOD_ISLAND,
    PART_ID["upper_leg_left_back"]: METHOD_MDS,
    PART_ID["upper_leg_left_front"]: METHOD_MDS,
    PART_ID["lower_leg_left_back"]: METHOD_MDS,
    PART_ID["lower_leg_left_front"]: METHOD_MDS,
    PART_ID["upper_arm_left_back"]: METHOD_MDS,
    PART_ID["upper_arm_left_front"]: METHOD_MDS,
    PART_ID["lower_arm_left_back"]: METHOD_MDS,
    PART_ID["lower_arm_left_front"]: METHOD_MDS,
    PART_ID["head_left"]: METHOD_MDS,
}


@dataclass
class PartChart:
    """One part's chart: local chart vertices and the part's faces in global order."""

    face_ids: np.ndarray  # (f,) global face ids, increasing
    vertex: np.ndarray  # (k,) global 3D vertex id per chart vertex
    uv: np.ndarray  # (k, 2) float64 in [0, 1]
    faces: np.ndarray  # (f, 3) local chart-vertex ids
    method: str
    stats: dict


@dataclass(frozen=True)
class ChartSet:
    """Global chart arrays (see the npz keys ``chart_*``)."""

    chart_part: np.ndarray  # (C,) int64
    chart_uv: np.ndarray  # (C, 2) float32
    chart_vertex: np.ndarray  # (C,) int64
    chart_faces: np.ndarray  # (F, 3) int64
    methods: dict  # part id -> method
    stats: dict  # part id -> dict


def _submesh(mesh: BodyMesh, face_ids: np.ndarray):
    tri = mesh.faces[face_ids]
    vid, local = np.unique(tri, return_inverse=True)
    return vid, local.reshape(-1, 3), mesh.vertices[vid]


def _flat_chart(mesh: BodyMesh, face_ids: np.ndarray, method: str) -> PartChart:
    vid, local, points = _submesh(mesh, face_ids)
    stats: dict = {}
    if method == METHOD_MDS:
        xy, stats = charts.classical_mds(charts.geodesic_matrix(points, local))
        xy = charts.orient_positive(xy, local)
        stats["folds_before_repair"] = int(charts.folded(charts.normalise(xy), local).sum())
        repaired, rounds = charts.repair_folds(xy, points, local)
        stats["repair_rounds"] = rounds
        if repaired is None:
            method = METHOD_FALLBACK
            xy = charts.disc_map(points, local)
        else:
            xy = repaired
            if rounds > 0:
                method = METHOD_REPAIRED
    else:
        xy = charts.disc_map(points, local)
    return PartChart(face_ids, vid, charts.normalise(xy), local, method, stats)


def _island_chart(mesh: BodyMesh, face_ids: np.ndarray, obj_uv: np.ndarray) -> PartChart:
    tri = mesh.faces[face_ids]
    vt = mesh.quad_uv[mesh.face_quad[face_ids][:, None], mesh.face_corner[face_ids]]
    if np.any(vt < 0):
        raise ValueError("a hand/foot face has no vt record")
    key = np.stack([tri.ravel(), vt.ravel()], axis=1)
    pairs, inverse = np.unique(key, axis=0, return_inverse=True)
    local = inverse.reshape(-1, 3)
    uv = charts.orient_positive(obj_uv[pairs[:, 1]], local)
    stats = {"folds_before_repair": int(charts.folded(charts.normalise(uv), local).sum())}
    points = mesh.vertices[pairs[:, 0]]
    repaired, rounds = charts.repair_folds(uv, points, local)
    if repaired is None:
        raise AssertionError("fold repair of a MakeHuman UV island failed")
    stats["repair_rounds"] = rounds
    return PartChart(face_ids, pairs[:, 0], charts.normalise(repaired), local, METHOD_ISLAND, stats)


def _mirror_chart(mesh: BodyMesh, face_part: np.ndarray, src: PartChart, target: int) -> PartChart:
    """Chart of ``target`` = chart of its mirror part, UVs copied onto mirrored vertices."""
    face_ids = np.where(face_part == target)[0]
    position = np.full(len(mesh.faces), -1)
    position[src.face_ids] = np.arange(len(src.face_ids))
    src_face = position[mesh.face_mirror[face_ids]]
    if np.any(src_face < 0):
        raise AssertionError(f"part {target}: mirror faces are not all in the source part")
    wanted = mesh.mirror[mesh.faces[face_ids]]  # (f, 3) vertex each corner maps to
    src_vertices = mesh.faces[src.face_ids[src_face]]  # (f, 3)
    match = src_vertices[:, None, :] == wanted[:, :, None]  # (f, 3 target corners, 3 src corners)
    if not np.all(match.sum(axis=2) == 1):
        raise AssertionError(f"part {target}: mirror triangle corners do not match")
    corner = np.argmax(match, axis=2)
    local = np.take_along_axis(src.faces[src_face], corner, axis=1)
    return PartChart(face_ids, mesh.mirror[src.vertex], src.uv.copy(), local, src.method, dict(src.stats))


def build_part_charts(mesh: BodyMesh, face_part: np.ndarray, obj_uv: np.ndarray) -> dict[int, PartChart]:
    """Flatten the source parts, mirror them onto the other side."""
    out: dict[int, PartChart] = {}
    for p, method in SOURCE_PARTS.items():
        face_ids = np.where(face_part == p)[0]
        if method == METHOD_ISLAND:
            out[p] = _island_chart(mesh, face_ids, obj_uv)
        else:
            out[p] = _flat_chart(mesh, face_ids, method)
    for p in list(SOURCE_PARTS):
        q = int(MIRROR_PART[p])
        if q != p:
            out[q] = _mirror_chart(mesh, face_part, out[p], q)
    if sorted(out) != list(range(1, N_PARTS + 1)):
        raise AssertionError("charts do not cover the 24 parts")
    return out


def merge_charts(mesh: BodyMesh, part_charts: dict[int, PartChart]) -> ChartSet:
    """Concatenate, round to float32, de-duplicate, sort, and re-index."""
    parts, verts, uvs, faces_global = [], [], [], np.zeros((len(mesh.faces), 3), dtype=np.int64)
    offset = 0
    for p in range(1, N_PARTS + 1):
        ch = part_charts[p]
        parts.append(np.full(len(ch.vertex), p))
        verts.append(ch.vertex)
        uvs.append(ch.uv.astype(np.float32))
        faces_global[ch.face_ids] = ch.faces + offset
        offset += len(ch.vertex)
    part = np.concatenate(parts)
    vert = np.concatenate(verts)
    uv = np.concatenate(uvs)
    order = np.lexsort((uv[:, 1], uv[:, 0], vert, part))
    part, vert, uv = part[order], vert[order], uv[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    # merge exact duplicates (same part, vertex, U, V)
    new = np.ones(len(part), dtype=bool)
    new[1:] = (part[1:] != part[:-1]) | (vert[1:] != vert[:-1]) | np.any(uv[1:] != uv[:-1], axis=1)
    compact = np.cumsum(new) - 1
    chart_faces = compact[rank[faces_global]]
    methods = {p: part_charts[p].method for p in range(1, N_PARTS + 1)}
    stats = {p: dict(part_charts[p].stats) for p in range(1, N_PARTS + 1)}
    return ChartSet(part[new], uv[new], vert[new], chart_faces, methods, stats)


def check_charts(mesh: BodyMesh, face_part: np.ndarray, cs: ChartSet) -> dict:
    """Assert the chart invariants; return per-part chart statistics."""
    if not np.array_equal(cs.chart_vertex[cs.chart_faces], mesh.faces):
        raise AssertionError("chart_vertex[chart_faces] != faces")
    if not np.all(cs.chart_part[cs.chart_faces] == face_part[:, None]):
        raise AssertionError("a face uses a chart vertex of another part")
    if np.any(np.diff(cs.chart_part) < 0):
        raise AssertionError("chart vertices are not ordered by part")
    if len(np.unique(cs.chart_faces)) != len(cs.chart_part):
        raise AssertionError("unused chart vertex")
    uv64 = cs.chart_uv.astype(np.float64)
    report = {}
    for p in range(1, N_PARTS + 1):
        fsel = face_part == p
        cf = cs.chart_faces[fsel]
        csel = cs.chart_part == p
        lo, hi = uv64[csel].min(axis=0), uv64[csel].max(axis=0)
        if not (np.array_equal(lo, [0.0, 0.0]) and np.array_equal(hi, [1.0, 1.0])):
            raise AssertionError(f"part {p}: chart spans {lo}..{hi}, expected [0, 1] on both axes")
        folds = int(charts.folded(uv64, cf).sum())
        if folds:
            raise AssertionError(f"part {p}: {folds} folded or degenerate chart triangles")
        if not is_disc(cf):
            raise AssertionError(f"part {p}: chart is not one connected disc")
        s = charts.signed_area2(uv64, cf)
        m = MIRROR_PART[p]
        if m != p:
            mine = {(int(mesh.mirror[v]), float(a), float(b)) for v, (a, b) in zip(cs.chart_vertex[csel], uv64[csel], strict=True)}
            msel = cs.chart_part == m
            theirs = {(int(v), float(a), float(b)) for v, (a, b) in zip(cs.chart_vertex[msel], uv64[msel], strict=True)}
            if mine != theirs:
                raise AssertionError(f"part {p}: chart is not the mirror of part {m}'s chart")
        points3 = mesh.vertices[cs.chart_vertex]
        report[p] = {
            "faces": int(fsel.sum()),
            "chart_vertices": int(csel.sum()),
            "seam_copies": int(csel.sum() - len(np.unique(cs.chart_vertex[csel]))),
            "folds": folds,
            "disc": True,
            "orientation": "ccw" if s[0] > 0 else "cw",
            "min_abs_area2": float(np.abs(s).min()),
            **charts.distortion(uv64, points3, cf),
        }
    return report
