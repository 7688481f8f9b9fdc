"""Stage 2: the 24 DensePose parts on the body, per quad, then per triangle.

Input: the body mesh, the default-rig weights and joints, the ``vt`` islands.
Output: ``quad_part`` (Q,) int64 in 1..24 (both triangles of a quad share it),
symmetric under the hm08 mirror, every part one edge-connected disc.
"""

from __future__ import annotations

import re

import numpy as np

from .mesh import BodyMesh, boundary_loops, face_adjacency, face_components, is_disc

# DensePose part ids (1..24). Convention for the pairs: lower id = back
# (posterior, -z side of the limb axis), higher id = front.
PART_NAMES = (
    "torso_back",
    "torso_front",
    "hand_right",
    "hand_left",
    "foot_left",
    "foot_right",
    "upper_leg_right_back",
    "upper_leg_left_back",
    "upper_leg_right_front",
    "upper_leg_left_front",
    "lower_leg_right_back",
    "lower_leg_left_back",
    "lower_leg_right_front",
    "lower_leg_left_front",
    "upper_arm_left_back",
    "upper_arm_right_back",
    "upper_arm_left_front",
    "upper_arm_right_front",
    "lower_arm_left_back",
    "lower_arm_right_back",
    "lower_arm_left_front",
    "lower_arm_right_front",
    "head_right",
    "head_left",
)
PART_ID = {name: i + 1 for i, name in enumerate(PART_NAMES)}
N_PARTS = 24


def _swap_side(name: str) -> str:
    if "_left" in name:
        return name.replace("_left", "_right")
    return name.replace("_right", "_left")


# part id -> part id of the mirror image
MIRROR_PART = np.array([0] + [PART_ID[_swap_side(n)] for n in PART_NAMES], dtype=np.int64)
LEFT_PARTS = tuple(PART_ID[n] for n in PART_NAMES if "_left" in n)
HEAD_PARTS = (PART_ID["head_right"], PART_ID["head_left"])

# coarse groups of the default rig
_SIDED = ("upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot")
COARSE = ("torso", "head") + tuple(f"{g}_{s}" for g in _SIDED for s in ("left", "right"))
_TORSO_BONES = re.compile(r"^(root|spine0[1-5]|pelvis|clavicle|breast)$")
_GROUP_BONES = (
    ("upper_arm", re.compile(r"^(shoulder01|upperarm0[12])$")),
    ("lower_arm", re.compile(r"^lowerarm0[12]$")),
    ("hand", re.compile(r"^(wrist|metacarpal\d|finger\d-\d)$")),
    ("upper_leg", re.compile(r"^upperleg0[12]$")),
    ("lower_leg", re.compile(r"^lowerleg0[12]$")),
    ("foot", re.compile(r"^(foot|toe\d-\d)$")),
)
# proximal and distal joint (bone heads) of each limb segment, per side suffix
LIMB_AXIS = {
    "upper_arm": ("upperarm01", "lowerarm01"),
    "lower_arm": ("lowerarm01", "wrist"),
    "upper_leg": ("upperleg01", "lowerleg01"),
    "lower_leg": ("lowerleg01", "foot"),
}
TORSO_SLABS = 40


def coarse_group(bone: str) -> str:
    """Coarse group of a default-rig bone (``torso``, ``head`` or ``<limb>_<side>``)."""
    base, _, suffix = bone.partition(".")
    if _TORSO_BONES.match(base):
        return "torso"
    for group, pattern in _GROUP_BONES:
        if pattern.match(base):
            if suffix not in ("L", "R"):
                raise ValueError(f"limb bone {bone!r} has no .L/.R suffix")
            return f"{group}_{'left' if suffix == 'L' else 'right'}"
    return "head"


def _coarse_quad_scores(mesh: BodyMesh, dense: np.ndarray, names: list[str]) -> np.ndarray:
    group_of = np.array([COARSE.index(coarse_group(n)) for n in names])
    per_vertex = np.zeros((len(mesh.vertices), len(COARSE)))
    for g in range(len(COARSE)):
        per_vertex[:, g] = dense[:, group_of == g].sum(axis=1)
    return per_vertex[mesh.quads].sum(axis=1)


