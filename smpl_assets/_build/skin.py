"""Skinning data for later posing: joints, parents, top-4 weights per vertex.

Input: the rig and weight JSONs of the wheel and the body mesh. Output: joint
names in parent-before-child order, joint head positions in metres (same axes
as the mesh), parent indices and per-vertex top-4 (joint, weight) pairs.
"""

from __future__ import annotations

import numpy as np

from .mesh import DM_TO_M, BodyMesh
from .source import Sources

N_INFLUENCES = 4


def joint_order(rig: dict) -> list[str]:
    """Bones in depth-first pre-order from the root; siblings sorted by name."""
    children: dict[str, list[str]] = {}
    roots = []
    for name, bone in rig.items():
        parent = bone.get("parent") or ""
        if parent:
            children.setdefault(parent, []).append(name)
        else:
            roots.append(name)
    if len(roots) != 1:
        raise ValueError(f"rig.default.json: expected one root bone, got {sorted(roots)}")
    order, stack = [], [roots[0]]
    while stack:
        name = stack.pop()
        order.append(name)
        stack.extend(sorted(children.get(name, []), reverse=True))
    if len(order) != len(rig):
        raise ValueError("rig.default.json: some bones are not reachable from the root")
    return order


def joint_head_dm(src: Sources, bone: dict) -> np.ndarray:
    """Head position of a bone in base.obj coordinates (decimetres).

    ``CUBE``: mean of the 8 vertices of the named ``joint-*`` cube group;
    ``MEAN``: mean of the listed base.obj vertices; ``VERTEX``: that vertex.
    (The JSON ``default_position`` values are in another frame and scale and are
    not used.)
    """
    head = bone["head"]
    strategy = head["strategy"]
    if strategy == "CUBE":
        ids = np.unique(src.group_faces[head["cube_name"]])
        if len(ids) != 8:
            raise ValueError(f"joint cube {head['cube_name']!r} has {len(ids)} vertices, expected 8")
    elif strategy == "MEAN":
        ids = np.asarray(head["vertex_indices"], dtype=np.int64)
    elif strategy == "VERTEX":
        ids = np.asarray([head["vertex_index"]], dtype=np.int64)
    else:
        raise ValueError(f"rig.default.json: unknown head strategy {strategy!r}")
    return src.obj_vertices[ids].mean(axis=0)


def build_joints(src: Sources):
    """Return (names list, positions (J,3) float64 metres, parent (J,) int64, -1 = root)."""
    names = joint_order(src.rig)
    index = {n: i for i, n in enumerate(names)}
    positions = np.array([joint_head_dm(src, src.rig[n]) for n in names]) * DM_TO_M
    parent = np.array([index[src.rig[n]["parent"]] if src.rig[n].get("parent") else -1 for n in names])
    return names, positions, parent.astype(np.int64)


def dense_weights(src: Sources, mesh: BodyMesh, names: list[str]) -> np.ndarray:
    """(V, J) float64 raw weights of the body vertices, columns in ``names`` order."""
    local = np.full(len(src.obj_vertices), -1, dtype=np.int64)
    local[mesh.source_vertex] = np.arange(len(mesh.source_vertex))
    dense = np.zeros((len(mesh.source_vertex), len(names)))
    for j, name in enumerate(names):
        pairs = np.asarray(src.weights.get(name, []), dtype=np.float64).reshape(-1, 2)
        ids = local[pairs[:, 0].astype(np.int64)]
        keep = ids >= 0
        np.add.at(dense[:, j], ids[keep], pairs[keep, 1])
    return dense


def top_influences(dense: np.ndarray, k: int = N_INFLUENCES):
    """Top-k joints per vertex (weight descending, then joint index), renormalised.

    Unused slots (fewer than k non-zero weights) get joint 0 with weight 0.
    """
    order = np.lexsort((np.broadcast_to(np.arange(dense.shape[1]), dense.shape), -dense), axis=1)[:, :k]
    weights = np.take_along_axis(dense, order, axis=1)
    order = np.where(weights > 0, order, 0)
    total = weights.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("a body vertex has no skinning weight")
    return order.astype(np.int64), weights / total