def uv_islands(mesh: BodyMesh) -> np.ndarray:
    """Island id per quad: quads connected through shared ``vt`` edges."""
    return face_components(mesh.quad_uv)


def hand_foot_islands(islands: np.ndarray, coarse: np.ndarray) -> dict[str, int]:
    """Map ``hand_left``... ``foot_right`` to the island whose quads mostly carry that group."""
    found = {}
    for group in ("hand_left", "hand_right", "foot_left", "foot_right"):
        g = COARSE.index(group)
        share = [np.mean(coarse[islands == k] == g) for k in range(islands.max() + 1)]
        best = int(np.argmax(share))
        if share[best] < 0.9:
            raise ValueError(f"no UV island is mostly {group} (best share {share[best]:.3f})")
        found[group] = best
    return found


def _front_of_axis(points: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    axis = (p1 - p0) / np.linalg.norm(p1 - p0)
    front = np.array([0.0, 0.0, 1.0]) - axis[2] * axis
    front /= np.linalg.norm(front)
    return (points - p0) @ front > 0


def _torso_front(centroids: np.ndarray) -> np.ndarray:
    y = centroids[:, 1]
    edges = np.linspace(y.min(), y.max(), TORSO_SLABS + 1)
    slab = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, TORSO_SLABS - 1)
    centres, mids = [], []
    for s in np.unique(slab):
        z = centroids[slab == s, 2]
        centres.append(y[slab == s].mean())
        mids.append(0.5 * (z.min() + z.max()))
    # mid-depth interpolated linearly between slab centres (no steps at slab borders)
    return centroids[:, 2] > np.interp(y, centres, mids)


def initial_labels(mesh, dense, names, joints_m, islands):
    """Per-quad part ids before clean-up (see module docstring for the rules)."""
    scores = _coarse_quad_scores(mesh, dense, names)
    coarse = np.argmax(scores, axis=1)
    island_of = hand_foot_islands(islands, coarse)
    extremity = [COARSE.index(g) for g in island_of]
    masked = scores.copy()
    masked[:, extremity] = -1.0
    coarse = np.argmax(masked, axis=1)  # hands/feet only from their islands
    for group, island in island_of.items():
        coarse[islands == island] = COARSE.index(group)

    joint = {n: joints_m[i] for i, n in enumerate(names)}
    centroids = mesh.vertices[mesh.quads].mean(axis=1)
    part = np.zeros(len(mesh.quads), dtype=np.int64)
    for g, group in enumerate(COARSE):
        sel = coarse == g
        if group == "torso":
            front = _torso_front(centroids[sel])
            part[sel] = np.where(front, PART_ID["torso_front"], PART_ID["torso_back"])
        elif group == "head":
            part[sel] = np.where(centroids[sel, 0] < 0, PART_ID["head_right"], PART_ID["head_left"])
        elif group.startswith(("hand", "foot")):
            part[sel] = PART_ID[group]
        else:
            limb, side = group.rsplit("_", 1)
            suffix = ".L" if side == "left" else ".R"
            a, b = LIMB_AXIS[limb]
            front = _front_of_axis(centroids[sel], joint[a + suffix], joint[b + suffix])
            part[sel] = np.where(front, PART_ID[f"{group}_front"], PART_ID[f"{group}_back"])
    return part, island_of


def symmetrize(mesh: BodyMesh, part: np.ndarray) -> np.ndarray:
    """Copy the labels of the +x quads onto their mirror quads (left/right ids swapped).

    Head quads are re-split by the sign of x afterwards.
    """
    cx = mesh.vertices[mesh.quads][:, :, 0].mean(axis=1)
    if np.any(cx == 0):
        raise ValueError("a body quad has its centroid on the mid-plane")
    out = part.copy()
    left = np.where(cx > 0)[0]
    out[mesh.quad_mirror[left]] = MIRROR_PART[part[left]]
    head = np.isin(out, HEAD_PARTS)
    out[head] = np.where(cx[head] < 0, PART_ID["head_right"], PART_ID["head_left"])
    return out


def _neighbour_label(adj, members: np.ndarray, part: np.ndarray, own: int) -> int:
    rows = adj[members]
    nb = rows.indices
    labels = part[nb]
    labels = labels[labels != own]
    if len(labels) == 0:
        return own
    counts = np.bincount(labels, minlength=N_PARTS + 1)
    return int(np.argmax(counts))


def clean_up(mesh: BodyMesh, part: np.ndarray, max_rounds: int = 50):
    """Merge stray components and fill holes until every part is one disc.

    Returns
    -------
    part : (Q,) int64
    log : dict with the number of quads relabelled and rounds used
    """
    adj = face_adjacency(mesh.quads).tocsr()
    part = symmetrize(mesh, part)
    start = part.copy()
    for rounds in range(1, max_rounds + 1):
        before = part.copy()
        for p in range(1, N_PARTS + 1):
            members = np.where(part == p)[0]
            if len(members) == 0:
                continue
            comp = face_components(mesh.quads[members])
            sizes = np.bincount(comp)
            keep = int(np.argmax(sizes))
            for c in range(len(sizes)):
                if c != keep:
                    sel = members[comp == c]
                    part[sel] = _neighbour_label(adj, sel, part, p)
            # holes: complement pieces other than the largest, enclosed by this part
            others = np.where(part != p)[0]
            ocomp = face_components(mesh.quads[others])
            osizes = np.bincount(ocomp)
            if len(osizes) > 1:
                keep = int(np.argmax(osizes))
                for c in range(len(osizes)):
                    if c != keep:
                        part[others[ocomp == c]] = p
        part = symmetrize(mesh, part)
        if np.array_equal(part, before) and all_discs(mesh, part):
            break
    else:
        raise AssertionError("part clean-up did not converge")
    return part, {"quads_relabelled": int((part != start).sum()), "rounds": rounds}


def triangle_parts(mesh: BodyMesh, quad_part: np.ndarray) -> np.ndarray:
    """(F,) int64 part of every triangle."""
    return quad_part[mesh.face_quad]


def all_discs(mesh: BodyMesh, quad_part: np.ndarray) -> bool:
    face_part = triangle_parts(mesh, quad_part)
    return all(is_disc(mesh.faces[face_part == p]) for p in range(1, N_PARTS + 1))


def part_report(mesh: BodyMesh, face_part: np.ndarray) -> dict:
    """Faces, vertices, area share, components, Euler, boundary loops per part."""
    from .mesh import euler_characteristic

    area = 0.5 * np.linalg.norm(
        np.cross(
            mesh.vertices[mesh.faces[:, 1]] - mesh.vertices[mesh.faces[:, 0]],
            mesh.vertices[mesh.faces[:, 2]] - mesh.vertices[mesh.faces[:, 0]],
        ),
        axis=1,
    )
    out = {}
    for p in range(1, N_PARTS + 1):
        f = mesh.faces[face_part == p]
        loops = boundary_loops(f)
        out[p] = {
            "faces": len(f),
            "vertices": len(np.unique(f)),
            "area_share": float(area[face_part == p].sum() / area.sum()),
            "components": len(np.unique(face_components(f))),
            "euler": euler_characteristic(f),
            "boundary_loops": -1 if loops is None else len(loops),
            "disc": is_disc(f),
        }
    return out


def check_symmetry(mesh: BodyMesh, face_part: np.ndarray) -> None:
    """Assert part(mirror(f)) == MIRROR_PART[part(f)] for every triangle."""
    if not np.array_equal(face_part[mesh.face_mirror], MIRROR_PART[face_part]):
        raise AssertionError("part labels are not left/right symmetric")
